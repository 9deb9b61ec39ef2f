-- NEWS2: what physicians enter, their alert thresholds, and the alert
-- timeline, so a patient's monitor is restored after a restart.
CREATE TABLE news2_entries (
	id             INTEGER PRIMARY KEY,
	patient_id     INTEGER NOT NULL REFERENCES users(id),
	appointment_id INTEGER NOT NULL DEFAULT 0,
	kind           TEXT NOT NULL CHECK (kind IN ('consciousness', 'oxygen', 'scale2', 'value')),
	code           TEXT NOT NULL DEFAULT '',
	value          REAL NOT NULL DEFAULT 0,
	text           TEXT NOT NULL DEFAULT '',
	by_user        INTEGER NOT NULL,
	at             INTEGER NOT NULL
);
CREATE INDEX news2_entries_patient ON news2_entries(patient_id, at);

CREATE TABLE alert_thresholds (
	patient_id INTEGER NOT NULL REFERENCES users(id),
	code       TEXT NOT NULL,
	low        REAL,
	high       REAL,
	by_user    INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (patient_id, code)
);

CREATE TABLE alert_events (
	id         INTEGER PRIMARY KEY,
	patient_id INTEGER NOT NULL REFERENCES users(id),
	alert_id   TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('raised', 'cleared', 'acknowledged', 'notice')),
	rule       TEXT NOT NULL,
	severity   TEXT NOT NULL,
	title      TEXT NOT NULL,
	code       TEXT NOT NULL DEFAULT '',
	by_ref     TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL
);
CREATE INDEX alert_events_patient ON alert_events(patient_id, at);

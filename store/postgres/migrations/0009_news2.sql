-- NEWS2: what physicians enter, their alert thresholds, and the alert
-- timeline, so a patient's monitor is restored after a restart.
CREATE TABLE news2_entries (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_id     bigint NOT NULL REFERENCES users (id),
	appointment_id bigint NOT NULL DEFAULT 0,
	kind           text NOT NULL CHECK (kind IN ('consciousness', 'oxygen', 'scale2', 'value')),
	code           text NOT NULL DEFAULT '',
	value          double precision NOT NULL DEFAULT 0,
	text           text NOT NULL DEFAULT '',
	by_user        bigint NOT NULL,
	at             timestamptz NOT NULL
);
CREATE INDEX news2_entries_patient ON news2_entries (patient_id, at);

CREATE TABLE alert_thresholds (
	patient_id bigint NOT NULL REFERENCES users (id),
	code       text NOT NULL,
	low        double precision,
	high       double precision,
	by_user    bigint NOT NULL,
	at         timestamptz NOT NULL,
	PRIMARY KEY (patient_id, code)
);

CREATE TABLE alert_events (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_id bigint NOT NULL REFERENCES users (id),
	alert_id   text NOT NULL,
	state      text NOT NULL CHECK (state IN ('raised', 'cleared', 'acknowledged', 'notice')),
	rule       text NOT NULL,
	severity   text NOT NULL,
	title      text NOT NULL,
	code       text NOT NULL DEFAULT '',
	by_ref     text NOT NULL DEFAULT '',
	at         timestamptz NOT NULL
);
CREATE INDEX alert_events_patient ON alert_events (patient_id, at);

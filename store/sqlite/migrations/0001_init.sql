-- Bedside's first schema. Instants are Unix milliseconds (UTC).
CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL CHECK (role IN ('scheduler', 'physician', 'patient', 'admin')),
	time_zone     TEXT NOT NULL DEFAULT 'UTC',
	password_hash TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
	token_hash     BLOB PRIMARY KEY,
	user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	appointment_id INTEGER NOT NULL DEFAULT 0,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE credentials (
	id             INTEGER PRIMARY KEY,
	kind           TEXT NOT NULL CHECK (kind IN ('api', 'device', 'join')),
	token_hash     BLOB NOT NULL UNIQUE,
	user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	appointment_id INTEGER NOT NULL DEFAULT 0,
	name           TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL DEFAULT 0,
	revoked_at     INTEGER NOT NULL DEFAULT 0,
	last_seq       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX credentials_user ON credentials(kind, user_id);

CREATE TABLE schedules (
	physician_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	slot_minutes INTEGER NOT NULL CHECK (slot_minutes > 0)
);

CREATE TABLE weekly_hours (
	physician_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	weekday      INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
	start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
	end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1440 AND end_minute > start_minute)
);
CREATE INDEX weekly_hours_physician ON weekly_hours(physician_id);

CREATE TABLE appointments (
	id           INTEGER PRIMARY KEY,
	physician_id INTEGER NOT NULL REFERENCES users(id),
	patient_id   INTEGER NOT NULL REFERENCES users(id),
	start_at     INTEGER NOT NULL,
	end_at       INTEGER NOT NULL CHECK (end_at > start_at),
	status       TEXT NOT NULL CHECK (status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error')),
	created_at   INTEGER NOT NULL
);
CREATE INDEX appointments_physician ON appointments(physician_id, start_at);
CREATE INDEX appointments_patient ON appointments(patient_id, start_at);

-- The database itself refuses two overlapping live appointments of one
-- physician, whatever the code above it does.
CREATE TRIGGER appointments_no_overlap_insert BEFORE INSERT ON appointments
WHEN NEW.status NOT IN ('cancelled', 'entered-in-error') AND EXISTS (
	SELECT 1 FROM appointments a
	WHERE a.physician_id = NEW.physician_id
	  AND a.status NOT IN ('cancelled', 'entered-in-error')
	  AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at)
BEGIN
	SELECT RAISE(ABORT, 'appointment overlaps another');
END;

CREATE TRIGGER appointments_no_overlap_update BEFORE UPDATE OF start_at, end_at, status, physician_id ON appointments
WHEN NEW.status NOT IN ('cancelled', 'entered-in-error') AND EXISTS (
	SELECT 1 FROM appointments a
	WHERE a.id <> NEW.id
	  AND a.physician_id = NEW.physician_id
	  AND a.status NOT IN ('cancelled', 'entered-in-error')
	  AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at)
BEGIN
	SELECT RAISE(ABORT, 'appointment overlaps another');
END;

CREATE TABLE observations (
	id           INTEGER PRIMARY KEY,
	patient_id   INTEGER NOT NULL REFERENCES users(id),
	device_id    INTEGER NOT NULL DEFAULT 0,
	seq          INTEGER NOT NULL DEFAULT 0,
	code         TEXT NOT NULL,
	value        REAL NOT NULL,
	unit         TEXT NOT NULL,
	effective_at INTEGER NOT NULL,
	received_at  INTEGER NOT NULL
);
CREATE INDEX observations_patient ON observations(patient_id, effective_at);
-- One envelope may carry two readings (a blood-pressure panel), so the
-- device's sequence is unique together with the code.
CREATE UNIQUE INDEX observations_device_seq ON observations(device_id, seq, code) WHERE seq > 0;

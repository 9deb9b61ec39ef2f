-- Scheduling that clinics rely on: patients' details, full availability
-- (buffers, notice, horizon, date overrides, time off, visit types), the
-- appointment lifecycle with its history, and the mail outbox.
ALTER TABLE users ADD COLUMN birth_date TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';
CREATE INDEX users_role_name ON users(role, name);

ALTER TABLE schedules ADD COLUMN buffer_minutes INTEGER NOT NULL DEFAULT 0 CHECK (buffer_minutes >= 0);
ALTER TABLE schedules ADD COLUMN notice_minutes INTEGER NOT NULL DEFAULT 0 CHECK (notice_minutes >= 0);
ALTER TABLE schedules ADD COLUMN horizon_minutes INTEGER NOT NULL DEFAULT 0 CHECK (horizon_minutes >= 0);

-- A date listed here replaces the weekly hours on that local date; its
-- blocks (none: a day off) are in override_blocks.
CREATE TABLE override_days (
	physician_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	day          TEXT NOT NULL,
	PRIMARY KEY (physician_id, day)
);
CREATE TABLE override_blocks (
	physician_id INTEGER NOT NULL,
	day          TEXT NOT NULL,
	start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
	end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1440 AND end_minute > start_minute),
	FOREIGN KEY (physician_id, day) REFERENCES override_days(physician_id, day) ON DELETE CASCADE
);
CREATE INDEX override_blocks_day ON override_blocks(physician_id, day);

CREATE TABLE time_off (
	id           INTEGER PRIMARY KEY,
	physician_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	start_at     INTEGER NOT NULL,
	end_at       INTEGER NOT NULL CHECK (end_at > start_at)
);
CREATE INDEX time_off_physician ON time_off(physician_id, start_at);

CREATE TABLE visit_types (
	physician_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	code         TEXT NOT NULL CHECK (code <> ''),
	name         TEXT NOT NULL,
	minutes      INTEGER NOT NULL CHECK (minutes > 0),
	position     INTEGER NOT NULL,
	PRIMARY KEY (physician_id, code)
);

ALTER TABLE appointments ADD COLUMN visit_type TEXT NOT NULL DEFAULT '';
ALTER TABLE appointments ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE appointments ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0 CHECK (sequence >= 0);
ALTER TABLE appointments ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX appointments_start ON appointments(start_at);

-- Append-only history of each appointment.
CREATE TABLE appointment_events (
	id             INTEGER PRIMARY KEY,
	appointment_id INTEGER NOT NULL REFERENCES appointments(id),
	kind           TEXT NOT NULL CHECK (kind IN ('booked', 'rescheduled', 'status')),
	actor_id       INTEGER NOT NULL DEFAULT 0,
	at             INTEGER NOT NULL,
	from_status    TEXT NOT NULL DEFAULT '',
	to_status      TEXT NOT NULL DEFAULT '',
	old_start      INTEGER NOT NULL DEFAULT 0,
	old_end        INTEGER NOT NULL DEFAULT 0,
	new_start      INTEGER NOT NULL DEFAULT 0,
	new_end        INTEGER NOT NULL DEFAULT 0,
	reason         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX appointment_events_appointment ON appointment_events(appointment_id, id);
CREATE TRIGGER appointment_events_no_update BEFORE UPDATE ON appointment_events
BEGIN
	SELECT RAISE(ABORT, 'appointment history is append-only');
END;
CREATE TRIGGER appointment_events_no_delete BEFORE DELETE ON appointment_events
BEGIN
	SELECT RAISE(ABORT, 'appointment history is append-only');
END;

CREATE TABLE outbox (
	id              INTEGER PRIMARY KEY,
	key             TEXT NOT NULL UNIQUE,
	appointment_id  INTEGER NOT NULL DEFAULT 0,
	kind            TEXT NOT NULL,
	to_address      TEXT NOT NULL,
	to_name         TEXT NOT NULL DEFAULT '',
	subject         TEXT NOT NULL,
	body            TEXT NOT NULL,
	calendar        BLOB,
	method          TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	sent_at         INTEGER NOT NULL DEFAULT 0,
	via             TEXT NOT NULL DEFAULT '',
	failed          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE sent_at = 0 AND failed = 0;
CREATE INDEX outbox_appointment ON outbox(appointment_id, id);

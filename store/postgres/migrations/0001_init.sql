-- Bedside's schema on PostgreSQL: the same records and rules as the SQLite
-- store's migrations 0001 to 0003, written for PostgreSQL. Instants are
-- timestamptz (written by Bedside to the millisecond); a NULL instant is the
-- zero time ("none": no expiry, not revoked, not sent).

-- The no-overlap rule below is an exclusion constraint mixing = on a bigint
-- with && on a range in one GiST index, which needs btree_gist. It is a
-- trusted extension: the database's owner may create it. Open explains what
-- to run if this role may not.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email         text NOT NULL UNIQUE,
	name          text NOT NULL,
	role          text NOT NULL CHECK (role IN ('scheduler', 'physician', 'patient', 'admin')),
	time_zone     text NOT NULL DEFAULT 'UTC',
	password_hash text NOT NULL DEFAULT '',
	birth_date    date, -- NULL if unknown
	phone         text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL
);
-- Names sort byte by byte (COLLATE "C"), as in SQLite, whatever the
-- cluster's locale.
CREATE INDEX users_role_name ON users (role, name COLLATE "C", id);
CREATE INDEX users_email_lower ON users (lower(email));

CREATE TABLE sessions (
	token_hash     bytea PRIMARY KEY,
	user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	appointment_id bigint NOT NULL DEFAULT 0, -- 0: not bound to a visit
	created_at     timestamptz NOT NULL,
	expires_at     timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE credentials (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind           text NOT NULL CHECK (kind IN ('api', 'device', 'join')),
	token_hash     bytea NOT NULL UNIQUE,
	user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	appointment_id bigint NOT NULL DEFAULT 0, -- join links only
	name           text NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL,
	expires_at     timestamptz, -- NULL: never
	revoked_at     timestamptz, -- NULL: not revoked
	last_seq       bigint NOT NULL DEFAULT 0
);
CREATE INDEX credentials_user ON credentials (kind, user_id, id);
-- Rescheduling or cancelling a visit revokes its join links.
CREATE INDEX credentials_join ON credentials (appointment_id) WHERE kind = 'join';

CREATE TABLE schedules (
	physician_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	slot_minutes    integer NOT NULL CHECK (slot_minutes > 0),
	buffer_minutes  integer NOT NULL DEFAULT 0 CHECK (buffer_minutes >= 0),
	notice_minutes  integer NOT NULL DEFAULT 0 CHECK (notice_minutes >= 0),
	horizon_minutes integer NOT NULL DEFAULT 0 CHECK (horizon_minutes >= 0)
);

CREATE TABLE weekly_hours (
	physician_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	weekday      smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
	start_minute integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
	end_minute   integer NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
	CHECK (end_minute > start_minute)
);
CREATE INDEX weekly_hours_physician ON weekly_hours (physician_id);

-- A date listed here replaces the weekly hours on that local date; its
-- blocks (none: a day off) are in override_blocks.
CREATE TABLE override_days (
	physician_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	day          date NOT NULL,
	PRIMARY KEY (physician_id, day)
);
CREATE TABLE override_blocks (
	physician_id bigint NOT NULL,
	day          date NOT NULL,
	start_minute integer NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
	end_minute   integer NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
	CHECK (end_minute > start_minute),
	FOREIGN KEY (physician_id, day) REFERENCES override_days (physician_id, day) ON DELETE CASCADE
);
CREATE INDEX override_blocks_day ON override_blocks (physician_id, day);

CREATE TABLE time_off (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	physician_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	start_at     timestamptz NOT NULL,
	end_at       timestamptz NOT NULL,
	CHECK (end_at > start_at)
);
CREATE INDEX time_off_physician ON time_off (physician_id, start_at);

CREATE TABLE visit_types (
	physician_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	code         text NOT NULL CHECK (code <> ''),
	name         text NOT NULL,
	minutes      integer NOT NULL CHECK (minutes > 0),
	position     integer NOT NULL,
	PRIMARY KEY (physician_id, code)
);

CREATE TABLE appointments (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	physician_id  bigint NOT NULL REFERENCES users (id),
	patient_id    bigint NOT NULL REFERENCES users (id),
	start_at      timestamptz NOT NULL,
	end_at        timestamptz NOT NULL,
	status        text NOT NULL CHECK (status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error')),
	visit_type    text NOT NULL DEFAULT '',
	cancel_reason text NOT NULL DEFAULT '',
	sequence      integer NOT NULL DEFAULT 0 CHECK (sequence >= 0),
	created_at    timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL,
	CHECK (end_at > start_at),
	-- The database itself refuses two overlapping live appointments of one
	-- physician, whatever the code above it does: an insert or update that
	-- would make one fails with SQLSTATE 23P01. Spans are half-open, so a
	-- visit may start as another ends.
	CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
		physician_id WITH =,
		tstzrange(start_at, end_at, '[)') WITH &&
	) WHERE (status NOT IN ('cancelled', 'entered-in-error'))
);
CREATE INDEX appointments_physician ON appointments (physician_id, start_at);
CREATE INDEX appointments_patient ON appointments (patient_id, start_at);
CREATE INDEX appointments_start ON appointments (start_at);

-- Append-only history of each appointment.
CREATE TABLE appointment_events (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	appointment_id bigint NOT NULL REFERENCES appointments (id),
	kind           text NOT NULL CHECK (kind IN ('booked', 'rescheduled', 'status')),
	actor_id       bigint NOT NULL DEFAULT 0, -- 0: Bedside itself
	at             timestamptz NOT NULL,
	from_status    text NOT NULL DEFAULT '',
	to_status      text NOT NULL DEFAULT '',
	old_start      timestamptz,
	old_end        timestamptz,
	new_start      timestamptz,
	new_end        timestamptz,
	reason         text NOT NULL DEFAULT ''
);
CREATE INDEX appointment_events_appointment ON appointment_events (appointment_id, id);

CREATE FUNCTION appointment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'appointment history is append-only' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER appointment_events_no_change BEFORE UPDATE OR DELETE ON appointment_events
	FOR EACH ROW EXECUTE FUNCTION appointment_events_append_only();
CREATE TRIGGER appointment_events_no_truncate BEFORE TRUNCATE ON appointment_events
	FOR EACH STATEMENT EXECUTE FUNCTION appointment_events_append_only();

CREATE TABLE outbox (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	key             text NOT NULL UNIQUE,
	appointment_id  bigint NOT NULL DEFAULT 0,
	kind            text NOT NULL,
	to_address      text NOT NULL,
	to_name         text NOT NULL DEFAULT '',
	subject         text NOT NULL,
	body            text NOT NULL,
	calendar        bytea,
	method          text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL,
	next_attempt_at timestamptz NOT NULL,
	attempts        integer NOT NULL DEFAULT 0,
	last_error      text NOT NULL DEFAULT '',
	sent_at         timestamptz, -- NULL until delivered
	via             text NOT NULL DEFAULT '',
	failed          boolean NOT NULL DEFAULT false
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE sent_at IS NULL AND NOT failed;
CREATE INDEX outbox_appointment ON outbox (appointment_id, id);

CREATE TABLE observations (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_id   bigint NOT NULL REFERENCES users (id),
	device_id    bigint NOT NULL DEFAULT 0, -- 0: entered by hand
	seq          bigint NOT NULL DEFAULT 0, -- 0: none
	code         text NOT NULL,
	value        double precision NOT NULL,
	unit         text NOT NULL,
	effective_at timestamptz NOT NULL,
	received_at  timestamptz NOT NULL
);
CREATE INDEX observations_patient ON observations (patient_id, effective_at);
-- One envelope may carry two readings (a blood-pressure panel), so the
-- device's sequence is unique together with the code.
CREATE UNIQUE INDEX observations_device_seq ON observations (device_id, seq, code) WHERE seq > 0;

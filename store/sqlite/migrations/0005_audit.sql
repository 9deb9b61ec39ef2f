-- The audit trail of access to patient data: append-only and hash-chained
-- (each row's hash covers its fields and the previous row's hash; see
-- package audit). seq counts from 1 with no gaps; AppendAudit assigns it.
-- No foreign keys: the trail outlives what it mentions.
CREATE TABLE audit_events (
	seq        INTEGER PRIMARY KEY,
	at         INTEGER NOT NULL,
	actor_id   INTEGER NOT NULL DEFAULT 0,
	actor_role TEXT NOT NULL,
	action     TEXT NOT NULL,
	patient_id INTEGER NOT NULL DEFAULT 0,
	resource   TEXT NOT NULL DEFAULT '',
	address    TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	prev_hash  BLOB NOT NULL, -- empty for the first event
	hash       BLOB NOT NULL
);
-- "Who looked at this patient last week" and "what did this user do".
CREATE INDEX audit_events_patient ON audit_events(patient_id, at);
CREATE INDEX audit_events_actor ON audit_events(actor_id, at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

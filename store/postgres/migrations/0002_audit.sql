-- The audit trail of access to patient data: append-only and hash-chained
-- (each row's hash covers its fields and the previous row's hash; see
-- package audit). seq counts from 1 with no gaps; AppendAudit assigns it
-- under an advisory lock. No foreign keys: the trail outlives what it
-- mentions.
CREATE TABLE audit_events (
	seq        bigint PRIMARY KEY CHECK (seq > 0),
	at         timestamptz NOT NULL,
	actor_id   bigint NOT NULL DEFAULT 0,
	actor_role text NOT NULL,
	action     text NOT NULL,
	patient_id bigint NOT NULL DEFAULT 0,
	resource   text NOT NULL DEFAULT '',
	address    text NOT NULL DEFAULT '',
	outcome    text NOT NULL,
	prev_hash  bytea NOT NULL, -- empty for the first event
	hash       bytea NOT NULL
);
-- "Who looked at this patient last week" and "what did this user do".
CREATE INDEX audit_events_patient ON audit_events (patient_id, at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The physician's note on a held visit, one per visit, replaced on save.
CREATE TABLE visit_notes (
	appointment_id bigint PRIMARY KEY REFERENCES appointments (id),
	author_id      bigint NOT NULL REFERENCES users (id),
	text           text NOT NULL,
	updated_at     timestamptz NOT NULL
);
-- Observation searches by device (a Device's readings).
CREATE INDEX observations_device ON observations (device_id, effective_at);

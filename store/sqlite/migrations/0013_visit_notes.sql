-- The physician's note on a held visit, one per visit, replaced on save.
CREATE TABLE visit_notes (
	appointment_id INTEGER PRIMARY KEY REFERENCES appointments(id),
	author_id      INTEGER NOT NULL REFERENCES users(id),
	text           TEXT NOT NULL,
	updated_at     INTEGER NOT NULL
);
-- Observation searches by device (a Device's readings).
CREATE INDEX observations_device ON observations(device_id, effective_at);

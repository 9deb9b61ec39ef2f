-- The physician's note on a held visit, one per visit, replaced on save.
CREATE TABLE visit_notes (
	appointment_id INTEGER PRIMARY KEY REFERENCES appointments(id),
	author_id      INTEGER NOT NULL REFERENCES users(id),
	text           TEXT NOT NULL,
	updated_at     INTEGER NOT NULL
);
-- Observation searches by device (a Device's readings).
CREATE INDEX observations_device ON observations(device_id, effective_at);
-- The visit record's timeline groups a visit's readings by code and minute:
-- with the code in the index, that reads the index alone.
CREATE INDEX observations_patient_code ON observations(patient_id, effective_at, code);
-- Flagged readings, which the timeline always shows, without a scan.
CREATE INDEX observations_flagged ON observations(patient_id, effective_at) WHERE flags != '';

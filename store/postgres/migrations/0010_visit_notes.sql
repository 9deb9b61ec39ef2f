-- The physician's note on a held visit, one per visit, replaced on save.
CREATE TABLE visit_notes (
	appointment_id bigint PRIMARY KEY REFERENCES appointments (id),
	author_id      bigint NOT NULL REFERENCES users (id),
	text           text NOT NULL,
	updated_at     timestamptz NOT NULL
);
-- Observation searches by device (a Device's readings).
CREATE INDEX observations_device ON observations (device_id, effective_at);
-- The visit record's timeline: grouping by code and minute from the index,
-- and the flagged readings, which it always shows, without a scan.
CREATE INDEX observations_patient_code ON observations (patient_id, effective_at, code);
CREATE INDEX observations_flagged ON observations (patient_id, effective_at) WHERE flags <> '';

-- Devices connecting and disconnecting, for the patient's vitals timeline.
CREATE TABLE device_events (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	patient_id  bigint NOT NULL REFERENCES users (id),
	device_id   bigint NOT NULL REFERENCES credentials (id),
	device_name text NOT NULL,
	kind        text NOT NULL CHECK (kind IN ('connected', 'disconnected')),
	at          timestamptz NOT NULL
);
CREATE INDEX device_events_patient ON device_events (patient_id, at);

-- Devices connecting and disconnecting, for the patient's vitals timeline.
CREATE TABLE device_events (
	id          INTEGER PRIMARY KEY,
	patient_id  INTEGER NOT NULL REFERENCES users(id),
	device_id   INTEGER NOT NULL REFERENCES credentials(id),
	device_name TEXT NOT NULL,
	kind        TEXT NOT NULL CHECK (kind IN ('connected', 'disconnected')),
	at          INTEGER NOT NULL
);
CREATE INDEX device_events_patient ON device_events(patient_id, at);

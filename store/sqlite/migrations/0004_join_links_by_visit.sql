-- A visit's join links are looked up (to write one into a reminder, to
-- revoke them on a move) by appointment; without this index each lookup
-- read every credential of the patient.
CREATE INDEX credentials_join ON credentials(appointment_id) WHERE kind = 'join';

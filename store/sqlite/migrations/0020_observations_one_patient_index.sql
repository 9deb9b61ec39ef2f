-- The index by code, observations_patient_code (patient, code, time),
-- listed a patient's codes, and found a code's latest reading of a span
-- with one seek, from which the visit record and the chart sample the
-- readings. The minutes (Unix milliseconds / 60,000) with readings of
-- each code now say both: the sample seeks the readings of a code only in
-- the spans that have some. A row is added when a code's first reading of
-- a minute is stored. Filled in that index's order, with no DISTINCT to
-- hold in memory.
CREATE TABLE observation_minutes (
	patient_id INTEGER NOT NULL,
	code       TEXT NOT NULL,
	minute     INTEGER NOT NULL,
	PRIMARY KEY (patient_id, code, minute)
) WITHOUT ROWID;
INSERT OR IGNORE INTO observation_minutes (patient_id, code, minute)
	SELECT patient_id, code, effective_at / 60000 FROM observations INDEXED BY observations_patient_code
	ORDER BY patient_id, code, effective_at;

-- A device's commit wrote, for each of its patient's codes, the last leaf
-- of that code in observations_patient_code: five pages a patient a
-- second at five numerics, two thirds of the pages a commit of live
-- readings wrote. One index by patient, time and code now serves what
-- that index and observations_patient (patient, time) served, and a
-- patient's new readings of every code end on one leaf of it.
DROP INDEX observations_patient_code;
DROP INDEX observations_patient;
CREATE INDEX observations_patient ON observations(patient_id, effective_at, code);

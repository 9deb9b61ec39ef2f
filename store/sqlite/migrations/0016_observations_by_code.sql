-- The visit record samples, for each code, the latest reading of each
-- minute. Indexed by time then code, that grouped and sorted every reading
-- of the visit; indexed by code then time, each sample is one seek, and
-- the patient's codes are found by skipping from one to the next.
DROP INDEX observations_patient_code;
CREATE INDEX observations_patient_code ON observations(patient_id, code, effective_at);

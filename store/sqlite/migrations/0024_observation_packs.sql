-- A commit of live readings wrote a row of observations and an entry of
-- observations_patient for each reading, five a patient a second: two
-- thirds of the writer's work. The readings one append stores of one
-- patient, device and relayed device within one minute are now one row,
-- a pack, its readings encoded in one value (store/sqlite/packs.go). The
-- readings' IDs are the pack's ID and the next n - 1, taken above every
-- ID of both tables, so a reading's ID stays unique and its own. The
-- readings stored before stay where they are, and readers read both.
--
-- A pack's codes, and how many of its readings have each, are one of a
-- few sets its device's stream repeats, kept once: the index of packs
-- holds the set's ID, so that a search counts a code's readings without
-- reading the packs.
CREATE TABLE observation_code_sets (
	id    INTEGER PRIMARY KEY,
	codes BLOB NOT NULL UNIQUE
);
CREATE TABLE observation_packs (
	id          INTEGER PRIMARY KEY,
	patient_id  INTEGER NOT NULL REFERENCES users(id),
	device_id   INTEGER NOT NULL,
	relayed_id  INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	first_at    INTEGER NOT NULL, -- the earliest reading's effective time
	last_at     INTEGER NOT NULL, -- the latest reading's
	n           INTEGER NOT NULL CHECK (n > 0),
	codes_id    INTEGER NOT NULL, -- observation_code_sets; only the store writes it
	flagged     INTEGER NOT NULL, -- 1 if a reading carries flags
	readings    BLOB NOT NULL
);
-- By the latest reading: walked back from a span's end, the first pack
-- whose latest reading is before the latest found of a code ends the
-- walk. n and codes_id let a range's readings be counted from the index
-- alone.
CREATE INDEX observation_packs_patient ON observation_packs(patient_id, last_at, n, codes_id);
CREATE INDEX observation_packs_flagged ON observation_packs(patient_id, last_at) WHERE flagged;

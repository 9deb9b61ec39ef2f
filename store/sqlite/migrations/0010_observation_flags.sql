-- What the device reported about a measurement (motion, a loose cuff,
-- poor contact), one per line: the reading is kept and shown as doubtful.
ALTER TABLE observations ADD COLUMN flags TEXT NOT NULL DEFAULT '';

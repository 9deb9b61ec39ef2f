-- A relay (the patient's browser, a hub) stores the readings of the
-- Bluetooth devices it paired under its own credential, which keeps
-- their sequence. Each such device is kept once per relay and name, and
-- a reading names it by its ID: relayed_id, 0 for a reading its device
-- measured itself, and for one relayed before relayed devices were kept
-- (which device measured it is not known). An integer that is 0 takes no
-- room in a row, so readings of direct devices cost nothing more; like
-- device_id, it has no foreign key to check on each insert: only the
-- store writes it, with an ID it took from relayed_devices.
CREATE TABLE relayed_devices (
	id         INTEGER PRIMARY KEY,
	relay_id   INTEGER NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
	name       TEXT NOT NULL CHECK (name != ''),
	created_at INTEGER NOT NULL,
	UNIQUE (relay_id, name)
);
ALTER TABLE observations ADD COLUMN relayed_id INTEGER NOT NULL DEFAULT 0;

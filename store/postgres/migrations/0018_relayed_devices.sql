-- A relay (the patient's browser, a hub) stores the readings of the
-- Bluetooth devices it paired under its own credential, which keeps
-- their sequence. Each such device is kept once per relay and name, and
-- a reading names it by its ID: relayed_id, 0 for a reading its device
-- measured itself, and for one relayed before relayed devices were kept
-- (which device measured it is not known). Adding a column with a
-- constant default rewrites no row; like device_id, it has no foreign
-- key to check on each insert: only the store writes it, with an ID it
-- took from relayed_devices.
CREATE TABLE relayed_devices (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	relay_id   bigint NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
	name       text NOT NULL CHECK (name <> ''),
	created_at timestamptz NOT NULL,
	UNIQUE (relay_id, name)
);
ALTER TABLE observations ADD COLUMN relayed_id bigint NOT NULL DEFAULT 0;

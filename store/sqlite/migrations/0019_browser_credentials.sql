-- A patient's browser streams their paired devices as a device credential
-- of its own, with no usable token. It was told apart by its name alone,
-- which an admin may also give a hub; it is now marked. Those made so far
-- are the "Web browser" devices without an expiry: a device an admin adds
-- always has one.
ALTER TABLE credentials ADD COLUMN browser INTEGER NOT NULL DEFAULT 0;
UPDATE credentials SET browser = 1 WHERE kind = 'device' AND name = 'Web browser' AND expires_at = 0;

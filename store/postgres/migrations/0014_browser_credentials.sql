-- A patient's browser streams their paired devices as a device credential
-- of its own, with no usable token. It was told apart by its name alone,
-- which an admin may also give a hub; it is now marked. Those made so far
-- are the "Web browser" devices without an expiry: a device an admin adds
-- always has one.
ALTER TABLE credentials ADD COLUMN browser boolean NOT NULL DEFAULT false;
UPDATE credentials SET browser = true WHERE kind = 'device' AND name = 'Web browser' AND expires_at IS NULL;

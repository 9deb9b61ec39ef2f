-- A device's readings are checked for resends against the device's
-- last_seq, read in the commit's own transaction (store.Observations):
-- the unique index on (device, seq, code), one more page each device's
-- commit wrote every second, is not needed.
DROP INDEX observations_device_seq;

-- A device's readings are checked for resends against the device's
-- last_seq, read and locked in the commit's own transaction
-- (store.Observations): the unique index on (device, seq, code) is not
-- needed.
DROP INDEX observations_device_seq;

-- The no-overlap rule scanned every earlier appointment of the physician
-- (the index is by start), so booking slowed as history grew. Live
-- appointments are now indexed by end, covering start: the check reads only
-- the physician's live appointments that end after the new start, which for
-- a booking in the future is the physician's future diary, not the past.
CREATE INDEX appointments_live_end ON appointments(physician_id, end_at, start_at)
	WHERE status NOT IN ('cancelled', 'entered-in-error');

DROP TRIGGER appointments_no_overlap_insert;
DROP TRIGGER appointments_no_overlap_update;

CREATE TRIGGER appointments_no_overlap_insert BEFORE INSERT ON appointments
WHEN NEW.status NOT IN ('cancelled', 'entered-in-error') AND EXISTS (
	SELECT 1 FROM appointments a
	WHERE a.physician_id = NEW.physician_id
	  AND a.status NOT IN ('cancelled', 'entered-in-error')
	  AND a.end_at > NEW.start_at AND a.start_at < NEW.end_at)
BEGIN
	SELECT RAISE(ABORT, 'appointment overlaps another');
END;

CREATE TRIGGER appointments_no_overlap_update BEFORE UPDATE OF start_at, end_at, status, physician_id ON appointments
WHEN NEW.status NOT IN ('cancelled', 'entered-in-error') AND EXISTS (
	SELECT 1 FROM appointments a
	WHERE a.id <> NEW.id
	  AND a.physician_id = NEW.physician_id
	  AND a.status NOT IN ('cancelled', 'entered-in-error')
	  AND a.end_at > NEW.start_at AND a.start_at < NEW.end_at)
BEGIN
	SELECT RAISE(ABORT, 'appointment overlaps another');
END;

-- The zone a visit was booked in, kept with it so its wall-clock time
-- stays what was agreed even if the physician's zone later changes.
-- Existing visits take their physician's zone as it is now.
ALTER TABLE appointments ADD COLUMN zone text NOT NULL DEFAULT 'UTC';
UPDATE appointments SET zone = users.time_zone FROM users WHERE users.id = appointments.physician_id;

-- A Bluetooth device's events that a relay (the patient's browser, a hub)
-- reports are kept under the relay's credential, like the socket's own
-- connect and disconnect: relay names the relay at the time, so the
-- timeline tells the two apart. '' is the socket's own event.
ALTER TABLE device_events ADD COLUMN relay TEXT NOT NULL DEFAULT '';

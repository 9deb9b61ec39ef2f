-- Staff may add a second factor: a TOTP secret, sealed with the server key.
ALTER TABLE users ADD COLUMN totp_secret BLOB;

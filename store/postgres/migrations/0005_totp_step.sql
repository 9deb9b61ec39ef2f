-- The last second-factor time step whose code was used, so a code works
-- once (RFC 6238 section 5.2).
ALTER TABLE users ADD COLUMN totp_step bigint NOT NULL DEFAULT 0;

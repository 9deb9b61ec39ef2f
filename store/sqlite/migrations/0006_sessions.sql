-- Idle timeouts need each session's last use; sign-in throttling counts
-- failures per account and per address, shared by every process.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE login_failures (
	key TEXT NOT NULL,
	at  INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at);

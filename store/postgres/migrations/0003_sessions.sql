-- Idle timeouts need each session's last use; sign-in throttling counts
-- failures per account and per address, shared by every node.
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz;

CREATE TABLE login_failures (
	key text NOT NULL,
	at  timestamptz NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);

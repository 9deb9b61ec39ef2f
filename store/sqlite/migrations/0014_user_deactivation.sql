-- An admin may deactivate an account: it may no longer sign in, and its
-- sessions and credentials end. 0 (milliseconds) while the account is active.
ALTER TABLE users ADD COLUMN deactivated_at INTEGER NOT NULL DEFAULT 0;

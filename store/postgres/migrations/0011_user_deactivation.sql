-- An admin may deactivate an account: it may no longer sign in, and its
-- sessions and credentials end. NULL while the account is active.
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;

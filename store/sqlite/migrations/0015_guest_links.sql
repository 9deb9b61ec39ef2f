-- Guests' links to one visit's call (an interpreter, a family member, a
-- second physician): who they are, who issued the link, and until when it
-- opens. Only the token's hash is kept.
CREATE TABLE guest_links (
	id             INTEGER PRIMARY KEY,
	appointment_id INTEGER NOT NULL REFERENCES appointments(id),
	token_hash     BLOB NOT NULL UNIQUE,
	role           TEXT NOT NULL CHECK (role IN ('interpreter', 'family', 'physician')),
	name           TEXT NOT NULL CHECK (name != ''),
	issued_by      INTEGER NOT NULL REFERENCES users(id),
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	revoked_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX guest_links_appointment ON guest_links(appointment_id);

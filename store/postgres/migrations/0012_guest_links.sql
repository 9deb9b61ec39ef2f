-- Guests' links to one visit's call (an interpreter, a family member, a
-- second physician): who they are, who issued the link, and until when it
-- opens. Only the token's hash is kept.
CREATE TABLE guest_links (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	appointment_id bigint NOT NULL REFERENCES appointments (id),
	token_hash     bytea NOT NULL UNIQUE,
	role           text NOT NULL CHECK (role IN ('interpreter', 'family', 'physician')),
	name           text NOT NULL CHECK (name <> ''),
	issued_by      bigint NOT NULL REFERENCES users (id),
	created_at     timestamptz NOT NULL,
	expires_at     timestamptz NOT NULL,
	revoked_at     timestamptz -- NULL: not revoked
);
CREATE INDEX guest_links_appointment ON guest_links (appointment_id, id);

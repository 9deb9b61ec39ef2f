package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

const userCols = `id, email, name, role, time_zone, password_hash, created_at`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var created int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.TimeZone, &u.PasswordHash, &created)
	u.CreatedAt = at(created)
	return u, err
}

// CreateUser stores a new user; an email already in use gives store.ErrConflict.
func (s *DB) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now().UTC()
	}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO users (email, name, role, time_zone, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		u.Email, u.Name, u.Role, u.TimeZone, u.PasswordHash, ms(u.CreatedAt))
	if isUnique(err) {
		return u, fmt.Errorf("create user %s: %w", u.Email, store.ErrConflict)
	}
	if err != nil {
		return u, fmt.Errorf("create user: %w", err)
	}
	u.ID, _ = res.LastInsertId()
	u.CreatedAt = at(ms(u.CreatedAt))
	return u, nil
}

// UserByID finds a user by id.
func (s *DB) UserByID(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, notFound(err, fmt.Sprintf("user %d", id))
	}
	return u, nil
}

// UserByEmail finds a user by email.
func (s *DB) UserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	if err != nil {
		return u, notFound(err, "user by email")
	}
	return u, nil
}

// ListUsers lists users of a role by name, or every user when role is "".
func (s *DB) ListUsers(ctx context.Context, role store.Role) ([]store.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE ? = '' OR role = ? ORDER BY name, id`, role, role)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetPassword replaces a user's password hash.
func (s *DB) SetPassword(ctx context.Context, userID int64, hash string) error {
	return s.execOne(ctx, fmt.Sprintf("set password of user %d", userID), `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
}

// execOne runs a statement that must change exactly one row.
func (s *DB) execOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateSession stores a session.
func (s *DB) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, appointment_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		se.TokenHash, se.UserID, se.AppointmentID, ms(se.CreatedAt), ms(se.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByHash finds a session by the hash of its token.
func (s *DB) SessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	var se store.Session
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT token_hash, user_id, appointment_id, created_at, expires_at FROM sessions WHERE token_hash = ?`, hash).
		Scan(&se.TokenHash, &se.UserID, &se.AppointmentID, &created, &expires)
	if err != nil {
		return se, notFound(err, "session")
	}
	se.CreatedAt, se.ExpiresAt = at(created), at(expires)
	return se, nil
}

// DeleteSession removes a session; removing a missing one is not an error.
func (s *DB) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

const credCols = `id, kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq`

func scanCredential(row interface{ Scan(...any) error }) (store.Credential, error) {
	var c store.Credential
	var created, expires, revoked int64
	err := row.Scan(&c.ID, &c.Kind, &c.TokenHash, &c.UserID, &c.AppointmentID, &c.Name, &created, &expires, &revoked, &c.LastSeq)
	c.CreatedAt, c.ExpiresAt, c.RevokedAt = at(created), at(expires), at(revoked)
	return c, err
}

// CreateCredential stores a hashed bearer credential.
func (s *DB) CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO credentials (kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Kind, c.TokenHash, c.UserID, c.AppointmentID, c.Name, ms(c.CreatedAt), ms(c.ExpiresAt), ms(c.RevokedAt), c.LastSeq)
	if isUnique(err) {
		return c, fmt.Errorf("create credential: %w", store.ErrConflict)
	}
	if err != nil {
		return c, fmt.Errorf("create credential: %w", err)
	}
	c.ID, _ = res.LastInsertId()
	return c, nil
}

// CredentialByHash finds a credential of a kind by its token's hash.
func (s *DB) CredentialByHash(ctx context.Context, kind string, hash []byte) (store.Credential, error) {
	c, err := scanCredential(s.db.QueryRowContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = ? AND token_hash = ?`, kind, hash))
	if err != nil {
		return c, notFound(err, kind+" credential")
	}
	return c, nil
}

// ListCredentials lists a user's credentials of a kind, oldest first.
func (s *DB) ListCredentials(ctx context.Context, kind string, userID int64) ([]store.Credential, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = ? AND user_id = ? ORDER BY id`, kind, userID)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	var out []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RevokeCredential marks a credential revoked at the given time.
func (s *DB) RevokeCredential(ctx context.Context, id int64, when time.Time) error {
	return s.execOne(ctx, fmt.Sprintf("revoke credential %d", id), `UPDATE credentials SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, ms(when), id)
}

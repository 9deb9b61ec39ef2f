package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/bedside-health/bedside/store"
)

const userCols = `id, email, name, role, time_zone, password_hash, created_at, birth_date, phone, totp_secret, deactivated_at`

func scanUser(row scanner) (store.User, error) {
	var u store.User
	var created, deactivated int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.TimeZone, &u.PasswordHash, &created, &u.BirthDate, &u.Phone, &u.TOTPSecret, &deactivated)
	u.CreatedAt, u.DeactivatedAt = at(created), at(deactivated)
	return u, err
}

// CreateUser stores a new user and returns it with its ID; an empty TimeZone
// is stored as "UTC" and a zero CreatedAt as now. An email already in use
// gives store.ErrConflict.
func (s *DB) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if !u.Role.Valid() {
		return u, fmt.Errorf("create user %s: unknown role %q", u.Email, u.Role)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	if err := checkBirthDate(u.BirthDate); err != nil {
		return u, fmt.Errorf("create user %s: %w", u.Email, err)
	}
	u.CreatedAt = norm(u.CreatedAt)
	err := s.w.QueryRowContext(ctx, `INSERT INTO users (email, name, role, time_zone, password_hash, created_at, birth_date, phone)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Email, u.Name, u.Role, u.TimeZone, u.PasswordHash, ms(u.CreatedAt), u.BirthDate, u.Phone).Scan(&u.ID)
	if err != nil {
		return u, wrap(err, "create user %s", u.Email)
	}
	return u, nil
}

// UserByID finds a user by ID.
func (s *DB) UserByID(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, wrap(err, "user %d", id)
	}
	return u, nil
}

// UserByEmail finds a user by exact email.
func (s *DB) UserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	if err != nil {
		return u, wrap(err, "user by email")
	}
	return u, nil
}

// ListUsers lists the users of a role, or every user when role is "",
// ordered by name then ID.
func (s *DB) ListUsers(ctx context.Context, role store.Role) ([]store.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE ? = '' OR role = ? ORDER BY name, id`, role, role)
	out, err := collect(rows, err, scanUser)
	if err != nil {
		return nil, wrap(err, "list users")
	}
	return out, nil
}

// checkBirthDate accepts "" or a real date written YYYY-MM-DD.
func checkBirthDate(d string) error {
	if d == "" {
		return nil
	}
	if _, err := time.Parse(time.DateOnly, d); err != nil {
		return fmt.Errorf("birth date %q is not a date written YYYY-MM-DD", d)
	}
	return nil
}

// SearchUsers returns one page of the users q selects, by name then ID, and
// how many it selects in all.
func (s *DB) SearchUsers(ctx context.Context, q store.UserQuery) ([]store.User, int, error) {
	where := []string{"1 = 1"}
	var args []any
	if q.Role != "" {
		where, args = append(where, "role = ?"), append(args, q.Role)
	}
	if q.Email != "" {
		where, args = append(where, "email = ? COLLATE NOCASE"), append(args, q.Email)
	}
	if q.BirthDate != "" {
		where, args = append(where, "birth_date = ?"), append(args, q.BirthDate)
	}
	switch q.Status {
	case store.UserActive:
		where = append(where, "deactivated_at = 0")
	case store.UserDeactivated:
		where = append(where, "deactivated_at != 0")
	}
	for _, w := range strings.Fields(q.Text) {
		pat := "%" + likeEscape(w) + "%"
		where, args = append(where, `(name LIKE ? ESCAPE '\' OR email LIKE ? ESCAPE '\')`), append(args, pat, pat)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "search users")
	}
	limit, offset := page(q.Limit, q.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE `+cond+` ORDER BY name, id LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	out, err := collect(rows, err, scanUser)
	if err != nil {
		return nil, 0, wrap(err, "search users")
	}
	return out, total, nil
}

// likeEscape escapes LIKE's wildcards in a search word.
func likeEscape(w string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(w)
}

// page is a query's LIMIT and OFFSET: a limit of 0 is 100, and neither
// may be negative or the limit above 1000.
func page(limit, offset int) (int, int) {
	if limit <= 0 {
		limit = 100
	}
	return min(limit, 1000), max(offset, 0)
}

// UpdateUser replaces a user's name, time zone, birth date and phone and
// returns the user as stored.
func (s *DB) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	if err := checkBirthDate(u.BirthDate); err != nil {
		return u, fmt.Errorf("update user %d: %w", u.ID, err)
	}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	if err := s.execOne(ctx, fmt.Sprintf("update user %d", u.ID),
		`UPDATE users SET name = ?, time_zone = ?, birth_date = ?, phone = ? WHERE id = ?`,
		u.Name, u.TimeZone, u.BirthDate, u.Phone, u.ID); err != nil {
		return u, err
	}
	return s.UserByID(ctx, u.ID)
}

// SetPassword replaces a user's password hash.
func (s *DB) SetPassword(ctx context.Context, userID int64, hash string) error {
	return s.execOne(ctx, fmt.Sprintf("set password of user %d", userID), `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
}

// execOne runs a statement that must change exactly one row; none is
// store.ErrNotFound.
func (s *DB) execOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	return changedOne(what, res, err)
}

// changedOne checks the result of a statement that must change a row:
// none changed is store.ErrNotFound.
func changedOne(what string, res sql.Result, err error) error {
	if err != nil {
		return wrap(err, "%s", what)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(err, "%s", what)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateSession stores a session; a token hash already stored gives
// store.ErrConflict and an unknown user store.ErrNotFound.
func (s *DB) CreateSession(ctx context.Context, se store.Session) error {
	if se.CreatedAt.IsZero() {
		se.CreatedAt = time.Now()
	}
	if se.LastSeenAt.IsZero() {
		se.LastSeenAt = se.CreatedAt
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, appointment_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)`,
		se.TokenHash, se.UserID, se.AppointmentID, ms(se.CreatedAt), ms(se.ExpiresAt), ms(se.LastSeenAt))
	if err != nil {
		return wrap(err, "create session for user %d", se.UserID)
	}
	return nil
}

// SessionByHash finds a session by the hash of its token. Expiry is the
// caller's to check.
func (s *DB) SessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	var se store.Session
	var created, expires, seen int64
	err := s.r.QueryRowContext(ctx, `SELECT token_hash, user_id, appointment_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = ?`, hash).
		Scan(&se.TokenHash, &se.UserID, &se.AppointmentID, &created, &expires, &seen)
	if err != nil {
		return se, wrap(err, "session")
	}
	se.CreatedAt, se.ExpiresAt, se.LastSeenAt = at(created), at(expires), at(seen)
	if se.LastSeenAt.IsZero() {
		se.LastSeenAt = se.CreatedAt
	}
	return se, nil
}

// TouchSession records a session's last use.
func (s *DB) TouchSession(ctx context.Context, hash []byte, when time.Time) error {
	return s.execOne(ctx, "touch session", `UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?`, ms(when), hash)
}

// DeleteUserSessions ends every session of a user and says how many there were.
func (s *DB) DeleteUserSessions(ctx context.Context, userID int64) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, wrap(err, "delete sessions of user %d", userID)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// RecordLoginFailure records a failed sign-in for key and counts key's
// failures since since, in one transaction; failures older than a day are
// pruned on the way.
func (s *DB) RecordLoginFailure(ctx context.Context, key string, when, since time.Time) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap(err, "record login failure")
	}
	defer tx.Rollback()
	var n int
	_, err = tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ? AND at < ?`, key, ms(when.Add(-24*time.Hour)))
	if err == nil {
		_, err = tx.ExecContext(ctx, `INSERT INTO login_failures (key, at) VALUES (?, ?)`, key, ms(when))
	}
	if err == nil {
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE key = ? AND at >= ?`, key, ms(since)).Scan(&n)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return 0, wrap(err, "record login failure")
	}
	return n, nil
}

// LoginFailures counts key's failed sign-ins since since.
func (s *DB) LoginFailures(ctx context.Context, key string, since time.Time) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE key = ? AND at >= ?`, key, ms(since)).Scan(&n); err != nil {
		return 0, wrap(err, "count login failures")
	}
	return n, nil
}

// ClearLoginFailures forgets key's failed sign-ins.
func (s *DB) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, key); err != nil {
		return wrap(err, "clear login failures")
	}
	return nil
}

// DeleteSession removes a session; removing a missing one is not an error.
func (s *DB) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hash); err != nil {
		return wrap(err, "delete session")
	}
	return nil
}

const credCols = `id, kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq, browser`

func scanCredential(row scanner) (store.Credential, error) {
	var c store.Credential
	var created, expires, revoked int64
	err := row.Scan(&c.ID, &c.Kind, &c.TokenHash, &c.UserID, &c.AppointmentID, &c.Name, &created, &expires, &revoked, &c.LastSeq, &c.Browser)
	c.CreatedAt, c.ExpiresAt, c.RevokedAt = at(created), at(expires), at(revoked)
	return c, err
}

// CreateCredential stores a hashed bearer credential and returns it with its
// ID; a zero CreatedAt is stored as now. A token hash already stored gives
// store.ErrConflict and an unknown user store.ErrNotFound.
func (s *DB) CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	switch c.Kind {
	case store.CredentialAPI, store.CredentialDevice, store.CredentialJoin:
	default:
		return c, fmt.Errorf("create credential: unknown kind %q", c.Kind)
	}
	if c.Browser && c.Kind != store.CredentialDevice {
		return c, fmt.Errorf("create credential: a %s credential cannot be a browser's", c.Kind)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	c.CreatedAt, c.ExpiresAt, c.RevokedAt = norm(c.CreatedAt), norm(c.ExpiresAt), norm(c.RevokedAt)
	err := s.w.QueryRowContext(ctx, `INSERT INTO credentials (kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq, browser)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.Kind, c.TokenHash, c.UserID, c.AppointmentID, c.Name, ms(c.CreatedAt), ms(c.ExpiresAt), ms(c.RevokedAt), c.LastSeq, c.Browser).Scan(&c.ID)
	if err != nil {
		return c, wrap(err, "create %s credential for user %d", c.Kind, c.UserID)
	}
	return c, nil
}

// CredentialByHash finds a credential of a kind by its token's hash, revoked
// and expired ones included: validity is the caller's to check.
func (s *DB) CredentialByHash(ctx context.Context, kind string, hash []byte) (store.Credential, error) {
	c, err := scanCredential(s.r.QueryRowContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = ? AND token_hash = ?`, kind, hash))
	if err != nil {
		return c, wrap(err, "%s credential", kind)
	}
	return c, nil
}

// ListCredentials lists a user's credentials of a kind, oldest first.
func (s *DB) ListCredentials(ctx context.Context, kind string, userID int64) ([]store.Credential, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = ? AND user_id = ? ORDER BY id`, kind, userID)
	out, err := collect(rows, err, scanCredential)
	if err != nil {
		return nil, wrap(err, "list %s credentials of user %d", kind, userID)
	}
	return out, nil
}

// JoinCredentials lists an appointment's join links, oldest first.
func (s *DB) JoinCredentials(ctx context.Context, appointmentID int64) ([]store.Credential, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = 'join' AND appointment_id = ? ORDER BY id`, appointmentID)
	out, err := collect(rows, err, scanCredential)
	if err != nil {
		return nil, wrap(err, "join links of appointment %d", appointmentID)
	}
	return out, nil
}

// RevokeCredential marks a credential revoked at the given time, and ends
// the sessions a join link opened; revoking it
// again keeps the first time. An unknown ID gives store.ErrNotFound.
func (s *DB) RevokeCredential(ctx context.Context, id int64, when time.Time) error {
	if when.IsZero() {
		when = time.Now()
	}
	what := fmt.Sprintf("revoke credential %d", id)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "%s", what)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE credentials SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, ms(when), id)
	if err := changedOne(what, res, err); err != nil {
		return err
	}
	// A join link's sessions end with it.
	_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE appointment_id != 0 AND (user_id, appointment_id) IN
		(SELECT user_id, appointment_id FROM credentials WHERE id = ? AND kind = 'join')`, id)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return wrap(err, "%s", what)
	}
	return nil
}

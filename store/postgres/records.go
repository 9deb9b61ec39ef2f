package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bedside-health/bedside/store"
)

// params collects the arguments of a query built piece by piece.
type params []any

// add appends v and returns its placeholder, $1, $2...
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

const userCols = `id, email, name, role, time_zone, password_hash, created_at, birth_date, phone, totp_secret, deactivated_at`

// byName orders users as the SQLite store does: byte by byte, then by ID.
const byName = `ORDER BY name COLLATE "C", id`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	var born pgtype.Date
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.TimeZone, &u.PasswordHash, utc(&u.CreatedAt), &born, &u.Phone, &u.TOTPSecret, utc(&u.DeactivatedAt))
	if born.Valid {
		u.BirthDate = born.Time.Format(time.DateOnly)
	}
	return u, err
}

// birthDate checks a birth date, "" or a real date written YYYY-MM-DD, and
// returns the argument that stores it: NULL for "".
func birthDate(d string) (any, error) {
	if d == "" {
		return nil, nil
	}
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return nil, fmt.Errorf("birth date %q is not a date written YYYY-MM-DD", d)
	}
	return t, nil
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
	born, err := birthDate(u.BirthDate)
	if err != nil {
		return u, fmt.Errorf("create user %s: %w", u.Email, err)
	}
	u.CreatedAt = norm(u.CreatedAt)
	err = s.pool.QueryRow(ctx, `INSERT INTO users (email, name, role, time_zone, password_hash, created_at, birth_date, phone)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		u.Email, u.Name, string(u.Role), u.TimeZone, u.PasswordHash, u.CreatedAt, born, u.Phone).Scan(&u.ID)
	if err != nil {
		return u, wrap(err, "create user %s", u.Email)
	}
	return u, nil
}

// UserByID finds a user by ID.
func (s *DB) UserByID(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return u, wrap(err, "user %d", id)
	}
	return u, nil
}

// UserByEmail finds a user by exact email.
func (s *DB) UserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = $1`, email))
	if err != nil {
		return u, wrap(err, "user by email")
	}
	return u, nil
}

// ListUsers lists the users of a role, or every user when role is "",
// ordered by name then ID.
func (s *DB) ListUsers(ctx context.Context, role store.Role) ([]store.User, error) {
	var args params
	cond := "true"
	if role != "" {
		cond = "role = " + args.add(string(role))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE `+cond+` `+byName, args...)
	out, err := collect(rows, err, scanUser)
	if err != nil {
		return nil, wrap(err, "list users")
	}
	return out, nil
}

// SearchUsers returns one page of the users q selects, by name then ID, and
// how many it selects in all. Text matches with ILIKE, its wildcards
// escaped; Email matches without regard to case.
func (s *DB) SearchUsers(ctx context.Context, q store.UserQuery) ([]store.User, int, error) {
	where := []string{"true"}
	var args params
	if q.Role != "" {
		where = append(where, "role = "+args.add(string(q.Role)))
	}
	if q.Email != "" {
		where = append(where, "lower(email) = lower("+args.add(q.Email)+")")
	}
	if q.BirthDate != "" {
		born, err := birthDate(q.BirthDate)
		if err != nil {
			return nil, 0, nil // no one was born on a day that does not exist
		}
		where = append(where, "birth_date = "+args.add(born))
	}
	switch q.Status {
	case store.UserActive:
		where = append(where, "deactivated_at IS NULL")
	case store.UserDeactivated:
		where = append(where, "deactivated_at IS NOT NULL")
	}
	for _, w := range strings.Fields(q.Text) {
		pat := args.add("%" + likeEscape(w) + "%")
		where = append(where, `(name ILIKE `+pat+` ESCAPE '\' OR email ILIKE `+pat+` ESCAPE '\')`)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "search users")
	}
	limit, offset := page(q.Limit, q.Offset)
	query := `SELECT ` + userCols + ` FROM users WHERE ` + cond + ` ` + byName + ` LIMIT ` + args.add(limit) + ` OFFSET ` + args.add(offset)
	rows, err := s.pool.Query(ctx, query, args...)
	out, err := collect(rows, err, scanUser)
	if err != nil {
		return nil, 0, wrap(err, "search users")
	}
	return out, total, nil
}

// UpdateUser replaces a user's name, time zone, birth date and phone and
// returns the user as stored.
func (s *DB) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	born, err := birthDate(u.BirthDate)
	if err != nil {
		return u, fmt.Errorf("update user %d: %w", u.ID, err)
	}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	got, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET name = $1, time_zone = $2, birth_date = $3, phone = $4 WHERE id = $5
		RETURNING `+userCols, u.Name, u.TimeZone, born, u.Phone, u.ID))
	if err != nil {
		return u, wrap(err, "update user %d", u.ID)
	}
	return got, nil
}

// SetPassword replaces a user's password hash.
func (s *DB) SetPassword(ctx context.Context, userID int64, hash string) error {
	return s.execOne(ctx, fmt.Sprintf("set password of user %d", userID), `UPDATE users SET password_hash = $1 WHERE id = $2`, hash, userID)
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
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, appointment_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		se.TokenHash, se.UserID, se.AppointmentID, norm(se.CreatedAt), norm(se.ExpiresAt), norm(se.LastSeenAt))
	if err != nil {
		return wrap(err, "create session for user %d", se.UserID)
	}
	return nil
}

// SessionByHash finds a session by the hash of its token. Expiry is the
// caller's to check.
func (s *DB) SessionByHash(ctx context.Context, hash []byte) (store.Session, error) {
	var se store.Session
	err := s.pool.QueryRow(ctx, `SELECT token_hash, user_id, appointment_id, created_at, expires_at, COALESCE(last_seen_at, created_at) FROM sessions WHERE token_hash = $1`, hash).
		Scan(&se.TokenHash, &se.UserID, &se.AppointmentID, utc(&se.CreatedAt), utc(&se.ExpiresAt), utc(&se.LastSeenAt))
	if err != nil {
		return se, wrap(err, "session")
	}
	return se, nil
}

// TouchSession records a session's last use.
func (s *DB) TouchSession(ctx context.Context, hash []byte, when time.Time) error {
	return s.execOne(ctx, "touch session", `UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2`, norm(when), hash)
}

// DeleteUserSessions ends every session of a user and says how many there were.
func (s *DB) DeleteUserSessions(ctx context.Context, userID int64) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, wrap(err, "delete sessions of user %d", userID)
	}
	return int(tag.RowsAffected()), nil
}

// RecordLoginFailure records a failed sign-in for key and counts key's
// failures since since, in one statement; failures older than a day are
// pruned first.
func (s *DB) RecordLoginFailure(ctx context.Context, key string, when, since time.Time) (int, error) {
	if _, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1 AND at < $2`, key, norm(when.Add(-24*time.Hour))); err != nil {
		return 0, wrap(err, "record login failure")
	}
	var n int
	err := s.pool.QueryRow(ctx, `WITH ins AS (INSERT INTO login_failures (key, at) VALUES ($1, $2) RETURNING at)
		SELECT (SELECT count(*) FROM login_failures WHERE key = $1 AND at >= $3) + (SELECT count(*) FROM ins WHERE at >= $3)`,
		key, norm(when), norm(since)).Scan(&n)
	if err != nil {
		return 0, wrap(err, "record login failure")
	}
	return n, nil
}

// LoginFailures counts key's failed sign-ins since since.
func (s *DB) LoginFailures(ctx context.Context, key string, since time.Time) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM login_failures WHERE key = $1 AND at >= $2`, key, norm(since)).Scan(&n); err != nil {
		return 0, wrap(err, "count login failures")
	}
	return n, nil
}

// ClearLoginFailures forgets key's failed sign-ins.
func (s *DB) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key); err != nil {
		return wrap(err, "clear login failures")
	}
	return nil
}

// DeleteSession removes a session; removing a missing one is not an error.
func (s *DB) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, hash); err != nil {
		return wrap(err, "delete session")
	}
	return nil
}

const credCols = `id, kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq, browser`

func scanCredential(row pgx.Row) (store.Credential, error) {
	var c store.Credential
	err := row.Scan(&c.ID, &c.Kind, &c.TokenHash, &c.UserID, &c.AppointmentID, &c.Name,
		utc(&c.CreatedAt), utc(&c.ExpiresAt), utc(&c.RevokedAt), &c.LastSeq, &c.Browser)
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
	err := s.pool.QueryRow(ctx, `INSERT INTO credentials (kind, token_hash, user_id, appointment_id, name, created_at, expires_at, revoked_at, last_seq, browser)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		c.Kind, c.TokenHash, c.UserID, c.AppointmentID, c.Name, c.CreatedAt, null(c.ExpiresAt), null(c.RevokedAt), c.LastSeq, c.Browser).Scan(&c.ID)
	if err != nil {
		return c, wrap(err, "create %s credential for user %d", c.Kind, c.UserID)
	}
	return c, nil
}

// CredentialByHash finds a credential of a kind by its token's hash, revoked
// and expired ones included: validity is the caller's to check.
func (s *DB) CredentialByHash(ctx context.Context, kind string, hash []byte) (store.Credential, error) {
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = $1 AND token_hash = $2`, kind, hash))
	if err != nil {
		return c, wrap(err, "%s credential", kind)
	}
	return c, nil
}

// ListCredentials lists a user's credentials of a kind, oldest first.
func (s *DB) ListCredentials(ctx context.Context, kind string, userID int64) ([]store.Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = $1 AND user_id = $2 ORDER BY id`, kind, userID)
	out, err := collect(rows, err, scanCredential)
	if err != nil {
		return nil, wrap(err, "list %s credentials of user %d", kind, userID)
	}
	return out, nil
}

// JoinCredentials lists an appointment's join links, oldest first.
func (s *DB) JoinCredentials(ctx context.Context, appointmentID int64) ([]store.Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = 'join' AND appointment_id = $1 ORDER BY id`, appointmentID)
	out, err := collect(rows, err, scanCredential)
	if err != nil {
		return nil, wrap(err, "join links of appointment %d", appointmentID)
	}
	return out, nil
}

// RevokeCredential marks a credential revoked at the given time (now if
// zero), and ends the sessions a join link opened; revoking it again keeps the first time. An unknown ID gives
// store.ErrNotFound.
func (s *DB) RevokeCredential(ctx context.Context, id int64, when time.Time) error {
	if when.IsZero() {
		when = time.Now()
	}
	what := fmt.Sprintf("revoke credential %d", id)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err, "%s", what)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE credentials SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, norm(when), id)
	if err != nil {
		return wrap(err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	// A join link's sessions end with it.
	_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE appointment_id != 0 AND (user_id, appointment_id) IN
		(SELECT user_id, appointment_id FROM credentials WHERE id = $1 AND kind = 'join')`, id)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return wrap(err, "%s", what)
	}
	return nil
}

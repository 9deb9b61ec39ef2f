package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// PasswordLinkTTL is how long a password link works.
const PasswordLinkTTL = 72 * time.Hour

// ErrBadLink reports a password link that is unknown, expired, already
// used, or superseded by a new password; which of these is not said.
var ErrBadLink = errors.New("this password link is not valid: it may have expired or been used already")

// linkToken is the password link of user id, expiring at exp (Unix
// seconds), bound to the password hash the account has now. It carries the
// id and expiry in the clear and an HMAC under the server key over both
// and the hash, so nothing is stored, and a link stops working once the
// password it was issued against changes: it works once.
func linkToken(key []byte, id, exp int64, passwordHash string) string {
	mac, _ := auth.DeriveToken(key, "password-link", strconv.FormatInt(id, 10), strconv.FormatInt(exp, 10), passwordHash)
	return strconv.FormatInt(id, 10) + "." + strconv.FormatInt(exp, 10) + "." + mac
}

// PasswordLink returns a token with which the person sets their own
// password, once, within PasswordLinkTTL: the one safe way to give someone
// an account, since nobody else ever knows their password. Setting a
// password with it ends their sessions.
func (m *Manager) PasswordLink(ctx context.Context, by audit.Who, userID int64) (token string, expires time.Time, err error) {
	if len(m.Key) < 32 {
		return "", time.Time{}, errors.New("password link: the server key is shorter than 32 bytes")
	}
	u, err := m.user(ctx, userID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("password link: %w", err)
	}
	if !u.Active() {
		return "", time.Time{}, fmt.Errorf("password link for %s: %w", u.Email, ErrInactive)
	}
	expires = m.now().Add(PasswordLinkTTL).Truncate(time.Second)
	m.Audit.Success(ctx, by, audit.ActionCreate, patientOf(u), audit.Ref("User", u.ID)+"/password-link")
	return linkToken(m.Key, u.ID, expires.Unix(), u.PasswordHash), expires, nil
}

// LinkUser returns the account a password link is for, if the link is
// still good; otherwise ErrBadLink.
func (m *Manager) LinkUser(ctx context.Context, token string) (store.User, error) {
	parts := strings.SplitN(token, ".", 3)
	if len(parts) != 3 || len(m.Key) < 32 {
		return store.User{}, ErrBadLink
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || id <= 0 || !m.now().Before(time.Unix(exp, 0)) {
		return store.User{}, ErrBadLink
	}
	u, err := m.Store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return u, ErrBadLink
	}
	if err != nil {
		return u, fmt.Errorf("password link: %w", err)
	}
	want := linkToken(m.Key, id, exp, u.PasswordHash)
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 || !u.Active() {
		return store.User{}, ErrBadLink
	}
	return u, nil
}

// SetPasswordByLink sets the password of the link's account, if the link
// is good and password meets the policy (an error wrapping
// auth.ErrWeakPassword if not), and ends the account's sessions. The link
// then stops working.
func (m *Manager) SetPasswordByLink(ctx context.Context, address, token, password string) (store.User, error) {
	u, err := m.LinkUser(ctx, token)
	if err != nil {
		return u, err
	}
	hash, err := HashPassword(u, password)
	if err != nil {
		return u, err
	}
	if err := m.Store.SetPassword(ctx, u.ID, hash); err != nil {
		return u, fmt.Errorf("set password: %w", err)
	}
	if _, err := m.Store.DeleteUserSessions(ctx, u.ID); err != nil {
		return u, fmt.Errorf("set password: end old sessions: %w", err)
	}
	m.Audit.Success(ctx, audit.Who{ID: u.ID, Role: string(u.Role), Address: address}, audit.ActionUpdate, 0, audit.Ref("User", u.ID)+"/password")
	return u, nil
}

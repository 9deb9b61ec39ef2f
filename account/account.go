package account

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// Store is what accounts are kept in; store.Store satisfies it.
type Store interface {
	CreateUser(ctx context.Context, u store.User) (store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	UserByEmail(ctx context.Context, email string) (store.User, error)
	SetPassword(ctx context.Context, userID int64, hash string) error
	SetTOTPSecret(ctx context.Context, userID int64, sealed []byte) error
	DeactivateUser(ctx context.Context, userID int64, at time.Time) (store.Deactivation, error)
	ReactivateUser(ctx context.Context, userID int64) error
	DeleteUserSessions(ctx context.Context, userID int64) (int, error)
	CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error)
	ListCredentials(ctx context.Context, kind string, userID int64) ([]store.Credential, error)
	RevokeCredential(ctx context.Context, id int64, at time.Time) error
	SetAvailability(ctx context.Context, physicianID int64, a scheduling.Availability) error
}

var _ Store = store.Store(nil)

// Errors the Manager's methods wrap, for callers to tell apart with
// errors.Is.
var (
	// ErrInactive: the account is deactivated, so nothing new is issued for it.
	ErrInactive = errors.New("the account is deactivated")
	// ErrSelf: an admin may not deactivate their own account (and so lock
	// out the last admin by mistake).
	ErrSelf = errors.New("you cannot do this to your own account")
	// ErrNotPatient: devices measure patients only.
	ErrNotPatient = errors.New("devices are added for patients only")
)

// Invalid says which fields of a request are wrong, field name to a
// sentence for the person who filled it in.
type Invalid map[string]string

func (v Invalid) Error() string {
	fields := make([]string, 0, len(v))
	for f := range v {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	msgs := make([]string, 0, len(v))
	for _, f := range fields {
		msgs = append(msgs, f+": "+v[f])
	}
	return "invalid " + strings.Join(msgs, "; ")
}

// Limits on what is entered.
const (
	MaxName = 200 // a person's or device's name, in bytes
	MaxTTL  = 2 * 366 * 24 * time.Hour
)

// CleanEmail is an email address as it is stored: trimmed, lower case.
func CleanEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CheckEmail says what is wrong with an email address already cleaned
// with CleanEmail, or "" if nothing is: a plain address such as
// name@example.org, no display name, no angle brackets.
func CheckEmail(email string) string {
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > 254 {
		return "Enter an email address such as name@example.org."
	}
	return ""
}

// zoneName is what a canonical IANA zone name looks like: "UTC", or an
// area and a location such as "America/Argentina/Buenos_Aires".
var zoneName = regexp.MustCompile(`^(UTC|[A-Z][A-Za-z]+(/[A-Z][A-Za-z0-9_+-]*)+)$`)

// ValidZone reports whether name is a zone the server knows by its
// canonical name, refusing names that only some hosts load ("localtime",
// "posix/...", "right/...", "Factory", paths with "." or "//").
func ValidZone(name string) bool {
	if !zoneName.MatchString(name) || strings.HasPrefix(name, "Etc/") && name != "Etc/UTC" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// NewUser is an account to add, as entered.
type NewUser struct {
	Role     string
	Email    string
	Name     string
	TimeZone string // "" is UTC
}

// Check validates n and returns the user to store, or Invalid naming
// each wrong field (role, email, name, time_zone).
func (n NewUser) Check() (store.User, error) {
	u := store.User{Role: store.Role(strings.TrimSpace(n.Role)), Email: CleanEmail(n.Email),
		Name: strings.TrimSpace(n.Name), TimeZone: strings.TrimSpace(n.TimeZone)}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	bad := Invalid{}
	if !u.Role.Valid() {
		bad["role"] = "Choose scheduler, physician, patient or admin."
	}
	if msg := CheckEmail(u.Email); msg != "" {
		bad["email"] = msg
	}
	if u.Name == "" || len(u.Name) > MaxName {
		bad["name"] = fmt.Sprintf("Enter the full name (up to %d characters).", MaxName)
	}
	if !ValidZone(u.TimeZone) {
		bad["time_zone"] = "Enter a time zone such as Europe/London or America/New_York."
	}
	if len(bad) > 0 {
		return u, bad
	}
	return u, nil
}

// HashPassword checks password against the policy for u's account and
// returns its hash; a refusal wraps auth.ErrWeakPassword.
func HashPassword(u store.User, password string) (string, error) {
	if err := auth.CheckPasswordPolicy(password, u.Email, u.Name); err != nil {
		return "", err
	}
	return auth.HashPassword(password)
}

// Manager changes accounts and records each change in the audit trail.
type Manager struct {
	Store Store
	Audit *audit.Recorder  // nil records nothing
	Now   func() time.Time // time.Now if nil
	// Key is the server's secret key (at least 32 bytes), under which
	// password links are signed; without it PasswordLink fails.
	Key []byte
}

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// patientOf is the patient whose data a change to u touches: u, if u is a
// patient.
func patientOf(u store.User) int64 {
	if u.Role == store.RolePatient {
		return u.ID
	}
	return 0
}

// AddUser validates n and stores the account, with passwordHash (from
// HashPassword; "" for none yet: patients who only use join links, or
// staff who will set theirs with a password link). A physician gets
// default hours (weekdays 9 to 5 in their zone). An email already in use
// gives store.ErrConflict.
func (m *Manager) AddUser(ctx context.Context, by audit.Who, n NewUser, passwordHash string) (store.User, error) {
	u, err := n.Check()
	if err != nil {
		return u, err
	}
	u.PasswordHash = passwordHash
	u.CreatedAt = m.now()
	u, err = m.Store.CreateUser(ctx, u)
	if err != nil {
		return u, fmt.Errorf("add user: %w", err)
	}
	if u.Role == store.RolePhysician {
		var week []scheduling.WeeklyHours
		for d := time.Monday; d <= time.Friday; d++ {
			week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 9 * 60, End: 17 * 60})
		}
		if err := m.Store.SetAvailability(ctx, u.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute}); err != nil {
			return u, fmt.Errorf("add user: default hours: %w", err)
		}
	}
	m.Audit.Success(ctx, by, audit.ActionCreate, patientOf(u), audit.Ref("User", u.ID))
	return u, nil
}

// user loads an account for a change.
func (m *Manager) user(ctx context.Context, id int64) (store.User, error) {
	u, err := m.Store.UserByID(ctx, id)
	if err != nil {
		return u, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// Deactivate ends an account's access: it may no longer sign in, and its
// sessions, API tokens, device tokens and join links end at once, as do
// the guest links it issued (each withdrawal audited).
func (m *Manager) Deactivate(ctx context.Context, by audit.Who, userID int64) (store.Deactivation, error) {
	if by.ID == userID {
		return store.Deactivation{}, fmt.Errorf("deactivate user %d: %w", userID, ErrSelf)
	}
	u, err := m.user(ctx, userID)
	if err != nil {
		return store.Deactivation{}, fmt.Errorf("deactivate: %w", err)
	}
	d, err := m.Store.DeactivateUser(ctx, u.ID, m.now())
	if err != nil {
		return d, fmt.Errorf("deactivate: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionDeactivate, patientOf(u), audit.Ref("User", u.ID))
	for _, g := range d.GuestLinks {
		// As withdrawing the link by hand is recorded.
		m.Audit.Success(ctx, by, audit.ActionDelete, g.PatientID, audit.Ref("Appointment", g.AppointmentID)+"/guest/"+strconv.FormatInt(g.ID, 10))
	}
	return d, nil
}

// Reactivate lets a deactivated account sign in again; its old sessions
// and tokens stay ended.
func (m *Manager) Reactivate(ctx context.Context, by audit.Who, userID int64) error {
	u, err := m.user(ctx, userID)
	if err != nil {
		return fmt.Errorf("reactivate: %w", err)
	}
	if err := m.Store.ReactivateUser(ctx, u.ID); err != nil {
		return fmt.Errorf("reactivate: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionReactivate, patientOf(u), audit.Ref("User", u.ID))
	return nil
}

// ResetSecondFactor turns off an account's second factor (a lost phone)
// and ends its sessions, so its owner signs in with the password and sets
// up a new one. had is false, and nothing changes, if there was none.
func (m *Manager) ResetSecondFactor(ctx context.Context, by audit.Who, userID int64) (had bool, sessions int, err error) {
	u, err := m.user(ctx, userID)
	if err != nil {
		return false, 0, fmt.Errorf("reset second factor: %w", err)
	}
	if u.TOTPSecret == nil {
		return false, 0, nil
	}
	if err := m.Store.SetTOTPSecret(ctx, u.ID, nil); err != nil {
		return true, 0, fmt.Errorf("reset second factor: %w", err)
	}
	n, err := m.Store.DeleteUserSessions(ctx, u.ID)
	if err != nil {
		return true, 0, fmt.Errorf("reset second factor: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionDelete, 0, audit.Ref("User", u.ID)+"/totp")
	return true, n, nil
}

// checkTTL refuses a lifetime that is not positive or is longer than MaxTTL.
func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTTL {
		return Invalid{"ttl": fmt.Sprintf("A token must expire: choose a lifetime between a minute and %d days.", MaxTTL/(24*time.Hour))}
	}
	return nil
}

// IssueAPIToken issues a bearer token acting for userID, valid for ttl. The
// token is returned once; only its hash is kept.
func (m *Manager) IssueAPIToken(ctx context.Context, by audit.Who, userID int64, ttl time.Duration) (string, store.Credential, error) {
	if err := checkTTL(ttl); err != nil {
		return "", store.Credential{}, err
	}
	u, err := m.user(ctx, userID)
	if err != nil {
		return "", store.Credential{}, fmt.Errorf("issue API token: %w", err)
	}
	if !u.Active() {
		return "", store.Credential{}, fmt.Errorf("issue API token for %s: %w", u.Email, ErrInactive)
	}
	token, hash := auth.NewToken()
	now := m.now()
	c, err := m.Store.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: u.ID,
		Name: "api token", CreatedAt: now, ExpiresAt: now.Add(ttl)})
	if err != nil {
		return "", c, fmt.Errorf("issue API token: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionCreate, patientOf(u), audit.Ref("Credential", c.ID))
	return token, c, nil
}

// BrowserDevice is the name of the device a patient's browser streams as
// during a visit; an added device may not take it.
const BrowserDevice = "Web browser"

// AddDevice issues a device token with which a device or hub posts the
// readings of patientID, valid for ttl. The token is returned once. The
// name may not be BrowserDevice's, in any case.
func (m *Manager) AddDevice(ctx context.Context, by audit.Who, patientID int64, name string, ttl time.Duration) (string, store.Credential, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxName {
		return "", store.Credential{}, Invalid{"name": fmt.Sprintf("Say what the device is, e.g. \"Pulse oximeter\" (up to %d characters).", MaxName)}
	}
	if strings.EqualFold(name, BrowserDevice) {
		return "", store.Credential{}, Invalid{"name": fmt.Sprintf("%q is the name of the device a patient's browser streams as; give this device another name, e.g. \"Pulse oximeter\".", BrowserDevice)}
	}
	if err := checkTTL(ttl); err != nil {
		return "", store.Credential{}, err
	}
	u, err := m.user(ctx, patientID)
	if err != nil {
		return "", store.Credential{}, fmt.Errorf("add device: %w", err)
	}
	switch {
	case u.Role != store.RolePatient:
		return "", store.Credential{}, fmt.Errorf("add device for %s, a %s: %w", u.Email, u.Role, ErrNotPatient)
	case !u.Active():
		return "", store.Credential{}, fmt.Errorf("add device for %s: %w", u.Email, ErrInactive)
	}
	token, hash := auth.NewToken()
	now := m.now()
	c, err := m.Store.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: u.ID,
		Name: name, CreatedAt: now, ExpiresAt: now.Add(ttl)})
	if err != nil {
		return "", c, fmt.Errorf("add device: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionCreate, u.ID, audit.Ref("Credential", c.ID))
	return token, c, nil
}

// Credentials lists an account's API tokens and devices (kinds "" for
// both, or one kind), oldest first; never their secrets, which are not kept.
func (m *Manager) Credentials(ctx context.Context, userID int64, kinds ...string) ([]store.Credential, error) {
	if len(kinds) == 0 {
		kinds = []string{store.CredentialAPI, store.CredentialDevice}
	}
	var out []store.Credential
	for _, k := range kinds {
		list, err := m.Store.ListCredentials(ctx, k, userID)
		if err != nil {
			return nil, fmt.Errorf("credentials of user %d: %w", userID, err)
		}
		out = append(out, list...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Revoke ends credential credID. If owner is not 0 the credential must be
// one of owner's (else store.ErrNotFound), so a form naming a user cannot
// reach anyone else's token.
func (m *Manager) Revoke(ctx context.Context, by audit.Who, owner, credID int64) error {
	var patient int64
	if owner != 0 {
		u, err := m.user(ctx, owner)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		list, err := m.Credentials(ctx, owner, store.CredentialAPI, store.CredentialDevice, store.CredentialJoin)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		found := false
		for _, c := range list {
			found = found || c.ID == credID
		}
		if !found {
			return fmt.Errorf("revoke credential %d of user %d: %w", credID, owner, store.ErrNotFound)
		}
		patient = patientOf(u)
	}
	if err := m.Store.RevokeCredential(ctx, credID, m.now()); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	m.Audit.Success(ctx, by, audit.ActionDelete, patient, audit.Ref("Credential", credID))
	return nil
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// adminFlags parses an admin command's flags plus the shared store ones.
func adminFlags(name string, args []string, getenv func(string) string, stderr io.Writer, define func(fs *flag.FlagSet)) (data string, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataFlag(fs, getenv, &data)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return data, nil
}

func openForAdmin(ctx context.Context, data string, getenv func(string) string) (store.Store, error) {
	st, _, err := openStore(ctx, data, getenv("DATABASE_URL"))
	return st, err
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	data, err := adminFlags("migrate", args, getenv, stderr, func(*flag.FlagSet) {})
	if err != nil {
		return err
	}
	st, where, err := openStore(ctx, data, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stdout, "migrations applied to %s\n", where)
	return nil
}

func userAdd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var role, email, name, tz string
	var noPassword bool
	data, err := adminFlags("user add", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&role, "role", "", "scheduler, physician, patient or admin")
		fs.StringVar(&email, "email", "", "email address (the sign-in name)")
		fs.StringVar(&name, "name", "", "full name")
		fs.StringVar(&tz, "tz", "UTC", "IANA time zone, e.g. Europe/London")
		fs.BoolVar(&noPassword, "no-password", false, "create without a password (patients who only use join links)")
	})
	if err != nil {
		return err
	}
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case !store.Role(role).Valid():
		return fmt.Errorf("user add: --role must be scheduler, physician, patient or admin, not %q", role)
	case !strings.Contains(email, "@"):
		return fmt.Errorf("user add: --email %q is not an email address", email)
	case strings.TrimSpace(name) == "":
		return errors.New("user add: --name is required")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("user add: --tz %q is not an IANA time zone", tz)
	}
	u := store.User{Email: email, Name: strings.TrimSpace(name), Role: store.Role(role), TimeZone: tz}
	var generated string
	if !noPassword {
		password, err := readPassword(stdin)
		if err != nil {
			return err
		}
		if password == "" {
			generated = auth.GeneratePassword()
			password = generated
		}
		if err := auth.CheckPasswordPolicy(password, u.Email, u.Name); err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		if u.PasswordHash, err = auth.HashPassword(password); err != nil {
			return fmt.Errorf("user add: %w", err)
		}
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err = st.CreateUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("user add: %s already has an account", email)
	}
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	if u.Role == store.RolePhysician {
		if err := st.SetAvailability(ctx, u.ID, scheduling.Availability{Weekly: weekdays(9*60, 17*60), SlotLength: 30 * time.Minute}); err != nil {
			return fmt.Errorf("user add: default hours: %w", err)
		}
	}
	fmt.Fprintf(stdout, "added %s %s <%s> (id %d)\n", u.Role, u.Name, u.Email, u.ID)
	if generated != "" {
		fmt.Fprintf(stdout, "password: %s\n", generated)
	}
	return nil
}

// readPassword reads one line from stdin when it is not a terminal; an empty
// result means "generate one".
func readPassword(stdin io.Reader) (string, error) {
	if stdin == nil {
		return "", nil
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return "", nil // a terminal: generate rather than echo a typed password
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func tokenIssue(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var email string
	var ttl time.Duration
	data, err := adminFlags("token issue", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user the token acts for")
		fs.DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the token is valid")
	})
	if err != nil {
		return err
	}
	if ttl <= 0 {
		return errors.New("token issue: --ttl must be positive")
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, "token issue", email)
	if err != nil {
		return err
	}
	token, hash := auth.NewToken()
	now := time.Now()
	if _, err := st.CreateCredential(ctx, store.Credential{
		Kind: store.CredentialAPI, TokenHash: hash, UserID: u.ID, Name: "api token",
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}); err != nil {
		return fmt.Errorf("token issue: %w", err)
	}
	fmt.Fprintln(stdout, token)
	return nil
}

func deviceAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var email, name string
	var ttl time.Duration
	data, err := adminFlags("device add", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "patient", "", "email of the patient the device measures")
		fs.StringVar(&name, "name", "", "what the device is, e.g. \"Pulse oximeter\"")
		fs.DurationVar(&ttl, "ttl", 365*24*time.Hour, "how long the token is valid")
	})
	if err != nil {
		return err
	}
	if strings.TrimSpace(name) == "" {
		return errors.New("device add: --name is required")
	}
	if ttl <= 0 {
		return errors.New("device add: --ttl must be positive")
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := addDevice(ctx, st, strings.ToLower(strings.TrimSpace(email)), strings.TrimSpace(name), time.Now().Add(ttl))
	if err != nil {
		return fmt.Errorf("device add: %w", err)
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// addDevice stores a device token for a patient, valid until expires (zero:
// no expiry), and returns it.
func addDevice(ctx context.Context, st store.Store, patientEmail, name string, expires time.Time) (string, error) {
	u, err := st.UserByEmail(ctx, patientEmail)
	if err != nil {
		return "", fmt.Errorf("no user with email %q", patientEmail)
	}
	if u.Role != store.RolePatient {
		return "", fmt.Errorf("%s is a %s, not a patient", patientEmail, u.Role)
	}
	token, hash := auth.NewToken()
	if _, err := st.CreateCredential(ctx, store.Credential{
		Kind: store.CredentialDevice, TokenHash: hash, UserID: u.ID, Name: name, CreatedAt: time.Now(), ExpiresAt: expires,
	}); err != nil {
		return "", err
	}
	return token, nil
}

// userReset2FA turns off a staff member's second factor (a lost phone) and
// signs them out everywhere, so they sign in again with their password and
// can set up a new one.
func userReset2FA(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var email string
	data, err := adminFlags("user reset-2fa", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user whose two-step sign-in to turn off")
	})
	if err != nil {
		return err
	}
	if email == "" {
		return errors.New("user reset-2fa: --email is required")
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, "user reset-2fa", email)
	if err != nil {
		return err
	}
	if u.TOTPSecret == nil {
		fmt.Fprintf(stdout, "%s has no two-step sign-in; nothing changed\n", u.Email)
		return nil
	}
	if err := st.SetTOTPSecret(ctx, u.ID, nil); err != nil {
		return fmt.Errorf("user reset-2fa: %w", err)
	}
	n, err := st.DeleteUserSessions(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("user reset-2fa: %w", err)
	}
	(&audit.Recorder{Store: st}).Success(ctx, audit.Who{Role: audit.RoleSystem}, audit.ActionDelete, 0, audit.Ref("User", u.ID)+"/totp")
	fmt.Fprintf(stdout, "two-step sign-in of %s turned off; %d sessions ended\n", u.Email, n)
	return nil
}

// userByEmail finds the user an admin command names by email, whatever its
// case and surrounding spaces; cmd prefixes the error.
func userByEmail(ctx context.Context, st store.Store, cmd, email string) (store.User, error) {
	u, err := st.UserByEmail(ctx, strings.ToLower(strings.TrimSpace(email)))
	if errors.Is(err, store.ErrNotFound) {
		return u, fmt.Errorf("%s: no user with email %q", cmd, email)
	}
	if err != nil {
		return u, fmt.Errorf("%s: %w", cmd, err)
	}
	return u, nil
}

// tokenList prints a user's API, device and join credentials, one per line.
func tokenList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var email string
	data, err := adminFlags("token list", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user (for devices: their patient)")
	})
	if err != nil {
		return err
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, "token list", email)
	if err != nil {
		return err
	}
	when := func(t time.Time, none string) string {
		if t.IsZero() {
			return none
		}
		return t.UTC().Format(time.RFC3339)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tNAME\tCREATED\tEXPIRES\tREVOKED")
	for _, kind := range []string{store.CredentialAPI, store.CredentialDevice, store.CredentialJoin} {
		list, err := st.ListCredentials(ctx, kind, u.ID)
		if err != nil {
			return fmt.Errorf("token list: %w", err)
		}
		for _, c := range list {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Name, when(c.CreatedAt, "-"), when(c.ExpiresAt, "never"), when(c.RevokedAt, "-"))
		}
	}
	return w.Flush()
}

// tokenRevoke revokes one credential. A socket open with it closes within
// the server's re-check interval; a join link's sessions end at once.
func tokenRevoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var id int64
	data, err := adminFlags("token revoke", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.Int64Var(&id, "id", 0, "the token's id, from bedside token list")
	})
	if err != nil {
		return err
	}
	if id <= 0 {
		return errors.New("token revoke: --id is required (see bedside token list)")
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.RevokeCredential(ctx, id, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("token revoke: no token with id %d", id)
	}
	if err != nil {
		return fmt.Errorf("token revoke: %w", err)
	}
	(&audit.Recorder{Store: st}).Success(ctx, audit.Who{Role: audit.RoleSystem}, audit.ActionDelete, 0, audit.Ref("Credential", id))
	fmt.Fprintf(stdout, "token %d revoked\n", id)
	return nil
}

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

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
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
	n := account.NewUser{Role: role, Email: email, Name: name, TimeZone: tz}
	u, err := n.Check()
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	var hash, generated string
	if !noPassword {
		password, err := readPassword(stdin)
		if err != nil {
			return err
		}
		if password == "" {
			generated = auth.GeneratePassword()
			password = generated
		}
		if hash, err = account.HashPassword(u, password); err != nil {
			return fmt.Errorf("user add: %w", err)
		}
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err = cliAccounts(st).AddUser(ctx, cliActor, n, hash)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("user add: %s already has an account", u.Email)
	}
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	fmt.Fprintf(stdout, "added %s %s <%s> (id %d)\n", u.Role, u.Name, u.Email, u.ID)
	if generated != "" {
		fmt.Fprintf(stdout, "password: %s\n", generated)
	}
	return nil
}

// cliActor is who the admin commands act as in the audit trail: whoever
// can run them holds the server's files, so Bedside itself.
var cliActor = audit.Who{Role: audit.RoleSystem}

// cliAccounts is the account manager of the admin commands.
func cliAccounts(st store.Store) *account.Manager {
	return &account.Manager{Store: st, Audit: &audit.Recorder{Store: st}}
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
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, "token issue", email)
	if err != nil {
		return err
	}
	token, _, err := cliAccounts(st).IssueAPIToken(ctx, cliActor, u.ID, ttl)
	if err != nil {
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
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := addDevice(ctx, st, email, name, ttl)
	if err != nil {
		return fmt.Errorf("device add: %w", err)
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// addDevice stores a device token for the patient with the given email,
// valid for ttl, and returns it.
func addDevice(ctx context.Context, st store.Store, patientEmail, name string, ttl time.Duration) (string, error) {
	u, err := userByEmail(ctx, st, "device", patientEmail)
	if err != nil {
		return "", err
	}
	token, _, err := cliAccounts(st).AddDevice(ctx, cliActor, u.ID, name, ttl)
	return token, err
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
	had, n, err := cliAccounts(st).ResetSecondFactor(ctx, cliActor, u.ID)
	if err != nil {
		return fmt.Errorf("user reset-2fa: %w", err)
	}
	if !had {
		fmt.Fprintf(stdout, "%s has no two-step sign-in; nothing changed\n", u.Email)
		return nil
	}
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
	err = cliAccounts(st).Revoke(ctx, cliActor, 0, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("token revoke: no token with id %d", id)
	}
	if err != nil {
		return fmt.Errorf("token revoke: %w", err)
	}
	fmt.Fprintf(stdout, "token %d revoked\n", id)
	return nil
}

// userSetActive deactivates an account (its sessions, API tokens, device
// tokens and join links end, and it may no longer sign in) or lets it sign
// in again.
func userSetActive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, active bool) error {
	cmd := "user deactivate"
	if active {
		cmd = "user reactivate"
	}
	var email string
	data, err := adminFlags(cmd, args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the account's email")
	})
	if err != nil {
		return err
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, cmd, email)
	if err != nil {
		return err
	}
	if active {
		if err := cliAccounts(st).Reactivate(ctx, cliActor, u.ID); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		fmt.Fprintf(stdout, "%s may sign in again; earlier sessions and tokens stay ended\n", u.Email)
		return nil
	}
	d, err := cliAccounts(st).Deactivate(ctx, cliActor, u.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stdout, "%s deactivated; %d sessions ended, %d tokens revoked, %d guest links withdrawn\n", u.Email, d.Sessions, d.Credentials, len(d.GuestLinks))
	return nil
}

// userPasswordLink prints a one-time link with which a person chooses
// their own password: for a new account made with --no-password, or a
// forgotten password. It is signed with the server key, so the server that
// opens it must share this data folder's key (or BEDSIDE_SECRET).
func userPasswordLink(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var email string
	data, err := adminFlags("user password-link", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the account's email")
	})
	if err != nil {
		return err
	}
	key, err := loadSecret(getenv("BEDSIDE_SECRET"), data)
	if err != nil {
		return fmt.Errorf("user password-link: %w", err)
	}
	st, err := openForAdmin(ctx, data, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByEmail(ctx, st, "user password-link", email)
	if err != nil {
		return err
	}
	if u.Role == store.RolePatient {
		return fmt.Errorf("user password-link: %s is a patient; patients join by their invitations' links", u.Email)
	}
	m := cliAccounts(st)
	m.Key = key
	token, expires, err := m.PasswordLink(ctx, cliActor, u.ID)
	if err != nil {
		return fmt.Errorf("user password-link: %w", err)
	}
	fmt.Fprintf(stdout, "%s/account/password/%s\n", strings.TrimRight(getenv("BEDSIDE_PUBLIC_URL"), "/"), token)
	fmt.Fprintf(stdout, "works once, until %s\n", expires.UTC().Format(time.RFC3339))
	return nil
}

// Command bedside runs the Bedside telemedicine server and its admin tasks.
//
//	bedside [serve] [--addr :8080] [--data ./bedside-data] [--public-url URL]
//	bedside user add --role ROLE --email E --name N [--tz Area/City]
//	bedside user reset-2fa --email E
//	bedside user deactivate|reactivate --email E
//	bedside user password-link --email E
//	bedside token issue --email E [--ttl 720h]
//	bedside token list --email E
//	bedside token revoke --id N
//	bedside device add --patient E --name N [--ttl 8760h]
//	bedside migrate
//	bedside backup --out DIR
//	bedside restore --from DIR
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bedside:", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it with their own arguments,
// environment and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "backup": // backup.go
		return backup(ctx, args, getenv, stdout, stderr)
	case "restore":
		return restore(ctx, args, getenv, stdout, stderr)
	case "user", "token", "device":
		if len(args) == 0 {
			return fmt.Errorf("%s: missing action (see bedside help)", cmd)
		}
		action := cmd + " " + args[0]
		switch action {
		case "user add":
			return userAdd(ctx, args[1:], getenv, stdin, stdout, stderr)
		case "user password-link":
			return userPasswordLink(ctx, args[1:], getenv, stdout, stderr)
		case "user deactivate", "user reactivate":
			return userSetActive(ctx, args[1:], getenv, stdout, stderr, action == "user reactivate")
		case "user reset-2fa":
			return userReset2FA(ctx, args[1:], getenv, stdout, stderr)
		case "token issue":
			return tokenIssue(ctx, args[1:], getenv, stdout, stderr)
		case "token list":
			return tokenList(ctx, args[1:], getenv, stdout, stderr)
		case "token revoke":
			return tokenRevoke(ctx, args[1:], getenv, stdout, stderr)
		case "device add":
			return deviceAdd(ctx, args[1:], getenv, stdout, stderr)
		}
		return fmt.Errorf("unknown command %q (see bedside help)", action)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (see bedside help)", cmd)
}

const usage = `Bedside: telemedicine visits with live vitals.

Usage:
  bedside [serve] [flags]       run the server (the default)
  bedside migrate               apply database migrations and exit
  bedside user add --role scheduler|physician|patient|admin --email E --name N [--tz Area/City]
                                add a user; the password is read from stdin, or generated and printed
  bedside user reset-2fa --email E
                                turn off a user's two-step sign-in (a lost phone) and end their sessions
  bedside user password-link --email E
                                print a one-time link with which the person chooses their own password
  bedside user deactivate --email E
                                refuse a user's sign-in and end their sessions and tokens at once
  bedside user reactivate --email E
                                let a deactivated user sign in again (old sessions and tokens stay ended)
  bedside token issue --email E [--ttl 720h]
                                print an API bearer token for a user
  bedside token list --email E  list a user's API and device tokens: id, kind, name, expiry, revocation
  bedside token revoke --id N   revoke an API or device token at once (live device connections close)
  bedside device add --patient E --name N [--ttl 8760h]
                                print a device token that streams vitals for a patient
  bedside backup --out DIR      copy the store and its key into a new folder while the server runs
  bedside restore --from DIR    put a backup in place of the store (the server must be stopped)

Every command takes --data DIR (BEDSIDE_DATA, default ./bedside-data).
Run 'bedside serve --help' for the server's flags.
`

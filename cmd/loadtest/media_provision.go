package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/postgres"
	"github.com/bedside-health/bedside/store/sqlite"
)

// consultCreds is what media provision writes and media run reads: session
// tokens, so the file is readable by its owner only.
type consultCreds struct {
	Created  time.Time     `json:"created"`
	Consults []consultCred `json:"consults"`
}

// consultCred is one visit: its physician's signed-in session and its
// patient's join-link session (confined to that visit).
type consultCred struct {
	Visit     int64  `json:"visit"`
	Physician string `json:"physician_session"`
	Patient   string `json:"patient_session"`
}

// provisionConsults creates n visits, each with its own physician and
// patient and a session for each, as a sign-in and a join link would.
// Users are named after tag, so provisioning again adds a fresh set.
func provisionConsults(ctx context.Context, st store.Store, n int, tag string, now time.Time) (consultCreds, error) {
	c := consultCreds{Created: now.UTC()}
	if n < 1 {
		return c, errors.New("media provision: want at least 1 consult")
	}
	start := now.Add(5 * time.Minute).Truncate(time.Minute).UTC()
	session := func(user, visit int64) (string, error) {
		token, hash := auth.NewToken()
		err := st.CreateSession(ctx, store.Session{TokenHash: hash, UserID: user, AppointmentID: visit,
			CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour), LastSeenAt: now})
		return token, err
	}
	for i := range n {
		doc, err := st.CreateUser(ctx, store.User{Email: fmt.Sprintf("loadtest-%s-mdoc%d@loadtest.invalid", tag, i),
			Name: fmt.Sprintf("Load Physician %d", i), Role: store.RolePhysician, TimeZone: "UTC"})
		if err != nil {
			return c, fmt.Errorf("media provision physician: %w", err)
		}
		pat, err := st.CreateUser(ctx, store.User{Email: fmt.Sprintf("loadtest-%s-mpat%d@loadtest.invalid", tag, i),
			Name: fmt.Sprintf("Load Patient %d", i), Role: store.RolePatient, TimeZone: "UTC"})
		if err != nil {
			return c, fmt.Errorf("media provision patient: %w", err)
		}
		visit, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: doc.ID, PatientID: pat.ID,
			Start: start, End: start.Add(30 * time.Minute), Zone: "UTC", Status: scheduling.StatusBooked, CreatedAt: now}, store.Change{})
		if err != nil {
			return c, fmt.Errorf("media provision visit: %w", err)
		}
		cc := consultCred{Visit: visit.ID}
		if cc.Physician, err = session(doc.ID, 0); err != nil {
			return c, fmt.Errorf("media provision session: %w", err)
		}
		if cc.Patient, err = session(pat.ID, visit.ID); err != nil {
			return c, fmt.Errorf("media provision join session: %w", err)
		}
		c.Consults = append(c.Consults, cc)
	}
	return c, nil
}

func runMediaProvision(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("media provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./bedside-data", "the server's data folder (ignored when DATABASE_URL is set)")
	n := fs.Int("consults", 10, "visits to create, each with a physician and a patient")
	out := fs.String("out", "", "where to write the session tokens (default: DATA/loadtest-media.json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(*data, "loadtest-media.json")
	}
	st, err := openMediaStore(ctx, *data, getenv)
	if err != nil {
		return fmt.Errorf("media provision: %w", err)
	}
	defer st.Close()
	now := time.Now()
	c, err := provisionConsults(ctx, st, *n, now.UTC().Format("20060102t150405"), now)
	if err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return fmt.Errorf("media provision: %w", err)
	}
	fmt.Fprintf(stdout, "%d consults; session tokens in %s; use them within 30 minutes (the sessions' idle timeout)\n", len(c.Consults), *out)
	return nil
}

func readConsultCreds(path string) (consultCreds, error) {
	var c consultCreds
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read tokens: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read tokens %s: %w", path, err)
	}
	if len(c.Consults) == 0 {
		return c, errors.New("read tokens: no consults; run loadtest media provision")
	}
	return c, nil
}

// openMediaStore opens the server's store: DATABASE_URL if set, else the
// SQLite database in data.
func openMediaStore(ctx context.Context, data string, getenv func(string) string) (store.Store, error) {
	if u := getenv("DATABASE_URL"); strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return postgres.Open(ctx, u)
	} else if u != "" {
		return nil, fmt.Errorf("DATABASE_URL %q: only postgres:// URLs are recognised", u)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, filepath.Join(data, "bedside.db"))
}

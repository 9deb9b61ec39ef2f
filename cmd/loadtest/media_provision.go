package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
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
func provisionConsults(ctx context.Context, st store.Store, n int, tag string, now time.Time) (consultCreds, error) {
	c := consultCreds{Created: now.UTC()}
	if n < 1 {
		return c, errors.New("media provision: want at least 1 consult")
	}
	start := now.Add(5 * time.Minute).Truncate(time.Minute).UTC()
	for i := range n {
		doc, err := createLoadUser(ctx, st, tag, "mdoc", i, "Load Physician", store.RolePhysician)
		if err != nil {
			return c, fmt.Errorf("media provision physician: %w", err)
		}
		pat, err := createLoadUser(ctx, st, tag, "mpat", i, "Load Patient", store.RolePatient)
		if err != nil {
			return c, fmt.Errorf("media provision patient: %w", err)
		}
		visit, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: doc.ID, PatientID: pat.ID,
			Start: start, End: start.Add(30 * time.Minute), Zone: "UTC", Status: scheduling.StatusBooked, CreatedAt: now}, store.Change{})
		if err != nil {
			return c, fmt.Errorf("media provision visit: %w", err)
		}
		cc := consultCred{Visit: visit.ID}
		if cc.Physician, err = createLoadSession(ctx, st, doc.ID, 0, now); err != nil {
			return c, fmt.Errorf("media provision session: %w", err)
		}
		if cc.Patient, err = createLoadSession(ctx, st, pat.ID, visit.ID, now); err != nil {
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
	st, err := openStore(ctx, *data, getenv)
	if err != nil {
		return fmt.Errorf("media provision: %w", err)
	}
	defer st.Close()
	now := time.Now()
	c, err := provisionConsults(ctx, st, *n, provisionTag(now), now)
	if err != nil {
		return err
	}
	if err := writeTokens(*out, c); err != nil {
		return fmt.Errorf("media provision: %w", err)
	}
	fmt.Fprintf(stdout, "%d consults; session tokens in %s; use them within 30 minutes (the sessions' idle timeout)\n", len(c.Consults), *out)
	return nil
}

func readConsultCreds(path string) (consultCreds, error) {
	var c consultCreds
	if err := readTokens(path, &c); err != nil {
		return c, err
	}
	if len(c.Consults) == 0 {
		return c, errors.New("read tokens: no consults; run loadtest media provision")
	}
	return c, nil
}

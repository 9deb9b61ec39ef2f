package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// creds is what provision writes and run reads: tokens, so the file is
// readable by its owner only.
type creds struct {
	Created  time.Time     `json:"created"`
	Patients []credPatient `json:"patients"`
	// Sessions are the physicians' session tokens; patient i is watched
	// by Sessions[Patients[i].Physician].
	Sessions []string `json:"sessions"`
}

type credPatient struct {
	Patient     int64  `json:"patient"`
	Visit       int64  `json:"visit"`
	DeviceToken string `json:"device_token"`
	Physician   int    `json:"physician"`
}

// maxPerPhysician bounds the visits of one physician: they are one minute
// apart and all must have started within the next 30 minutes, when live
// vitals open.
const maxPerPhysician = 25

// provision creates n patients with a device and a visit each, and one
// physician with a session for every perPhysician of them. Users are named
// after tag, so provisioning again adds a fresh set.
func provision(ctx context.Context, st store.Store, n, perPhysician int, tag string, now time.Time) (creds, error) {
	c := creds{Created: now.UTC()}
	if n < 1 || perPhysician < 1 || perPhysician > maxPerPhysician {
		return c, fmt.Errorf("provision: want at least 1 patient and 1 to %d per physician", maxPerPhysician)
	}
	var doc store.User
	// The visits start from 5 minutes on, so that live vitals are open
	// for about two and a half hours (30 minutes before each start until
	// 2 hours after its end).
	base := now.Add(5 * time.Minute).Truncate(time.Minute).UTC()
	for i := range n {
		k := i % perPhysician
		if k == 0 {
			u, err := createLoadUser(ctx, st, tag, "doc", i/perPhysician, "Load Physician", store.RolePhysician)
			if err != nil {
				return c, fmt.Errorf("provision physician: %w", err)
			}
			doc = u
			token, err := createLoadSession(ctx, st, doc.ID, 0, now)
			if err != nil {
				return c, fmt.Errorf("provision session: %w", err)
			}
			c.Sessions = append(c.Sessions, token)
		}
		pat, err := createLoadUser(ctx, st, tag, "pat", i, "Load Patient", store.RolePatient)
		if err != nil {
			return c, fmt.Errorf("provision patient: %w", err)
		}
		start := base.Add(time.Duration(k) * time.Minute)
		visit, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: doc.ID, PatientID: pat.ID,
			Start: start, End: start.Add(time.Minute), Zone: "UTC", Status: scheduling.StatusBooked, CreatedAt: now}, store.Change{})
		if err != nil {
			return c, fmt.Errorf("provision visit: %w", err)
		}
		token, hash := auth.NewToken()
		if _, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash,
			UserID: pat.ID, Name: "Load hub", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
			return c, fmt.Errorf("provision device: %w", err)
		}
		c.Patients = append(c.Patients, credPatient{Patient: pat.ID, Visit: visit.ID, DeviceToken: token, Physician: len(c.Sessions) - 1})
	}
	return c, nil
}

func runProvision(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitals provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./bedside-data", "the server's data folder (ignored when DATABASE_URL is set)")
	n := fs.Int("patients", 1000, "patients to create, each with a device and a visit")
	per := fs.Int("per-physician", 10, fmt.Sprintf("patients whose visits each physician holds (1 to %d): the most one viewer can watch", maxPerPhysician))
	out := fs.String("out", "", "where to write the tokens (default: DATA/loadtest-vitals.json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(*data, "loadtest-vitals.json")
	}
	st, err := openStore(ctx, *data, getenv)
	if err != nil {
		return fmt.Errorf("vitals provision: open store: %w", err)
	}
	defer st.Close()
	now := time.Now()
	c, err := provision(ctx, st, *n, *per, provisionTag(now), now)
	if err != nil {
		return err
	}
	if err := writeTokens(*out, c); err != nil {
		return fmt.Errorf("vitals provision: %w", err)
	}
	fmt.Fprintf(stdout, "%d patients, %d physicians; tokens in %s; live vitals open until %s\n",
		len(c.Patients), len(c.Sessions), *out, now.Add(5*time.Minute+time.Duration(min(*per, *n))*time.Minute+2*time.Hour).UTC().Format(time.RFC3339))
	return nil
}

func readCreds(path string) (creds, error) {
	var c creds
	if err := readTokens(path, &c); err != nil {
		return c, err
	}
	if len(c.Patients) == 0 {
		return c, errors.New("read tokens: no patients; run loadtest vitals provision")
	}
	return c, nil
}

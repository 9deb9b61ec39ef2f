package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// demoFile keeps the demo clinic's generated passwords and device token, so
// that every start can print how to sign in. It is readable by the owner only.
const demoFile = "demo-credentials.txt"

// weekdays returns the same hours on every day from Monday to Friday.
func weekdays(start, end int) []scheduling.WeeklyHours {
	var h []scheduling.WeeklyHours
	for d := time.Monday; d <= time.Friday; d++ {
		h = append(h, scheduling.WeeklyHours{Weekday: d, Start: start, End: end})
	}
	return h
}

// everyDay returns the same hours on all seven days.
func everyDay(start, end int) []scheduling.WeeklyHours {
	var h []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		h = append(h, scheduling.WeeklyHours{Weekday: d, Start: start, End: end})
	}
	return h
}

type demoUser struct {
	role  store.Role
	email string
	name  string
	tz    string
	born  string
	phone string
	avail *scheduling.Availability
}

// demoVisitTypes are the kinds of visit the demo physicians offer.
var demoVisitTypes = []scheduling.VisitType{
	{Code: "follow-up", Name: "Follow-up", Duration: 30 * time.Minute},
	{Code: "new", Name: "New patient", Duration: time.Hour},
}

// The demo physicians are in zones twelve hours apart. Dr Okafor takes
// visits around the clock with no notice, so that someone trying Bedside at
// any hour books a visit starting within half an hour: inside the window in
// which a visit's live vitals open (30 minutes before it starts), so the
// whole call, vitals overlay included, can be tried at once.
var demoUsers = []demoUser{
	{store.RoleScheduler, "scheduler@demo.bedside.test", "Sam Rivera", "Europe/London", "", "", nil},
	{store.RolePhysician, "dr.okafor@demo.bedside.test", "Dr Ada Okafor", "America/New_York", "", "", &scheduling.Availability{
		Weekly: everyDay(0, 24*60), SlotLength: 30 * time.Minute, VisitTypes: demoVisitTypes}},
	// Dr Tanaka keeps 10 minutes between visits, takes bookings an hour
	// ahead at the soonest and opens the diary 90 days ahead.
	{store.RolePhysician, "dr.tanaka@demo.bedside.test", "Dr Ken Tanaka", "Australia/Sydney", "", "", &scheduling.Availability{
		Weekly: everyDay(7*60, 22*60), SlotLength: 30 * time.Minute, VisitTypes: demoVisitTypes,
		Buffer: 10 * time.Minute, MinNotice: time.Hour, Horizon: 90 * 24 * time.Hour}},
	{store.RolePatient, "maria.silva@demo.bedside.test", "Maria Silva", "Europe/Lisbon", "1961-04-12", "+351 21 000 0000", nil},
	{store.RolePatient, "john.doe@demo.bedside.test", "John Doe", "America/Chicago", "1975-09-30", "+1 312 555 0100", nil},
	{store.RolePatient, "li.wei@demo.bedside.test", "Li Wei", "Asia/Singapore", "1990-01-15", "", nil},
}

// seedDemo fills an empty store with a demo clinic, then prints how to sign in.
func seedDemo(ctx context.Context, st store.Store, data string, stdout io.Writer) error {
	path := filepath.Join(data, demoFile)
	existing, err := st.ListUsers(ctx, "")
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		var b strings.Builder
		b.WriteString("Demo clinic sign-ins (generated at first start):\n")
		for _, d := range demoUsers {
			u := store.User{Email: d.email, Name: d.name, Role: d.role, TimeZone: d.tz, BirthDate: d.born, Phone: d.phone}
			var password string
			if d.role != store.RolePatient {
				password = auth.GeneratePassword()
				if u.PasswordHash, err = auth.HashPassword(password); err != nil {
					return err
				}
			}
			if u, err = st.CreateUser(ctx, u); err != nil {
				return fmt.Errorf("create %s: %w", d.email, err)
			}
			if d.avail != nil {
				if err := st.SetAvailability(ctx, u.ID, *d.avail); err != nil {
					return fmt.Errorf("hours of %s: %w", d.email, err)
				}
			}
			if password != "" {
				fmt.Fprintf(&b, "  %-10s %-32s password %s\n", d.role, d.email, password)
			}
		}
		token, err := addDevice(ctx, st, demoUsers[3].email, "Home vitals hub", 365*24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "Device token of %s's home hub:\n  go run ./cmd/devicesim --token %s\n", demoUsers[3].name, token)
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not a demo database
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s(kept in %s; delete %s to start afresh)\n", text, path, data)
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// TestResetSecondFactor: an admin turns off a lost phone's two-step
// sign-in from the command line; the user's sessions end and it is audited.
func TestResetSecondFactor(t *testing.T) {
	ts := &testServer{Data: t.TempDir()}
	ts.env = map[string]string{"BEDSIDE_DATA": ts.Data}
	ts.cli(t, "", "user", "add", "--role", "physician", "--email", "doc@example.org", "--name", "Dr Doc")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(ts.Data, "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := db.UserByEmail(ctx, "doc@example.org")
	if err := db.SetTOTPSecret(ctx, u.ID, []byte("sealed secret")); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSession(ctx, store.Session{TokenHash: []byte("s1"), UserID: u.ID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out := ts.cli(t, "", "user", "reset-2fa", "--email", "DOC@example.org")
	if !strings.Contains(out, "turned off; 1 sessions ended") {
		t.Fatalf("reset-2fa printed %q", out)
	}
	db, err = sqlite.Open(ctx, filepath.Join(ts.Data, "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if u, _ := db.UserByEmail(ctx, "doc@example.org"); u.TOTPSecret != nil {
		t.Error("the second factor is still set")
	}
	if _, err := db.SessionByHash(ctx, []byte("s1")); err == nil {
		t.Error("the user's session survived")
	}
	events, _, _ := db.AuditEvents(ctx, store.AuditQuery{Action: "delete"})
	if len(events) != 1 || !strings.HasSuffix(events[0].Resource, "/totp") {
		t.Errorf("audit events %+v, want the reset", events)
	}
	if out := ts.cli(t, "", "user", "reset-2fa", "--email", "doc@example.org"); !strings.Contains(out, "nothing changed") {
		t.Errorf("a second reset printed %q", out)
	}
	if _, err := ts.cliErr(t, "", "user", "reset-2fa", "--email", "nobody@example.org"); err == nil {
		t.Error("resetting an unknown user succeeded")
	}
}

func TestParseProxies(t *testing.T) {
	got, err := parseProxies(" 127.0.0.1, 10.0.0.0/8 ,::1,192.168.1.77/24")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[127.0.0.1/32 10.0.0.0/8 ::1/128 192.168.1.0/24]" {
		t.Errorf("parsed %v", got)
	}
	if got, err := parseProxies(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	if _, err := parseProxies("10.0.0.0/8, proxy.internal"); err == nil || !strings.Contains(err.Error(), "proxy.internal") {
		t.Errorf("a host name: %v, want an error naming it", err)
	}
}

func TestServeResumeGrace(t *testing.T) {
	cases := []struct {
		args    []string
		env     string
		want    time.Duration
		wantErr bool
	}{
		{nil, "", signaling.DefaultResumeGrace, false},
		{nil, "45s", 45 * time.Second, false},
		{[]string{"--resume-grace", "0"}, "45s", 0, false},
		{[]string{"--resume-grace", "-1s"}, "", 0, true},
		{[]string{"--resume-grace", "1h"}, "", 0, true},
		{nil, "soon", 0, true},
	}
	for _, tc := range cases {
		getenv := func(k string) string {
			if k == "BEDSIDE_RESUME_GRACE" {
				return tc.env
			}
			return ""
		}
		c, err := parseServe(append([]string{"--data", t.TempDir()}, tc.args...), getenv, io.Discard)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "resume grace") {
				t.Errorf("%v %q: %v, want an error naming the resume grace", tc.args, tc.env, err)
			}
			continue
		}
		if err != nil || c.resumeGrace != tc.want {
			t.Errorf("%v %q: grace %v (%v), want %v", tc.args, tc.env, c.resumeGrace, err, tc.want)
		}
	}
}

// TestServeSocketRecheckAndBandHold: the two intervals a clinic may tune
// (and the browser tests shorten) are read from flag or environment,
// default to 30 s, and anything but a duration above 0 and at most 10m is
// refused, naming the setting.
func TestServeSocketRecheckAndBandHold(t *testing.T) {
	for _, s := range []struct {
		flag, env, what string
		got             func(config) time.Duration
	}{
		{"--socket-recheck", "BEDSIDE_SOCKET_RECHECK", "re-check", func(c config) time.Duration { return c.recheck }},
		{"--news2-band-hold", "BEDSIDE_NEWS2_BAND_HOLD", "band hold", func(c config) time.Duration { return c.bandHold }},
	} {
		cases := []struct {
			args    []string
			env     string
			want    time.Duration
			wantErr bool
		}{
			{nil, "", 30 * time.Second, false},
			{nil, "2s", 2 * time.Second, false},
			{[]string{s.flag, "1m"}, "2s", time.Minute, false},
			{[]string{s.flag, "0"}, "", 0, true},
			{[]string{s.flag, "999ms"}, "", 0, true},
			{[]string{s.flag, "1s"}, "", time.Second, false},
			{[]string{s.flag, "-1s"}, "", 0, true},
			{[]string{s.flag, "1h"}, "", 0, true},
			{nil, "often", 0, true},
		}
		for _, tc := range cases {
			getenv := func(k string) string {
				if k == s.env {
					return tc.env
				}
				return ""
			}
			c, err := parseServe(append([]string{"--data", t.TempDir()}, tc.args...), getenv, io.Discard)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), s.what) {
					t.Errorf("%v %s=%q: %v, want an error naming the %s", tc.args, s.env, tc.env, err, s.what)
				}
				continue
			}
			if err != nil || s.got(c) != tc.want {
				t.Errorf("%v %s=%q: %s %v (%v), want %v", tc.args, s.env, tc.env, s.what, s.got(c), err, tc.want)
			}
		}
	}
}

func TestServeCallLimits(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name        string
		args        []string
		env         map[string]string
		wantVisits  int
		wantPeople  int
		wantErrText string
	}{
		{"defaults", nil, nil, 200, 600, ""},
		{"environment", nil, map[string]string{"BEDSIDE_MAX_VISITS": "10", "BEDSIDE_MAX_PARTICIPANTS": "0"}, 10, 0, ""},
		{"flags over environment", []string{"--max-visits", "3", "--max-participants", "9"}, map[string]string{"BEDSIDE_MAX_VISITS": "10"}, 3, 9, ""},
		{"negative", []string{"--max-visits", "-1"}, nil, 0, 0, "max-visits"},
		{"not a number", nil, map[string]string{"BEDSIDE_MAX_PARTICIPANTS": "lots"}, 0, 0, "max-participants"},
	}
	for _, tc := range cases {
		c, err := parseServe(append([]string{"--data", t.TempDir()}, tc.args...), env(tc.env), io.Discard)
		if tc.wantErrText != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
				t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.wantErrText)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		l := c.callLimits
		if l.Visits != tc.wantVisits || l.Participants != tc.wantPeople || l.PerVisit != signaling.DefaultPerVisit {
			t.Errorf("%s: limits %+v, want visits %d, participants %d, per visit %d", tc.name, l, tc.wantVisits, tc.wantPeople, signaling.DefaultPerVisit)
		}
	}
}

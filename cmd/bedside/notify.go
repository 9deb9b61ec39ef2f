package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/mail"
	"github.com/bedside-health/bedside/notify"
	"github.com/bedside-health/bedside/store"
)

// secretFile holds the server's key when BEDSIDE_SECRET is not set.
const secretFile = "secret.key"

// loadSecret returns the server's key: BEDSIDE_SECRET when set (every node
// of a cluster needs the same one), else the key kept in the data folder,
// made at first start. It signs join links, so changing it retires every
// join link already sent.
func loadSecret(env, data string) ([]byte, error) {
	if env != "" {
		if len(env) < 32 {
			return nil, fmt.Errorf("BEDSIDE_SECRET must be at least 32 characters; make one with: openssl rand -hex 32")
		}
		return []byte(env), nil
	}
	path := filepath.Join(data, secretFile)
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("%s is shorter than 32 bytes: remove it to make a new one (join links already sent stop working)", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read server key: %w", err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	key = []byte(hex.EncodeToString(b))
	// O_EXCL: if another process made it first, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSecret("", data)
	}
	if err != nil {
		return nil, fmt.Errorf("create server key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write server key: %w", err)
	}
	return key, f.Close()
}

// parseReminders reads "24h,1h" or "none".
func parseReminders(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "none" {
		return []time.Duration{}, nil
	}
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("reminders %q: want durations before the visit such as 24h,1h, or none", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// newNotifier sets up invites and reminders: over SMTP when a mail server
// is configured, else kept in the outbox page.
func newNotifier(c config, st store.Store, secret []byte, publicURL string, log *slog.Logger) (*notify.Notifier, error) {
	reminders, err := parseReminders(c.reminders)
	if err != nil {
		return nil, err
	}
	n := &notify.Notifier{
		Store: st, Links: joinlink.Links{Store: st, Key: secret}, Log: log,
		PublicURL: strings.TrimRight(publicURL, "/"), FromName: c.clinicName, From: c.mailFrom,
		Reminders: reminders, NoShowGrace: c.noShowGrace,
	}
	if c.noShowGrace == 0 {
		n.NoShowGrace = -1
	}
	if c.smtpURL != "" {
		smtp, err := mail.ParseURL(c.smtpURL)
		if err != nil {
			return nil, fmt.Errorf("BEDSIDE_SMTP_URL: %w", err)
		}
		if n.From == "" {
			n.From = smtp.From
		}
		n.Sender = smtp
		log.Info("mail goes out over SMTP", "server", smtp.Addr)
	} else {
		log.Info("no mail server configured (BEDSIDE_SMTP_URL): invites and reminders stay in the outbox page")
	}
	if n.From == "" {
		host := "localhost"
		if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		n.From = "visits@" + host
	}
	return n, nil
}

package mail

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want SMTP
	}{
		{"smtp://user:pass@smtp.example.org:587?from=clinic@example.org",
			SMTP{Addr: "smtp.example.org:587", Username: "user", Password: "pass", From: "clinic@example.org", TLS: TLSStartTLS}},
		{"smtp://user:pass@smtp.example.org?tls=starttls",
			SMTP{Addr: "smtp.example.org:587", Username: "user", Password: "pass", TLS: TLSStartTLS}},
		{"smtps://user:pass@smtp.example.org?from=clinic@example.org&from_name=Bedside%20Clinic",
			SMTP{Addr: "smtp.example.org:465", Username: "user", Password: "pass", From: "clinic@example.org", FromName: "Bedside Clinic", TLS: TLSImplicit}},
		{"smtps://smtp.example.org:2465/?tls=tls",
			SMTP{Addr: "smtp.example.org:2465", TLS: TLSImplicit}},
		{"smtp://apikey:p%40ss%3Aw%2Ford@smtp.example.org:2525?timeout=10s&local_name=bedside.example.org",
			SMTP{Addr: "smtp.example.org:2525", Username: "apikey", Password: "p@ss:w/ord", TLS: TLSStartTLS, Timeout: 10 * time.Second, LocalName: "bedside.example.org"}},
		{"smtp://localhost:1025?tls=none",
			SMTP{Addr: "localhost:1025", TLS: TLSNone}},
		{"smtp://user:pass@127.0.0.1:1025?tls=none",
			SMTP{Addr: "127.0.0.1:1025", Username: "user", Password: "pass", TLS: TLSNone}},
		{"smtp://user:pass@[::1]:25?tls=none",
			SMTP{Addr: "[::1]:25", Username: "user", Password: "pass", TLS: TLSNone}},
		{"smtp://relay.internal:25?tls=none",
			SMTP{Addr: "relay.internal:25", TLS: TLSNone}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseURL =\n %#v\nwant\n %#v", got, tc.want)
			}
			// String is ParseURL's inverse, but for the password.
			pw := strings.TrimPrefix(url.UserPassword("", tc.want.Password).String(), ":")
			back, err := ParseURL(strings.Replace(got.String(), "xxxxx", pw, 1))
			if err != nil || back != got {
				t.Errorf("ParseURL(%q) = %#v, %v; want %#v", got.String(), back, err, got)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"", "scheme"},
		{"smtp.example.org:587", "scheme"},
		{"http://smtp.example.org", "scheme"},
		{"smtp:smtp.example.org", "no host"},
		{"smtp://", "no host"},
		{"smtp://:587", "no host"},
		{"smtp://smtp.example.org:0", "bad port"},
		{"smtp://smtp.example.org:99999", "bad port"},
		{"smtp://smtp.example.org:abc", "port"},
		{"smtp://smtp.example.org/mail", "path"},
		{"smtp://smtp.example.org?tls=ssl", `tls "ssl"`},
		{"smtps://smtp.example.org?tls=starttls", "smtps means tls=tls"},
		{"smtp://user:secretpw@smtp.example.org?tls=none", "refusing to send credentials without TLS"},
		{"smtp://user@smtp.example.org", "both username and password"},
		{"smtp://smtp.example.org?form=clinic@example.org", `unknown setting "form"`},
		{"smtp://smtp.example.org?from=clinic", "from address"},
		{"smtp://smtp.example.org?from=a@b&from=c@d", "given 2 times"},
		{"smtp://smtp.example.org?from_name=A%0D%0ABcc:x", "line break"},
		{"smtp://smtp.example.org?timeout=soon", "timeout"},
		{"smtp://smtp.example.org?timeout=-1s", "timeout"},
		{"smtp://smtp.example.org?local_name=a%20b", "local name"},
		{"smtp://smtp.example.org?a=%zz", "query"},
		{"smtp://user:secret%zzpw@smtp.example.org", "percent-encode"},
		{"smtp://user:sec/ret:w@smtp.example.org", "percent-encode"},
		{"smtp://user:sec ret@smtp.example.org", "percent-encode"},
		{"smtp://smtp.example.org:abc", "invalid port"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if err == nil {
				t.Fatalf("ParseURL succeeded: %#v", got)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec") || strings.Contains(err.Error(), "ret:") {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

func TestSMTPString(t *testing.T) {
	tests := []struct {
		s    SMTP
		want string
	}{
		{SMTP{Addr: "smtp.example.org:587", Username: "user", Password: "hunter2", From: "clinic@example.org"},
			"smtp://user:xxxxx@smtp.example.org:587?from=clinic%40example.org"},
		{SMTP{Addr: "smtp.example.org:465", TLS: TLSImplicit, FromName: "Bedside Clinic", Timeout: time.Minute},
			"smtps://smtp.example.org:465?from_name=Bedside%20Clinic&timeout=1m0s"},
		{SMTP{Addr: "localhost:1025", TLS: TLSNone, LocalName: "bedside.test"},
			"smtp://localhost:1025?local_name=bedside.test&tls=none"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			got := tc.s.String()
			if got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if tc.s.Password != "" && strings.Contains(got, tc.s.Password) {
				t.Errorf("String() = %q reveals the password", got)
			}
		})
	}
}

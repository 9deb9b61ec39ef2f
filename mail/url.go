package mail

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseURL reads SMTP settings from one string, so that the server can take
// them from a single setting such as BEDSIDE_SMTP_URL:
//
//	smtp://user:pass@smtp.example.org:587?from=clinic@example.org
//	smtps://user:pass@smtp.example.org?from=clinic@example.org&from_name=Bedside%20Clinic
//	smtp://localhost:1025?tls=none
//
// The scheme smtp means STARTTLS on port 587 unless the query says tls=none;
// smtps means TLS from the first byte on port 465. Percent-encode reserved
// characters in the user name and password. The query may also set
// from_name, timeout (a Go duration such as 10s) and local_name; any other
// key is an error. Errors never include the password.
func ParseURL(s string) (SMTP, error) {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			// The parser's message could quote part of the password.
			return SMTP{}, fmt.Errorf("%w: smtp url: cannot parse; percent-encode any of @ : / ? # %% in the user name and password", ErrConfig)
		}
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // without repeating the URL
		}
		return SMTP{}, fmt.Errorf("%w: smtp url: %v", ErrConfig, err)
	}
	var cfg SMTP
	port := ""
	switch u.Scheme {
	case "smtp":
		cfg.TLS, port = TLSStartTLS, "587"
	case "smtps":
		cfg.TLS, port = TLSImplicit, "465"
	default:
		return SMTP{}, fmt.Errorf("%w: smtp url: scheme %q is neither smtp nor smtps", ErrConfig, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return SMTP{}, fmt.Errorf("%w: smtp url: no host (want %s://host:port)", ErrConfig, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return SMTP{}, fmt.Errorf("%w: smtp url: unexpected path or fragment", ErrConfig)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return SMTP{}, fmt.Errorf("%w: smtp url: bad port %q", ErrConfig, p)
		}
		port = p
	}
	cfg.Addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return SMTP{}, fmt.Errorf("%w: smtp url: query: %v", ErrConfig, err)
	}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		vals := q[key]
		if len(vals) != 1 {
			return SMTP{}, fmt.Errorf("%w: smtp url: %s given %d times", ErrConfig, key, len(vals))
		}
		v := vals[0]
		switch key {
		case "tls":
			if u.Scheme == "smtps" && v != TLSImplicit {
				return SMTP{}, fmt.Errorf("%w: smtp url: smtps means tls=%s, not %q (use smtp://)", ErrConfig, TLSImplicit, v)
			}
			cfg.TLS = v
		case "from":
			if err := checkAddress("from", v); err != nil {
				return SMTP{}, fmt.Errorf("%w: smtp url: %v", ErrConfig, err)
			}
			cfg.From = v
		case "from_name":
			if err := checkHeader("from name", v); err != nil {
				return SMTP{}, fmt.Errorf("%w: smtp url: %v", ErrConfig, err)
			}
			cfg.FromName = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return SMTP{}, fmt.Errorf("%w: smtp url: timeout %q is not a positive duration like 10s", ErrConfig, v)
			}
			cfg.Timeout = d
		case "local_name":
			cfg.LocalName = v
		default:
			return SMTP{}, fmt.Errorf("%w: smtp url: unknown setting %q (known: tls, from, from_name, timeout, local_name)", ErrConfig, key)
		}
	}
	if err := cfg.check(); err != nil {
		return SMTP{}, fmt.Errorf("smtp url: %w", err)
	}
	return cfg, nil
}

// String returns the settings as a URL for logs, with the password
// replaced by "xxxxx".
func (s SMTP) String() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr}
	if s.TLS == TLSImplicit {
		u.Scheme = "smtps"
	}
	if s.Username != "" {
		u.User = url.UserPassword(s.Username, "xxxxx")
	}
	q := url.Values{}
	if s.TLS != "" && s.TLS != TLSImplicit {
		q.Set("tls", s.TLS)
	}
	for k, v := range map[string]string{"from": s.From, "from_name": s.FromName, "local_name": s.LocalName} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if s.Timeout != 0 {
		q.Set("timeout", s.Timeout.String())
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

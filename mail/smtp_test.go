package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// envelope is what the test server received in one transaction.
type envelope struct {
	user string // authenticated user, if any
	tls  bool   // whether the connection was encrypted at MAIL FROM
	from string
	to   []string
	data []byte
}

// backend is a go-smtp Backend that records what it receives and can be
// told to fail.
type backend struct {
	users    map[string]string // AUTH PLAIN accounts; nil offers no AUTH
	rcptErr  error             // returned for every RCPT TO
	dropRcpt bool              // close the connection on RCPT TO

	mu        sync.Mutex
	envelopes []envelope
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{be: b, conn: c}, nil
}

func (b *backend) received() []envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]envelope(nil), b.envelopes...)
}

type session struct {
	be   *backend
	conn *smtp.Conn
	cur  envelope
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	if s.be.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if want, ok := s.be.users[user]; !ok || pass != want {
			return smtp.ErrAuthFailed
		}
		s.cur.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.users != nil && s.cur.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	_, s.cur.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.dropRcpt {
		s.conn.Conn().Close()
		return errors.New("dropped")
	}
	if s.be.rcptErr != nil {
		return s.be.rcptErr
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.be.mu.Lock()
	s.be.envelopes = append(s.be.envelopes, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *session) Reset() { s.cur = envelope{user: s.cur.user} }

func (s *session) Logout() error { return nil }

// serverOpts configure startServer.
type serverOpts struct {
	insecureAuth bool        // allow AUTH without TLS
	startTLS     *tls.Config // offer STARTTLS
	implicitTLS  *tls.Config // speak TLS from the first byte
}

// startServer runs a go-smtp server on 127.0.0.1 until the test ends and
// returns its address.
func startServer(t *testing.T, be *backend, o serverOpts) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "mx.test"
	srv.AllowInsecureAuth = o.insecureAuth
	srv.TLSConfig = o.startTLS
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicitTLS != nil {
		l = tls.NewListener(l, o.implicitTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // in case Close ran before Serve registered l
		<-done
	})
	return l.Addr().String()
}

// testCert makes a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bedside test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

// inviteMessage is the message the Send tests deliver; From comes from SMTP.
func inviteMessage() Message {
	m := message()
	m.From, m.FromName = "", ""
	m.Calendar, m.Method = []byte(invite), "REQUEST"
	return m
}

func TestSend(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, serverOpts{})
	s := SMTP{Addr: addr, TLS: TLSNone, From: "visits@clinic.example", FromName: "Bedside Clinic", LocalName: "bedside.test"}
	m := inviteMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	got := be.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	env := got[0]
	if env.from != "visits@clinic.example" {
		t.Errorf("MAIL FROM %q, want visits@clinic.example", env.from)
	}
	if len(env.to) != 1 || env.to[0] != "sam.rivera@example.com" {
		t.Errorf("RCPT TO %q, want [sam.rivera@example.com]", env.to)
	}
	checkWire(t, env.data)
	msg, parts := parse(t, env.data)
	if from := msg.Header.Get("From"); from != `"Bedside Clinic" <visits@clinic.example>` {
		t.Errorf("From header %q, want the sender from SMTP", from)
	}
	if subj := msg.Header.Get("Subject"); subj != m.Subject {
		t.Errorf("Subject %q, want %q", subj, m.Subject)
	}
	if d, err := msg.Header.Date(); err != nil || time.Since(d) > time.Minute || time.Since(d) < -time.Minute {
		t.Errorf("Date %v, %v; want about now", d, err)
	}
	if len(parts) != 3 {
		t.Fatalf("got %d parts, want text, calendar, attachment", len(parts))
	}
	if !strings.Contains(string(parts[0].body), "Join here: https://bedside.example/visits/7f3c2a9e/join") {
		t.Errorf("text part %q lacks the join link", parts[0].body)
	}
	cal := parts[1]
	if cal.mediaType != "text/calendar" || cal.params["method"] != "REQUEST" {
		t.Errorf("calendar part %s %v, want text/calendar with method=REQUEST", cal.mediaType, cal.params)
	}
	if !bytes.Equal(cal.body, []byte(invite)) {
		t.Errorf("calendar part decodes to %q, want %q", cal.body, invite)
	}
	att := parts[2]
	if att.mediaType != "application/ics" || att.filename != "invite.ics" || !bytes.Equal(att.body, []byte(invite)) {
		t.Errorf("attachment %s %q = %q, want application/ics invite.ics with the calendar", att.mediaType, att.filename, att.body)
	}
}

func TestSendAuth(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		pass      string
		wantErr   string // empty for success
		permanent bool
	}{
		{"right password", "clinic", "s3cret pass", "", false},
		{"wrong password", "clinic", "guess", "smtp auth: 535", true},
		{"unknown user", "nobody", "s3cret pass", "smtp auth: 535", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend{users: map[string]string{"clinic": "s3cret pass"}}
			addr := startServer(t, be, serverOpts{insecureAuth: true})
			s := SMTP{Addr: addr, TLS: TLSNone, Username: tc.user, Password: tc.pass, From: "visits@clinic.example"}
			err := s.Send(context.Background(), inviteMessage())
			got := be.received()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if len(got) != 1 || got[0].user != tc.user {
					t.Fatalf("server received %+v, want one message from user %q", got, tc.user)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Send error %v, want %q", err, tc.wantErr)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, !tc.permanent, tc.permanent)
			}
			if strings.Contains(err.Error(), tc.pass) {
				t.Errorf("error %q contains the password", err)
			}
			if len(got) != 0 {
				t.Errorf("server received %d messages", len(got))
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	tests := []struct {
		name      string
		be        *backend
		addr      func(t *testing.T) string // nil: a go-smtp server with be
		wantErr   string
		permanent bool
	}{
		{
			name:      "550 recipient rejected",
			be:        &backend{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
			wantErr:   `smtp rcpt to: 550 "5.1.1 no such user"`,
			permanent: true,
		},
		{
			name:      "451 try again later",
			be:        &backend{rcptErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted"}},
			wantErr:   `smtp rcpt to: 451 "4.3.0 greylisted"`,
			permanent: false,
		},
		{
			name:    "connection closed at RCPT TO",
			be:      &backend{dropRcpt: true},
			wantErr: "smtp rcpt to: ",
		},
		{
			name: "connection closed before the greeting",
			addr: func(t *testing.T) string {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				go func() {
					if c, err := l.Accept(); err == nil {
						c.Close()
					}
				}()
				return l.Addr().String()
			},
			wantErr: "smtp greeting: EOF",
		},
		{
			name: "nothing listening",
			addr: func(t *testing.T) string {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				l.Close()
				return addr
			},
			wantErr: "smtp dial: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var addr string
			if tc.addr != nil {
				addr = tc.addr(t)
			} else {
				addr = startServer(t, tc.be, serverOpts{})
			}
			s := SMTP{Addr: addr, TLS: TLSNone, From: "visits@clinic.example"}
			err := s.Send(context.Background(), inviteMessage())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Send error %v, want %q", err, tc.wantErr)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, !tc.permanent, tc.permanent)
			}
			if tc.be != nil {
				if got := tc.be.received(); len(got) != 0 {
					t.Errorf("server received %d messages", len(got))
				}
			}
		})
	}
}

func TestSendRejectsBeforeNetwork(t *testing.T) {
	tests := []struct {
		name   string
		s      func(addr string) SMTP
		edit   func(*Message)
		target error
		want   string
	}{
		{"subject injection", nil, func(m *Message) { m.Subject = "Hi\r\nBcc: victim@example.org" }, ErrInvalidMessage, "subject contains a line break"},
		{"recipient injection", nil, func(m *Message) { m.To = "sam@example.com>\r\nRCPT TO:<victim@example.org" }, ErrInvalidMessage, "line break"},
		{"name injection", nil, func(m *Message) { m.ToName = "Sam\nBcc: victim@example.org" }, ErrInvalidMessage, "line break"},
		{"address without @", nil, func(m *Message) { m.To = "sam" }, ErrInvalidMessage, "has no @"},
		{"no sender", func(addr string) SMTP { return SMTP{Addr: addr, TLS: TLSNone} }, func(*Message) {}, ErrInvalidMessage, "from address is empty"},
		{"credentials in the clear", func(string) SMTP {
			return SMTP{Addr: "192.0.2.1:587", TLS: TLSNone, Username: "clinic", Password: "pw", From: "visits@clinic.example", Timeout: 2 * time.Second}
		}, func(*Message) {}, ErrConfig, "refusing to send credentials without TLS"},
		{"unknown tls mode", func(addr string) SMTP {
			return SMTP{Addr: addr, TLS: "ssl", From: "visits@clinic.example"}
		}, func(*Message) {}, ErrConfig, `tls "ssl"`},
		{"bad address", func(string) SMTP { return SMTP{Addr: "relay.example", From: "visits@clinic.example"} }, func(*Message) {}, ErrConfig, "not host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			s := SMTP{Addr: l.Addr().String(), TLS: TLSNone, From: "visits@clinic.example"}
			if tc.s != nil {
				s = tc.s(l.Addr().String())
			}
			m := inviteMessage()
			tc.edit(&m)
			err = s.Send(context.Background(), m)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Send error %v, want %v mentioning %q", err, tc.target, tc.want)
			}

			// Had Send connected, its connection would be first in the
			// listener's queue, ahead of this probe.
			probe, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.RemoteAddr().String() != probe.LocalAddr().String() {
				t.Errorf("Send connected to the server before rejecting the message")
			}
		})
	}
}

func TestSendTLS(t *testing.T) {
	serverTLS, pool := testCert(t)
	users := map[string]string{"clinic": "s3cret"}
	tests := []struct {
		name    string
		opts    serverOpts
		users   map[string]string // accounts the server offers AUTH PLAIN for
		s       SMTP
		wantErr string // empty for success
	}{
		{
			name:  "starttls with auth",
			opts:  serverOpts{startTLS: serverTLS},
			users: users,
			s:     SMTP{TLS: TLSStartTLS, RootCAs: pool, Username: "clinic", Password: "s3cret"},
		},
		{
			name: "starttls is the default",
			opts: serverOpts{startTLS: serverTLS},
			s:    SMTP{RootCAs: pool},
		},
		{
			name:  "implicit tls with auth",
			opts:  serverOpts{implicitTLS: serverTLS},
			users: users,
			s:     SMTP{TLS: TLSImplicit, RootCAs: pool, Username: "clinic", Password: "s3cret"},
		},
		{
			name:    "starttls with an untrusted certificate",
			opts:    serverOpts{startTLS: serverTLS},
			s:       SMTP{TLS: TLSStartTLS},
			wantErr: "smtp starttls: tls: failed to verify certificate",
		},
		{
			name:    "implicit tls with an untrusted certificate",
			opts:    serverOpts{implicitTLS: serverTLS},
			s:       SMTP{TLS: TLSImplicit},
			wantErr: "smtp tls handshake: tls: failed to verify certificate",
		},
		{
			name:    "server without starttls",
			opts:    serverOpts{},
			s:       SMTP{TLS: TLSStartTLS, RootCAs: pool},
			wantErr: "does not offer STARTTLS",
		},
		{
			name:    "server without auth",
			opts:    serverOpts{startTLS: serverTLS},
			s:       SMTP{RootCAs: pool, Username: "clinic", Password: "s3cret"},
			wantErr: "does not offer AUTH PLAIN",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend{users: tc.users}
			s := tc.s
			s.Addr = startServer(t, be, tc.opts)
			s.From = "visits@clinic.example"
			err := s.Send(context.Background(), inviteMessage())
			got := be.received()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Send error %v, want %q", err, tc.wantErr)
				}
				if IsPermanent(err) {
					t.Errorf("IsPermanent(%v) = true, want false", err)
				}
				if len(got) != 0 {
					t.Errorf("server received %d messages", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(got) != 1 || !got[0].tls || got[0].user != s.Username {
				t.Fatalf("server received %+v, want one message over TLS from user %q", got, s.Username)
			}
			if _, parts := parse(t, got[0].data); len(parts) != 3 || !bytes.Equal(parts[1].body, []byte(invite)) {
				t.Errorf("message over TLS does not carry the calendar")
			}
		})
	}
}

func TestSendContext(t *testing.T) {
	t.Run("cancelled while waiting for the greeting", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				accepted <- c
			}
			cancel() // the server is silent; the client is waiting for its greeting
		}()
		err = SMTP{Addr: l.Addr().String(), TLS: TLSNone, From: "visits@clinic.example"}.Send(ctx, inviteMessage())
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send error %v, want context.Canceled", err)
		}
		if IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = true", err)
		}
		select {
		case c := <-accepted:
			c.Close()
		default:
			t.Error("the server never saw the connection")
		}
	})
	t.Run("timeout already passed", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, be, serverOpts{})
		err := SMTP{Addr: addr, TLS: TLSNone, From: "visits@clinic.example", Timeout: time.Nanosecond}.Send(context.Background(), inviteMessage())
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "smtp dial: ") {
			t.Errorf("Send error %v, want smtp dial: ... context deadline exceeded", err)
		}
		if len(be.received()) != 0 {
			t.Error("server received a message")
		}
	})
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"550", &textproto.Error{Code: 550, Msg: "no"}, true},
		{"554 wrapped", errors.Join(errors.New("x"), &textproto.Error{Code: 554, Msg: "no"}), true},
		{"451", &textproto.Error{Code: 451, Msg: "later"}, false},
		{"421 wrapped", &wrapped{&textproto.Error{Code: 421, Msg: "bye"}}, false},
		{"invalid message", ErrInvalidMessage, true},
		{"invalid settings", ErrConfig, false},
		{"EOF", io.EOF, false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "smtp data: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

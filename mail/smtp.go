package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// Values of SMTP.TLS.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and fails if the
	// server does not offer it. It is the default.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte, as on port 465.
	TLSImplicit = "tls"
	// TLSNone sends in the clear; credentials are then refused except to
	// localhost.
	TLSNone = "none"
)

// defaultTimeout bounds a whole SMTP conversation when SMTP.Timeout is zero.
const defaultTimeout = 30 * time.Second

// ErrConfig is wrapped by the errors ParseURL and Send return for SMTP
// settings that cannot work, such as credentials over an unencrypted
// connection.
var ErrConfig = errors.New("invalid smtp settings")

// SMTP sends messages through one SMTP server, typically the relay of the
// clinic's mail provider. The zero value is not usable: set Addr at least.
type SMTP struct {
	// Addr is the server's host:port.
	Addr string
	// Username and Password, when set, are sent with AUTH PLAIN.
	Username, Password string
	// From and FromName are the sender used when Message.From is empty.
	From, FromName string
	// TLS is TLSStartTLS (the default when empty), TLSImplicit or TLSNone.
	// Credentials are only sent over TLS, or to localhost, 127.0.0.1 or ::1.
	TLS string
	// Timeout bounds the whole conversation, from dial to QUIT; zero means
	// 30 seconds. The ctx given to Send can end it sooner.
	Timeout time.Duration
	// LocalName is the host name given in EHLO; empty means "localhost".
	LocalName string
	// RootCAs, when set, replaces the system's certificate authorities for
	// verifying the server: for tests and private CAs.
	RootCAs *x509.CertPool
}

// check validates the settings without touching the network.
func (s SMTP) check() error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%w: address %q is not host:port", ErrConfig, s.Addr)
	}
	switch s.TLS {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("%w: tls %q is not %s, %s or %s", ErrConfig, s.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	if (s.Username == "") != (s.Password == "") {
		return fmt.Errorf("%w: set both username and password, or neither", ErrConfig)
	}
	if s.Username != "" && s.TLS == TLSNone && !isLocalhost(host) {
		return fmt.Errorf("%w: refusing to send credentials without TLS to %s", ErrConfig, host)
	}
	if strings.ContainsAny(s.LocalName, "\r\n ") {
		return fmt.Errorf("%w: local name %q", ErrConfig, s.LocalName)
	}
	return nil
}

// isLocalhost matches net/smtp, which allows PLAIN auth without TLS to
// these names only.
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Send delivers m in one SMTP conversation: EHLO, STARTTLS when asked, AUTH
// PLAIN when a username is set, MAIL FROM, RCPT TO, DATA with Render's
// output, QUIT. The message is rendered, and rejected if invalid, before any
// network I/O.
//
// Errors name the stage that failed ("smtp rcpt to: 550 5.1.1 ..."); use
// IsPermanent to tell a rejection from a failure worth retrying. Once the
// server has accepted the DATA, the message is sent: an error on QUIT is
// ignored.
func (s SMTP) Send(ctx context.Context, m Message) error {
	if err := s.check(); err != nil {
		return err
	}
	if m.From == "" {
		m.From = s.From
		if m.FromName == "" {
			m.FromName = s.FromName
		}
	}
	msg, err := Render(m, time.Now())
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return stageError(ctx, "smtp dial", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Cancelling ctx unblocks any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if s.TLS == TLSImplicit {
		tc := tls.Client(conn, s.tlsConfig(host))
		if err := tc.HandshakeContext(ctx); err != nil {
			return stageError(ctx, "smtp tls handshake", err)
		}
		conn = tc // net/smtp sees a *tls.Conn and knows the link is encrypted
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return stageError(ctx, "smtp greeting", err)
	}
	defer c.Close()
	localName := s.LocalName
	if localName == "" {
		localName = "localhost"
	}
	if err := c.Hello(localName); err != nil {
		return stageError(ctx, "smtp ehlo", err)
	}
	if s.TLS == "" || s.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp starttls: %s does not offer STARTTLS (set tls=none to send in the clear)", s.Addr)
		}
		if err := c.StartTLS(s.tlsConfig(host)); err != nil {
			return stageError(ctx, "smtp starttls", err)
		}
	}
	if s.Username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return fmt.Errorf("smtp auth: %s does not offer AUTH PLAIN (offers %q)", s.Addr, mechs)
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return stageError(ctx, "smtp auth", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return stageError(ctx, "smtp mail from", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return stageError(ctx, "smtp rcpt to", err)
	}
	w, err := c.Data()
	if err != nil {
		return stageError(ctx, "smtp data", err)
	}
	if _, err := w.Write(msg); err != nil {
		return stageError(ctx, "smtp data", err)
	}
	if err := w.Close(); err != nil { // reads the server's verdict on the message
		return stageError(ctx, "smtp data", err)
	}
	c.Quit() // the message is accepted; a failed goodbye changes nothing
	return nil
}

func (s SMTP) tlsConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
}

// stageError wraps err with the stage of the conversation, and with ctx's
// error when ctx ended the conversation.
func stageError(ctx context.Context, stage string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%s: %w: %w", stage, ctxErr, err)
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// IsPermanent reports whether err means that sending the same message again
// cannot succeed: the server answered with a 5xx reply, or the message itself
// is invalid (ErrInvalidMessage). Other errors — 4xx replies, network
// failures, TLS failures, timeouts and invalid settings — are worth retrying
// later, perhaps after fixing the settings.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrInvalidMessage) {
		return true
	}
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code <= 599
}

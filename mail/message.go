package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidMessage is wrapped by the errors Render and Send return for a
// message that cannot be sent as it is: a line break in a header field (header
// injection), a malformed address, or a calendar without a method.
var ErrInvalidMessage = errors.New("invalid message")

// Message is one email to one recipient.
type Message struct {
	// From is the sender's address, such as clinic@example.org; SMTP.Send
	// fills it from SMTP.From when empty.
	From string
	// To is the recipient's address.
	To string
	// FromName and ToName are optional display names.
	FromName, ToName string
	// Subject is the subject line, any UTF-8 text without line breaks.
	Subject string
	// Text is the plain-text body.
	Text string
	// Calendar is an optional iCalendar object (RFC 5545) sent as an
	// invitation; without one the message is plain text.
	Calendar []byte
	// Method is the iCalendar METHOD of Calendar, such as REQUEST or CANCEL.
	// When empty it is read from Calendar; when set it must agree with it.
	Method string
	// MessageID is the Message-ID header, with or without angle brackets;
	// when empty Render makes a random one in the domain of From.
	MessageID string
}

// Render writes m as an RFC 5322 message dated date, with CRLF line endings
// and only 7-bit content, ready for SMTP DATA.
//
// A non-ASCII subject is written as RFC 2047 Q encoded-words; so are
// non-ASCII names, through net/mail, which switches to B encoding when a name
// holds punctuation a Q word in a phrase may not carry. The text is UTF-8 in
// quoted-printable. With a Calendar the message is
// multipart/mixed holding a multipart/alternative of the text and a
// text/calendar part with the method, plus the same calendar as an
// invite.ics attachment: Gmail and Outlook read the inline part, other
// clients offer the attachment.
//
// Render returns an error wrapping ErrInvalidMessage when a header field holds
// a CR, LF or other control character, an address is not a plain
// local@domain, or the calendar's method is missing or disagrees with Method.
func Render(m Message, date time.Time) ([]byte, error) {
	h, err := headers(m, date)
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	if !utf8.ValidString(m.Text) {
		return nil, fmt.Errorf("render message: %w: text is not valid UTF-8", ErrInvalidMessage)
	}
	var b bytes.Buffer
	for _, f := range h {
		field := fold(f[0], f[1])
		for l := range strings.SplitSeq(strings.TrimSuffix(field, "\r\n"), "\r\n") {
			if len(l) > 998 {
				return nil, fmt.Errorf("render message: %w: %s has a word too long for a header line", ErrInvalidMessage, strings.ToLower(f[0]))
			}
		}
		b.WriteString(field)
	}
	if len(m.Calendar) == 0 {
		b.WriteString("Content-Type: text/plain; charset=UTF-8\r\n")
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, fmt.Errorf("render message: %w", err)
		}
		return b.Bytes(), nil
	}

	method, err := calendarMethod(m.Calendar, m.Method)
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	var alt bytes.Buffer
	aw := multipart.NewWriter(&alt)
	aw.SetBoundary(boundary()) // cannot fail: boundary is valid
	pw, err := aw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=UTF-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	if err := writeQP(pw, m.Text); err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	pw, err = aw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mime.FormatMediaType("text/calendar", map[string]string{"charset": "UTF-8", "method": method})},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	writeBase64(pw, m.Calendar)
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}

	mw := multipart.NewWriter(&b)
	mw.SetBoundary(boundary())
	b.WriteString(fold("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()})))
	b.WriteString("\r\n")
	pw, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type": {mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": aw.Boundary()})},
	})
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	pw.Write(alt.Bytes()) // writes to a bytes.Buffer cannot fail
	pw, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`application/ics; name="invite.ics"`},
		"Content-Disposition":       {`attachment; filename="invite.ics"`},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	writeBase64(pw, m.Calendar)
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	return b.Bytes(), nil
}

// headers checks m and returns its header fields in order, unfolded.
func headers(m Message, date time.Time) ([][2]string, error) {
	for _, f := range []struct{ name, value string }{
		{"from address", m.From}, {"to address", m.To},
		{"from name", m.FromName}, {"to name", m.ToName},
		{"subject", m.Subject}, {"message id", m.MessageID}, {"method", m.Method},
	} {
		if err := checkHeader(f.name, f.value); err != nil {
			return nil, err
		}
	}
	if err := checkAddress("from", m.From); err != nil {
		return nil, err
	}
	if err := checkAddress("to", m.To); err != nil {
		return nil, err
	}
	if date.IsZero() {
		return nil, fmt.Errorf("%w: date is zero", ErrInvalidMessage)
	}
	id, err := messageID(m.MessageID, m.From)
	if err != nil {
		return nil, err
	}
	return [][2]string{
		{"From", (&netmail.Address{Name: m.FromName, Address: m.From}).String()},
		{"To", (&netmail.Address{Name: m.ToName, Address: m.To}).String()},
		{"Subject", mime.QEncoding.Encode("UTF-8", m.Subject)},
		{"Date", date.Format(time.RFC1123Z)},
		{"Message-ID", id},
		{"MIME-Version", "1.0"},
	}, nil
}

// checkHeader refuses what would let a value end its header field and start
// another (header injection), and other control characters.
func checkHeader(field, s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%w: %s contains a line break (CR or LF)", ErrInvalidMessage, field)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidMessage, field)
	}
	for _, r := range s {
		if r != '\t' && (r < 0x20 || r == 0x7f) {
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalidMessage, field, r)
		}
	}
	return nil
}

// checkAddress accepts a bare ASCII addr-spec, local@domain, the only form
// that can go both in a header and in an SMTP envelope unchanged.
func checkAddress(field, addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: %s address is empty", ErrInvalidMessage, field)
	}
	if !strings.Contains(addr, "@") {
		return fmt.Errorf("%w: %s address %q has no @", ErrInvalidMessage, field, addr)
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`<>"(),;:[]\`, c) >= 0 {
			return fmt.Errorf("%w: %s address %q contains %q", ErrInvalidMessage, field, addr, c)
		}
	}
	a, err := netmail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" {
		return fmt.Errorf("%w: %s address %q is not a plain local@domain", ErrInvalidMessage, field, addr)
	}
	return nil
}

// boundary returns a random multipart boundary, shorter than
// mime/multipart's own so that a part's Content-Type line fits in 78
// characters.
func boundary() string {
	var r [15]byte
	rand.Read(r[:]) // never returns an error
	return hex.EncodeToString(r[:])
}

// messageID returns id in angle brackets, or a random one in from's domain.
func messageID(id, from string) (string, error) {
	if id == "" {
		var r [16]byte
		rand.Read(r[:]) // never returns an error
		_, domain, _ := strings.Cut(from, "@")
		return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">", nil
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if !strings.Contains(inner, "@") || strings.ContainsAny(inner, "<> \t") || !isASCII(inner) {
		return "", fmt.Errorf("%w: message id %q is not like <unique@domain>", ErrInvalidMessage, id)
	}
	return "<" + inner + ">", nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// calendarMethod returns the METHOD of cal, checked against want when set.
func calendarMethod(cal []byte, want string) (string, error) {
	var got string
	for line := range strings.SplitSeq(string(cal), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "METHOD:"); ok {
			got = v
			break
		}
	}
	want = strings.ToUpper(want)
	switch {
	case want == "" && got == "":
		return "", fmt.Errorf("%w: calendar has no METHOD and Message.Method is empty", ErrInvalidMessage)
	case want == "":
		want = got
	case got != "" && got != want:
		return "", fmt.Errorf("%w: method %q differs from the calendar's METHOD %q", ErrInvalidMessage, want, got)
	}
	for i := 0; i < len(want); i++ {
		if c := want[i]; (c < 'A' || c > 'Z') && c != '-' {
			return "", fmt.Errorf("%w: method %q is not an iCalendar method name", ErrInvalidMessage, want)
		}
	}
	return want, nil
}

// fold returns the header field name: value with CRLF, folded before a space
// where a line would pass 78 characters (RFC 5322 §2.2.3). A run of text
// without spaces is never broken, so headers checks the result against the
// hard limit of 998.
func fold(name, value string) string {
	const limit = 78
	var b strings.Builder
	line := name + ": " + value
	start := len(name) + 1 // the space after the colon, for a first word too long
	for len(line) > limit {
		i := breakAt(line, start, limit)
		if i < 0 {
			break
		}
		b.WriteString(line[:i])
		b.WriteString("\r\n")
		line = line[i:] // the space begins the continuation line
		start = 1
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return b.String()
}

// breakAt returns the index of the last space in line[start:limit+1] that
// follows a non-space, or failing that the first such space after it, or -1.
func breakAt(line string, start, limit int) int {
	ok := func(i int) bool { return line[i] == ' ' && line[i-1] != ' ' }
	for i := min(limit, len(line)-1); i >= start && i > 0; i-- {
		if ok(i) {
			return i
		}
	}
	for i := max(limit+1, start, 1); i < len(line); i++ {
		if ok(i) {
			return i
		}
	}
	return -1
}

func writeQP(w io.Writer, text string) error {
	qw := quotedprintable.NewWriter(w)
	if _, err := qw.Write([]byte(text)); err != nil {
		return err
	}
	return qw.Close()
}

// writeBase64 writes data in base64, in lines of 76 characters (RFC 2045 §6.8).
func writeBase64(w io.Writer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		w.Write([]byte(enc[:76] + "\r\n"))
		enc = enc[76:]
	}
	w.Write([]byte(enc + "\r\n"))
}

package mail

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
)

// invite is a made-up iCalendar invitation with no health information.
const invite = "BEGIN:VCALENDAR\r\n" +
	"PRODID:-//Bedside//Bedside//EN\r\n" +
	"VERSION:2.0\r\n" +
	"CALSCALE:GREGORIAN\r\n" +
	"METHOD:REQUEST\r\n" +
	"BEGIN:VEVENT\r\n" +
	"UID:visit-7f3c2a9e@bedside.example\r\n" +
	"SEQUENCE:0\r\n" +
	"DTSTAMP:20261120T093000Z\r\n" +
	"DTSTART:20261125T140000Z\r\n" +
	"DTEND:20261125T143000Z\r\n" +
	"SUMMARY:Video visit with Dr Ada Okafor\r\n" +
	"STATUS:CONFIRMED\r\n" +
	"ORGANIZER;CN=Bedside Clinic:mailto:visits@clinic.example\r\n" +
	"ATTENDEE;CN=Sam Rivera;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALS\r\n" +
	" E:mailto:sam.rivera@example.com\r\n" +
	"END:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

var date = time.Date(2026, 11, 20, 9, 30, 0, 0, time.FixedZone("CET", 3600))

func message() Message {
	return Message{
		From:      "visits@clinic.example",
		FromName:  "Bedside Clinic",
		To:        "sam.rivera@example.com",
		ToName:    "Sam Rivera",
		Subject:   "Your video visit on 25 November",
		Text:      "Hello Sam,\n\nYour video visit with Dr Ada Okafor is booked for 25 November at 15:00.\nJoin here: https://bedside.example/visits/7f3c2a9e/join\n",
		MessageID: "<visit-7f3c2a9e.0@clinic.example>",
	}
}

// part is one leaf of a parsed message, its body decoded.
type part struct {
	mediaType   string
	params      map[string]string
	encoding    string
	disposition string
	filename    string
	body        []byte
}

// parse reads a rendered message the way a mail client would and returns its
// leaf parts in order, failing the test on anything malformed.
func parse(t *testing.T, data []byte) (*netmail.Message, []part) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, data)
	}
	var parts []part
	var walk func(ct, cte, cd string, body io.Reader)
	walk = func(ct, cte, cd string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("Content-Type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			if cte != "" {
				t.Errorf("multipart with Content-Transfer-Encoding %q", cte)
			}
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", mt, err)
				}
				walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p)
			}
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		var dec []byte
		switch cte {
		case "quoted-printable":
			dec, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		case "base64":
			lines := strings.Split(strings.TrimRight(string(raw), "\r\n"), "\r\n")
			for i, l := range lines {
				if len(l) > 76 || i < len(lines)-1 && len(l) != 76 {
					t.Errorf("base64 line %d of %d characters, want 76", i, len(l))
				}
			}
			dec, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw)))
		default:
			t.Fatalf("%s has Content-Transfer-Encoding %q", mt, cte)
		}
		if err != nil {
			t.Fatalf("%s: decode %s: %v", mt, cte, err)
		}
		p := part{mediaType: mt, params: params, encoding: cte, body: dec}
		if cd != "" {
			d, dp, err := mime.ParseMediaType(cd)
			if err != nil {
				t.Fatalf("Content-Disposition %q: %v", cd, err)
			}
			p.disposition, p.filename = d, dp["filename"]
		}
		parts = append(parts, p)
	}
	walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", msg.Body)
	return msg, parts
}

// checkWire checks what SMTP DATA needs: CRLF line endings, 7-bit bytes,
// lines within 998 octets, header lines within 78 where they hold spaces.
func checkWire(t *testing.T, data []byte) {
	t.Helper()
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Error("message does not end in CRLF")
	}
	for i, c := range data {
		if c >= 0x80 || c == 0 {
			t.Fatalf("byte %#x at %d is not 7-bit text", c, i)
		}
		if c == '\n' && (i == 0 || data[i-1] != '\r') || c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			t.Fatalf("bare CR or LF at byte %d", i)
		}
	}
	head, _, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("no blank line after the header")
	}
	for _, l := range strings.Split(string(head), "\r\n") {
		if len(l) > 78 && strings.Contains(strings.TrimSpace(l), " ") {
			t.Errorf("header line of %d characters could have been folded: %q", len(l), l)
		}
	}
	for _, l := range strings.Split(string(data), "\r\n") {
		if strings.HasPrefix(l, "Content-") && len(l) > 78 {
			t.Errorf("part header line of %d characters: %q", len(l), l)
		}
		if len(l) > 998 {
			t.Errorf("line of %d octets", len(l))
		}
	}
}

func TestRender(t *testing.T) {
	cancel := strings.Replace(invite, "METHOD:REQUEST", "METHOD:CANCEL", 1)
	tests := []struct {
		name      string
		edit      func(*Message)
		wantParts []string // media types of the leaf parts, in order
	}{
		{"plain text", func(*Message) {}, []string{"text/plain"}},
		{"non-ASCII names, subject and text", func(m *Message) {
			m.FromName = "Clinique Bedside, Zoë Müller"
			m.ToName = "Søren Ødegård"
			m.Subject = "Votre visite vidéo du 25 novembre — à bientôt"
			m.Text = "Bonjour Søren,\r\nà bientôt. 🙂 " + strings.Repeat("Une ligne très longue ", 10) + "\n"
		}, []string{"text/plain"}},
		{"long ASCII subject is folded", func(m *Message) {
			m.Subject = strings.Repeat("Your video visit with Dr Ada Okafor ", 5)
		}, []string{"text/plain"}},
		{"name with specials is quoted", func(m *Message) {
			m.FromName = `Okafor, Ada "Doc" (Bedside)`
		}, []string{"text/plain"}},
		{"calendar request", func(m *Message) {
			m.Calendar, m.Method = []byte(invite), "REQUEST"
		}, []string{"text/plain", "text/calendar", "application/ics"}},
		{"calendar method read from the calendar", func(m *Message) {
			m.Calendar = []byte(cancel)
		}, []string{"text/plain", "text/calendar", "application/ics"}},
		{"message id without brackets", func(m *Message) {
			m.MessageID = "abc.1@clinic.example"
		}, []string{"text/plain"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := message()
			tc.edit(&m)
			data, err := Render(m, date)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkWire(t, data)
			msg, parts := parse(t, data)

			from, err := netmail.ParseAddress(msg.Header.Get("From"))
			if err != nil || from.Name != m.FromName || from.Address != m.From {
				t.Errorf("From = %q, parsed %+v, %v; want %q <%s>", msg.Header.Get("From"), from, err, m.FromName, m.From)
			}
			to, err := netmail.ParseAddress(msg.Header.Get("To"))
			if err != nil || to.Name != m.ToName || to.Address != m.To {
				t.Errorf("To = %q, parsed %+v, %v; want %q <%s>", msg.Header.Get("To"), to, err, m.ToName, m.To)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil || subject != strings.TrimRight(m.Subject, " ") && subject != m.Subject {
				t.Errorf("Subject decodes to %q, %v; want %q", subject, err, m.Subject)
			}
			if d, err := msg.Header.Date(); err != nil || !d.Equal(date) {
				t.Errorf("Date = %v, %v; want %v", d, err, date)
			}
			if id := msg.Header.Get("Message-ID"); id != "<"+strings.Trim(m.MessageID, "<>")+">" {
				t.Errorf("Message-ID = %q, want %q in angle brackets", id, m.MessageID)
			}
			if v := msg.Header.Get("MIME-Version"); v != "1.0" {
				t.Errorf("MIME-Version = %q", v)
			}

			var got []string
			for _, p := range parts {
				got = append(got, p.mediaType)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantParts, ",") {
				t.Fatalf("parts %v, want %v", got, tc.wantParts)
			}
			text := parts[0]
			if text.params["charset"] != "UTF-8" || text.encoding != "quoted-printable" {
				t.Errorf("text part %+v, want UTF-8 in quoted-printable", text)
			}
			wantText := strings.ReplaceAll(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n", "\r\n")
			if string(text.body) != wantText {
				t.Errorf("text = %q, want %q", text.body, wantText)
			}
			if m.Calendar == nil {
				return
			}
			wantMethod := m.Method
			if wantMethod == "" {
				wantMethod = "CANCEL"
			}
			cal, att := parts[1], parts[2]
			if cal.params["method"] != wantMethod || cal.params["charset"] != "UTF-8" || cal.encoding != "base64" || cal.disposition != "" {
				t.Errorf("calendar part %+v, want inline, method=%s, charset=UTF-8, base64", cal, wantMethod)
			}
			if !bytes.Equal(cal.body, m.Calendar) {
				t.Errorf("calendar part = %q, want %q", cal.body, m.Calendar)
			}
			if att.disposition != "attachment" || att.filename != "invite.ics" || att.params["name"] != "invite.ics" || att.encoding != "base64" {
				t.Errorf("attachment %+v, want attachment invite.ics in base64", att)
			}
			if !bytes.Equal(att.body, m.Calendar) {
				t.Errorf("attachment = %q, want %q", att.body, m.Calendar)
			}
			if mt, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type")); mt != "multipart/mixed" {
				t.Errorf("top Content-Type %q, want multipart/mixed", mt)
			}
		})
	}
}

func TestRenderMessageID(t *testing.T) {
	m := message()
	m.MessageID = ""
	var ids []string
	for range 2 {
		data, err := Render(m, date)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := parse(t, data)
		id := msg.Header.Get("Message-ID")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@clinic.example>") || len(id) < 20 {
			t.Errorf("generated Message-ID %q, want <random@clinic.example>", id)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Errorf("two messages got the same Message-ID %q", ids[0])
	}
}

func TestRenderRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Message)
		want string
	}{
		{"LF in subject", func(m *Message) { m.Subject = "Hi\nBcc: victim@example.org" }, "subject contains a line break"},
		{"CR in subject", func(m *Message) { m.Subject = "Hi\rBcc: victim@example.org" }, "subject contains a line break"},
		{"CRLF in to name", func(m *Message) { m.ToName = "Sam\r\nBcc: victim@example.org" }, "to name contains a line break"},
		{"LF in from name", func(m *Message) { m.FromName = "Clinic\n" }, "from name contains a line break"},
		{"CRLF in to address", func(m *Message) { m.To = "sam@example.com\r\nBcc: victim@example.org" }, "to address contains a line break"},
		{"CRLF in from address", func(m *Message) { m.From = "a@b\r\nX: y" }, "from address contains a line break"},
		{"CRLF in message id", func(m *Message) { m.MessageID = "<a@b>\r\nBcc: v@e" }, "message id contains a line break"},
		{"CRLF in method", func(m *Message) { m.Calendar, m.Method = []byte(invite), "REQUEST\r\nX: y" }, "method contains a line break"},
		{"NUL in subject", func(m *Message) { m.Subject = "a\x00b" }, "control character"},
		{"to without @", func(m *Message) { m.To = "sam.example.com" }, "has no @"},
		{"from without @", func(m *Message) { m.From = "clinic" }, "has no @"},
		{"empty to", func(m *Message) { m.To = "" }, "to address is empty"},
		{"to with a display name", func(m *Message) { m.To = "Sam <sam@example.com>" }, "contains"},
		{"two recipients", func(m *Message) { m.To = "a@example.com,b@example.com" }, "contains"},
		{"non-ASCII address", func(m *Message) { m.To = "zoë@example.com" }, "contains"},
		{"bad message id", func(m *Message) { m.MessageID = "no-at-sign" }, "message id"},
		{"invalid UTF-8 subject", func(m *Message) { m.Subject = "a\xffb" }, "not valid UTF-8"},
		{"invalid UTF-8 text", func(m *Message) { m.Text = "a\xffb" }, "not valid UTF-8"},
		{"calendar without method", func(m *Message) { m.Calendar = []byte("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n") }, "no METHOD"},
		{"method disagrees with calendar", func(m *Message) { m.Calendar, m.Method = []byte(invite), "CANCEL" }, "differs"},
		{"bad method name", func(m *Message) { m.Calendar, m.Method = []byte("BEGIN:VCALENDAR\r\n"), "REQUEST;x=1" }, "not an iCalendar method"},
		{"unbreakable subject", func(m *Message) { m.Subject = strings.Repeat("x", 1000) }, "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := message()
			tc.edit(&m)
			data, err := Render(m, date)
			if err == nil {
				t.Fatalf("Render succeeded:\n%s", data)
			}
			if !errors.Is(err, ErrInvalidMessage) || !IsPermanent(err) {
				t.Errorf("error %v: want ErrInvalidMessage, permanent", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := Render(message(), time.Time{}); err == nil {
		t.Error("Render accepted a zero date")
	}
}

func TestFold(t *testing.T) {
	tests := []struct {
		name, value string
		want        string
	}{
		{"Subject", "short", "Subject: short\r\n"},
		{"Subject", strings.Repeat("a", 69), "Subject: " + strings.Repeat("a", 69) + "\r\n"},
		{"Subject", strings.Repeat("a", 40) + " " + strings.Repeat("b", 40), "Subject: " + strings.Repeat("a", 40) + "\r\n " + strings.Repeat("b", 40) + "\r\n"},
		{"Subject", strings.Repeat("a", 100) + " b", "Subject:\r\n " + strings.Repeat("a", 100) + "\r\n b\r\n"},
		{"Subject", strings.Repeat("a", 100), "Subject:\r\n " + strings.Repeat("a", 100) + "\r\n"},
		{"Subject", "=?UTF-8?q?" + strings.Repeat("a", 63) + "?= =?UTF-8?q?b?=", "Subject:\r\n =?UTF-8?q?" + strings.Repeat("a", 63) + "?=\r\n =?UTF-8?q?b?=\r\n"},
		{"Subject", strings.Repeat("a", 70) + "    b", "Subject:\r\n " + strings.Repeat("a", 70) + "    b\r\n"},
		{"Subject", strings.Repeat("a", 75) + "    b", "Subject:\r\n " + strings.Repeat("a", 75) + "\r\n    b\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			got := fold(tc.name, tc.value)
			if got != tc.want {
				t.Errorf("fold = %q, want %q", got, tc.want)
			}
			if unfolded := strings.ReplaceAll(strings.TrimSuffix(got, "\r\n"), "\r\n", ""); unfolded != tc.name+": "+tc.value {
				t.Errorf("unfolds to %q", unfolded)
			}
		})
	}
}

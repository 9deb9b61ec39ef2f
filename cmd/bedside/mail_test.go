package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/bedside-health/bedside/calendar"
)

// received is one message an SMTP server took.
type received struct {
	from string
	to   []string
	data []byte
}

// inbox is a real SMTP server (go-smtp) that hands each message it
// receives to a channel.
type inbox struct{ got chan received }

func (b *inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{inbox: b}, nil }

type session struct {
	inbox *inbox
	msg   received
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.inbox.got <- s.msg
	return nil
}
func (s *session) Reset()        { s.msg = received{} }
func (s *session) Logout() error { return nil }

func startInbox(t *testing.T) (addr string, got chan received) {
	t.Helper()
	b := &inbox{got: make(chan received, 16)}
	srv := smtp.NewServer(b)
	srv.Domain = "mail.clinic.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), b.got
}

// calendarPart finds the text/calendar alternative of a message.
func calendarPart(t *testing.T, raw []byte) (method string, ics []byte, text string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(ct string, body io.Reader)
	walk = func(ct string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var r io.Reader = p
				if p.Header.Get("Content-Transfer-Encoding") == "base64" {
					r = base64.NewDecoder(base64.StdEncoding, p)
				}
				walk(p.Header.Get("Content-Type"), r)
			}
		}
		b, _ := io.ReadAll(body)
		switch {
		case mt == "text/calendar" && ics == nil:
			method, ics = params["method"], b
		case mt == "text/plain" && text == "":
			text = string(b) // quoted-printable is decoded by multipart
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Body)
	return method, ics, text
}

// TestInvitesOverSMTP books, moves and cancels a visit through the running
// server and reads what a real SMTP server received: three messages about
// one calendar event, each at the right time.
func TestInvitesOverSMTP(t *testing.T) {
	smtpAddr, got := startInbox(t)
	ts := startServer(t, map[string]string{
		"BEDSIDE_SMTP_URL":    "smtp://" + smtpAddr + "?tls=none&from=visits@clinic.test",
		"BEDSIDE_CLINIC_NAME": "Riverside Clinic",
	})
	next := func(what string) (string, *calendar.Event, string, received) {
		t.Helper()
		select {
		case m := <-got:
			method, ics, text := calendarPart(t, m.data)
			ev, err := calendar.Decode(ics)
			if err != nil {
				t.Fatalf("%s: calendar: %v\n%s", what, err, ics)
			}
			return method, &ev, text, m
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no mail arrived", what)
		}
		panic("unreachable")
	}

	link := bookFirstFree(t, ts)
	method, ev, text, m := next("invite")
	if m.from != "visits@clinic.test" || len(m.to) != 1 || m.to[0] != "maria.silva@demo.bedside.test" {
		t.Fatalf("envelope from %q to %v", m.from, m.to)
	}
	if method != "REQUEST" || ev.Method != calendar.MethodRequest || ev.Sequence != 0 || ev.JoinURL != link || !strings.Contains(text, link) {
		t.Fatalf("invite: method %s, event %+v, link %s", method, ev, link)
	}
	// The visit page states the same instant the calendar carries.
	c := client(t)
	signIn(t, c, ts.URL, "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test"))
	apptURL := ts.URL + "/appointments/" + strings.TrimPrefix(strings.SplitN(ev.UID, "@", 2)[0], "visit-")
	_, page := get(t, c, apptURL)
	london, _ := time.LoadLocation("Europe/London")
	if want := ev.Start.In(london).Format("Mon 2 Jan 2006, 15:04"); !strings.Contains(page, want) {
		t.Fatalf("visit page does not show %s (the calendar's start in the scheduler's zone)", want)
	}
	// Maria lives in Lisbon: the text gives her own time.
	lisbon, _ := time.LoadLocation("Europe/Lisbon")
	if want := ev.Start.In(lisbon).Format("15:04") + " (Europe/Lisbon)"; !strings.Contains(text, want) {
		t.Errorf("invite text lacks %q:\n%s", want, text)
	}

	// Move it a day later.
	newStart := ev.Start.Add(24 * time.Hour)
	resp, err := c.PostForm(apptURL+"/reschedule", map[string][]string{"start": {newStart.Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reschedule: %d", resp.StatusCode)
	}
	_, up, _, _ := next("update")
	if up.UID != ev.UID || up.Sequence != 1 || !up.Start.Equal(newStart) || up.JoinURL == link {
		t.Fatalf("update: %+v", up)
	}
	resp, err = c.PostForm(apptURL+"/cancel", map[string][]string{"reason": {"clinic closed"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	method, cancel, text, _ := next("cancellation")
	if method != "CANCEL" || cancel.UID != ev.UID || cancel.Sequence != 2 || cancel.Status != "CANCELLED" || strings.Contains(text, "clinic closed") {
		t.Fatalf("cancellation: method %s %+v", method, cancel)
	}
	// The outbox page lists all three as sent. The server marks a message
	// sent just after the SMTP server took it, so poll the page briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, outbox := get(t, c, ts.URL+"/outbox")
		n := strings.Count(outbox, "Sent ")
		if n == 3 {
			break
		}
		if n > 3 || time.Now().After(deadline) {
			t.Fatalf("outbox shows %d sent messages, want 3", n)
		}
		time.Sleep(50 * time.Millisecond) // polling the page, not standing in for a signal
	}
}

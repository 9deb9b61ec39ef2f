package calendar

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Method is the iTIP method (RFC 5546) of an invitation: what the receiving
// calendar should do with the event.
type Method string

const (
	// MethodRequest invites the attendee to a new event or updates an event
	// the attendee already has (same UID, higher SEQUENCE).
	MethodRequest Method = "REQUEST"
	// MethodCancel removes an event the attendee already has.
	MethodCancel Method = "CANCEL"
)

// Values of Event.Status.
const (
	// StatusConfirmed is the status of a booked visit; use it with MethodRequest.
	StatusConfirmed = "CONFIRMED"
	// StatusCancelled is the status of a called-off visit; use it with MethodCancel.
	StatusCancelled = "CANCELLED"
)

// ErrInvalidEvent is wrapped by the errors Encode and Decode return for an
// event that breaks a rule of this package or of RFC 5545.
var ErrInvalidEvent = errors.New("invalid event")

// Person is the organizer or the attendee of an event.
type Person struct {
	// Name is the display name (the CN parameter); it may be empty.
	// A double quote cannot be written in a parameter value, so Encode
	// replaces each one with an apostrophe.
	Name string
	// Email is the person's address, written as a mailto: URI; it is required.
	Email string
}

// Event is one appointment as an iCalendar invitation carries it.
type Event struct {
	// UID identifies the event across its REQUESTs and its CANCEL; it must
	// stay the same for the life of the appointment.
	UID string
	// Sequence is the revision: 0 when created, one more at each change.
	Sequence int
	// Method is MethodRequest or MethodCancel.
	Method Method
	// Start and End bound the visit; End must be after Start. They are
	// written in UTC to the second.
	Start, End time.Time
	// Stamp is the DTSTAMP: when this revision of the invitation was made.
	Stamp time.Time
	// Summary is the title calendars show; it may be empty.
	Summary string
	// Description is free text, newlines allowed; it may be empty.
	Description string
	// JoinURL is the http or https address of the video visit, written as URL
	// and as an RFC 7986 CONFERENCE property; it may be empty.
	JoinURL string
	// Organizer is the clinic or physician sending the invitation.
	Organizer Person
	// Attendee is the person invited.
	Attendee Person
	// Status is StatusConfirmed with MethodRequest, StatusCancelled with
	// MethodCancel.
	Status string
}

// normalize returns e as Encode writes it: times in UTC truncated to the
// second, and double quotes in names replaced, since they cannot be written.
func normalize(e Event) Event {
	e.Start = e.Start.UTC().Truncate(time.Second)
	e.End = e.End.UTC().Truncate(time.Second)
	e.Stamp = e.Stamp.UTC().Truncate(time.Second)
	e.Organizer.Name = strings.ReplaceAll(e.Organizer.Name, `"`, "'")
	e.Attendee.Name = strings.ReplaceAll(e.Attendee.Name, `"`, "'")
	return e
}

// validate checks a normalized event.
func validate(e Event) error {
	if strings.TrimSpace(e.UID) == "" {
		return invalid("uid is empty")
	}
	if err := checkText("uid", e.UID, false); err != nil {
		return err
	}
	if e.Sequence < 0 {
		return invalid("sequence %d is negative", e.Sequence)
	}
	switch e.Method {
	case MethodRequest:
		if e.Status != StatusConfirmed {
			return invalid("status of a REQUEST must be %s, not %q (send a cancellation with MethodCancel)", StatusConfirmed, e.Status)
		}
	case MethodCancel:
		if e.Status != StatusCancelled {
			return invalid("status of a CANCEL must be %s, not %q", StatusCancelled, e.Status)
		}
	default:
		return invalid("method %q is neither REQUEST nor CANCEL", e.Method)
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"start", e.Start}, {"end", e.End}, {"stamp", e.Stamp}} {
		if t.t.IsZero() {
			return invalid("%s time is zero", t.name)
		}
		if y := t.t.Year(); y < 1 || y > 9999 {
			return invalid("%s year %d is outside 1 to 9999", t.name, y)
		}
	}
	if !e.End.After(e.Start) {
		return invalid("end %s is not after start %s", e.End.Format(time.RFC3339), e.Start.Format(time.RFC3339))
	}
	if err := checkText("summary", e.Summary, true); err != nil {
		return err
	}
	if err := checkText("description", e.Description, true); err != nil {
		return err
	}
	if e.JoinURL != "" {
		if err := checkURL(e.JoinURL); err != nil {
			return err
		}
	}
	if err := checkPerson("organizer", e.Organizer); err != nil {
		return err
	}
	return checkPerson("attendee", e.Attendee)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// checkText reports whether s can be written as an RFC 5545 TEXT value:
// valid UTF-8 without control characters other than tab and, when
// newlines is set, line feed.
func checkText(field, s string, newlines bool) error {
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		switch {
		case r == '\t':
		case r == '\n' && newlines:
		case r == '\n' || r == '\r':
			return invalid("%s contains a line break", field)
		case r < 0x20 || r == 0x7f:
			return invalid("%s contains control character %U", field, r)
		}
	}
	return nil
}

func checkPerson(role string, p Person) error {
	if p.Email == "" {
		return invalid("%s email is empty", role)
	}
	if err := checkEmail(p.Email); err != nil {
		return invalid("%s email %q: %s", role, p.Email, err)
	}
	if err := checkText(role+" name", p.Name, false); err != nil {
		return err
	}
	if strings.Contains(p.Name, `"`) {
		return invalid("%s name contains a double quote", role)
	}
	return nil
}

// checkEmail accepts the plain ASCII addresses of real use: a dot-atom local
// part (RFC 5322 atext) and a domain of letters, digits and hyphens.
func checkEmail(s string) error {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return errors.New("no @")
	}
	if len(s) > 254 {
		return errors.New("longer than 254 characters")
	}
	if local == "" || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return errors.New("bad local part")
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !isAlnum(c) && c != '.' && !strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", rune(c)) {
			return fmt.Errorf("character %q not allowed in local part", c)
		}
	}
	if domain == "" {
		return errors.New("empty domain")
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("bad domain")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return fmt.Errorf("character %q not allowed in domain", c)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// checkURL accepts an absolute http or https URL of printable ASCII.
func checkURL(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return invalid("join url contains byte %#x; percent-encode it", s[i])
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return invalid("join url: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return invalid("join url scheme %q is neither https nor http", u.Scheme)
	}
	if u.Host == "" {
		return invalid("join url has no host")
	}
	return nil
}

package calendar

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// stamp is the fixed DTSTAMP of the test invitations.
var stamp = time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

// visit is a made-up video visit; it carries no health information.
func visit() Event {
	return Event{
		UID:         "visit-7f3c2a9e@bedside.example",
		Sequence:    0,
		Method:      MethodRequest,
		Start:       time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC),
		End:         time.Date(2026, 11, 25, 14, 30, 0, 0, time.UTC),
		Stamp:       stamp,
		Summary:     "Video visit with Dr Ada Okafor",
		Description: "Your video visit with Dr Ada Okafor, Bedside Clinic.\nJoin a few minutes early from a phone or computer; the link opens in your browser, no app needed.",
		JoinURL:     "https://bedside.example/visits/7f3c2a9e/join",
		Organizer:   Person{Name: "Bedside Clinic: Dr Ada Okafor", Email: "visits@clinic.example"},
		Attendee:    Person{Name: "Sam Rivera", Email: "sam.rivera@example.com"},
		Status:      StatusConfirmed,
	}
}

// goldenCases are the three invitations in the life of one visit.
func goldenCases() []struct {
	file string
	ev   Event
} {
	create := visit()

	reschedule := visit()
	reschedule.Sequence = 1
	reschedule.Stamp = stamp.Add(24 * time.Hour)
	cet := time.FixedZone("CET", 60*60)
	reschedule.Start = time.Date(2026, 11, 26, 16, 0, 0, 0, cet) // 15:00 UTC
	reschedule.End = time.Date(2026, 11, 26, 16, 30, 0, 0, cet)

	cancel := reschedule
	cancel.Sequence = 2
	cancel.Method = MethodCancel
	cancel.Status = StatusCancelled
	cancel.Stamp = stamp.Add(48 * time.Hour)
	cancel.Summary = "Cancelled: Video visit with Dr Ada Okafor"
	cancel.Description = "This video visit has been cancelled. Book a new time at https://bedside.example."
	cancel.JoinURL = ""

	return []struct {
		file string
		ev   Event
	}{
		{"create.ics", create},
		{"reschedule.ics", reschedule},
		{"cancel.ics", cancel},
	}
}

func TestEncodeGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Encode(tc.ev)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Encode differs from %s (run go test -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
			}

			dec, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode(%s): %v", path, err)
			}
			if wantEv := normalize(tc.ev); dec != wantEv {
				t.Errorf("Decode(%s):\n got %+v\nwant %+v", path, dec, wantEv)
			}
		})
	}
}

// TestGoldenShape checks the properties a calendar client relies on, in the
// committed files themselves.
func TestGoldenShape(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"create.ics", []string{
			"METHOD:REQUEST", "SEQUENCE:0", "STATUS:CONFIRMED", "UID:visit-7f3c2a9e@bedside.example",
			"DTSTAMP:20261120T093000Z", "DTSTART:20261125T140000Z", "DTEND:20261125T143000Z",
			"SUMMARY:Video visit with Dr Ada Okafor",
			`ORGANIZER;CN="Bedside Clinic: Dr Ada Okafor":mailto:visits@clinic.example`,
			"ATTENDEE;CN=Sam Rivera;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:sam.rivera@example.com",
			"URL:https://bedside.example/visits/7f3c2a9e/join",
			"CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL=Join the video visit:https://bedside.example/visits/7f3c2a9e/join",
		}},
		{"reschedule.ics", []string{
			"METHOD:REQUEST", "SEQUENCE:1", "STATUS:CONFIRMED", "UID:visit-7f3c2a9e@bedside.example",
			"DTSTAMP:20261121T093000Z", "DTSTART:20261126T150000Z", "DTEND:20261126T153000Z",
		}},
		{"cancel.ics", []string{
			"METHOD:CANCEL", "SEQUENCE:2", "STATUS:CANCELLED", "UID:visit-7f3c2a9e@bedside.example",
			"DTSTART:20261126T150000Z", "DTEND:20261126T153000Z",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(data, []byte("\r\n")) {
				t.Error("file does not end in CRLF")
			}
			for i, c := range data {
				if c == '\n' && (i == 0 || data[i-1] != '\r') {
					t.Fatalf("bare LF at byte %d", i)
				}
				if c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
					t.Fatalf("bare CR at byte %d", i)
				}
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(data), "\r\n"), "\r\n") {
				if len(line) > maxLine {
					t.Errorf("line of %d octets: %q", len(line), line)
				}
			}
			lines, err := unfold(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.Contains(lines, w) {
					t.Errorf("missing line %q", w)
				}
			}
		})
	}
}

func TestFolding(t *testing.T) {
	// 200 characters, many of them several octets long.
	var runes []rune
	for _, r := range []rune("Zoë’s visit — 日本語のテキスト 🙂🎉 résumé ") {
		runes = append(runes, r)
	}
	var desc []rune
	for len(desc) < 200 {
		desc = append(desc, runes[len(desc)%len(runes)])
	}
	long := string(desc)
	if n := utf8.RuneCountInString(long); n != 200 {
		t.Fatalf("test description has %d characters", n)
	}

	tests := []struct {
		name string
		line string
	}{
		{"74 octets", strings.Repeat("a", 74)},
		{"75 octets", strings.Repeat("a", 75)},
		{"76 octets", strings.Repeat("a", 76)},
		{"3 full lines", strings.Repeat("b", 75+74+74)},
		{"4-octet rune across the limit", strings.Repeat("a", 73) + "🙂🙂"},
		{"2-octet runes only", strings.Repeat("é", 120)},
		{"3-octet runes only", strings.Repeat("語", 90)},
		{"200 mixed characters", "DESCRIPTION:" + escapeText(long)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeFolded(&b, tc.line)
			out := b.String()
			if !strings.HasSuffix(out, "\r\n") {
				t.Fatalf("output %q does not end in CRLF", out)
			}
			phys := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
			for i, p := range phys {
				if len(p) > maxLine {
					t.Errorf("line %d has %d octets", i, len(p))
				}
				if !utf8.ValidString(p) {
					t.Errorf("line %d splits a character: %q", i, p)
				}
				if i > 0 && !strings.HasPrefix(p, " ") {
					t.Errorf("continuation line %d = %q does not start with a space", i, p)
				}
				if i < len(phys)-1 && len(p) < maxLine-3 {
					t.Errorf("line %d folded early at %d octets", i, len(p))
				}
			}
			lines, err := unfold(b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 1 || lines[0] != tc.line {
				t.Errorf("unfolded to %q, want %q", lines, tc.line)
			}
		})
	}

	t.Run("through Encode and Decode", func(t *testing.T) {
		e := visit()
		e.Description = long
		data, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Split(string(data), "\r\n") {
			if len(p) > maxLine {
				t.Errorf("line has %d octets: %q", len(p), p)
			}
		}
		if !bytes.Contains(data, []byte("\r\n ")) {
			t.Error("description was not folded")
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Description != long {
			t.Errorf("description round trip:\n got %q\nwant %q", got.Description, long)
		}
	})
}

func TestEscaping(t *testing.T) {
	text := []struct {
		in, want string
	}{
		{"plain", "plain"},
		{`back\slash`, `back\\slash`},
		{"semi;colon", `semi\;colon`},
		{"com,ma", `com\,ma`},
		{"two\nlines", `two\nlines`},
		{"colon: stays", "colon: stays"},
		{`all \;,` + "\n", `all \\\;\,\n`},
		{`\n literal`, `\\n literal`},
	}
	for _, tc := range text {
		t.Run("text "+tc.in, func(t *testing.T) {
			if got := escapeText(tc.in); got != tc.want {
				t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.want)
			}
			back, err := unescapeText(tc.want)
			if err != nil || back != tc.in {
				t.Errorf("unescapeText(%q) = %q, %v; want %q", tc.want, back, err, tc.in)
			}
		})
	}

	params := []struct {
		in, want string
	}{
		{"Sam Rivera", "Sam Rivera"},
		{"Okafor, Ada", `"Okafor, Ada"`},
		{"Clinic: Ada", `"Clinic: Ada"`},
		{"A;B", `"A;B"`},
		{`Ada "Doc" Okafor`, "Ada 'Doc' Okafor"},
		{`"Okafor, Ada"`, `"'Okafor, Ada'"`},
		{"Zoë Müller", "Zoë Müller"},
	}
	for _, tc := range params {
		t.Run("param "+tc.in, func(t *testing.T) {
			if got := paramValue(tc.in); got != tc.want {
				t.Errorf("paramValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	t.Run("in an encoded event", func(t *testing.T) {
		e := visit()
		e.Summary = `Visit; room A, floor 2 \ east`
		e.Attendee.Name = `Rivera, Sam "Sammy"`
		data, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, want := range []string{
			"SUMMARY:Visit\\; room A\\, floor 2 \\\\ east\r\n",
			`ATTENDEE;CN="Rivera, Sam 'Sammy'";ROLE=REQ-PARTICIPANT`,
			"DESCRIPTION:Your video visit with Dr Ada Okafor\\, Bedside Clinic.\\nJoin",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("missing %q in\n%s", want, s)
			}
		}
	})
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Event)
	}{
		{"as is", func(*Event) {}},
		{"no optional fields", func(e *Event) {
			e.Summary, e.Description, e.JoinURL = "", "", ""
			e.Organizer.Name, e.Attendee.Name = "", ""
		}},
		{"sub-second times in another zone", func(e *Event) {
			tz := time.FixedZone("X", -7*3600-30*60)
			e.Start = time.Date(2026, 3, 1, 8, 15, 59, 999_999_999, tz)
			e.End = e.Start.Add(20 * time.Minute)
			e.Stamp = time.Date(2026, 2, 28, 23, 59, 59, 1, tz)
		}},
		{"large sequence", func(e *Event) { e.Sequence = 1 << 40 }},
		{"text needing escapes", func(e *Event) {
			e.Summary = "a;b,c\\d\ne\tf"
			e.Description = "\n\n;;,,\\\\ trailing \\"
			e.UID = `uid;with,specials\`
		}},
		{"names needing quotes", func(e *Event) {
			e.Organizer.Name = "Okafor, Ada: MD; clinic"
			e.Attendee.Name = "  spaced  "
		}},
		{"emails needing percent-encoding", func(e *Event) {
			e.Attendee.Email = "a/b=c?d#e%f&g^h`i{j|k}l@example.com"
			e.Organizer.Email = "o'neil+visits@clinic.example"
		}},
		{"join url with query", func(e *Event) {
			e.JoinURL = "http://localhost:8080/visits/1/join?token=a,b;c&x=%20"
		}},
		{"cancel", func(e *Event) {
			e.Method, e.Status = MethodCancel, StatusCancelled
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := visit()
			tc.edit(&e)
			data, err := Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, data)
			}
			if want := normalize(e); got != want {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if !got.Start.Equal(e.Start.Truncate(time.Second)) || got.Start.Location() != time.UTC {
				t.Errorf("Start = %v, want %v in UTC", got.Start, e.Start.Truncate(time.Second))
			}
		})
	}
}

func TestEncodeInvalid(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Event)
		want string
	}{
		{"empty uid", func(e *Event) { e.UID = "" }, "uid is empty"},
		{"blank uid", func(e *Event) { e.UID = " \t" }, "uid is empty"},
		{"uid with newline", func(e *Event) { e.UID = "a\nb" }, "uid contains a line break"},
		{"negative sequence", func(e *Event) { e.Sequence = -1 }, "sequence -1 is negative"},
		{"no method", func(e *Event) { e.Method = "" }, "method"},
		{"unknown method", func(e *Event) { e.Method = "PUBLISH" }, "method"},
		{"end equals start", func(e *Event) { e.End = e.Start }, "not after start"},
		{"end before start", func(e *Event) { e.End = e.Start.Add(-time.Hour) }, "not after start"},
		{"end after start by less than a second", func(e *Event) { e.End = e.Start.Add(time.Millisecond) }, "not after start"},
		{"zero stamp", func(e *Event) { e.Stamp = time.Time{} }, "stamp time is zero"},
		{"zero start", func(e *Event) { e.Start = time.Time{} }, "start time is zero"},
		{"year 10000", func(e *Event) { e.End = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "end year 10000"},
		{"no organizer email", func(e *Event) { e.Organizer.Email = "" }, "organizer email is empty"},
		{"no attendee email", func(e *Event) { e.Attendee.Email = "" }, "attendee email is empty"},
		{"attendee email without @", func(e *Event) { e.Attendee.Email = "sam.example.com" }, "no @"},
		{"attendee email with space", func(e *Event) { e.Attendee.Email = "sam rivera@example.com" }, "not allowed"},
		{"email with CRLF", func(e *Event) { e.Attendee.Email = "sam@example.com\r\nX:y" }, "not allowed"},
		{"name with newline", func(e *Event) { e.Attendee.Name = "Sam\nRivera" }, "attendee name contains a line break"},
		{"cancel with confirmed status", func(e *Event) { e.Method = MethodCancel }, "status of a CANCEL must be CANCELLED"},
		{"cancel with empty status", func(e *Event) { e.Method, e.Status = MethodCancel, "" }, "status of a CANCEL must be CANCELLED"},
		{"request with cancelled status", func(e *Event) { e.Status = StatusCancelled }, "status of a REQUEST must be CONFIRMED"},
		{"request with empty status", func(e *Event) { e.Status = "" }, "status of a REQUEST must be CONFIRMED"},
		{"summary with control character", func(e *Event) { e.Summary = "a\x00b" }, "summary contains control character"},
		{"description with CR", func(e *Event) { e.Description = "a\r\nb" }, "description contains a line break"},
		{"invalid UTF-8", func(e *Event) { e.Description = "a\xffb" }, "not valid UTF-8"},
		{"join url not http", func(e *Event) { e.JoinURL = "javascript:alert(1)" }, "scheme"},
		{"join url relative", func(e *Event) { e.JoinURL = "/visits/1" }, "scheme"},
		{"join url with space", func(e *Event) { e.JoinURL = "https://bedside.example/a b" }, "percent-encode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := visit()
			tc.edit(&e)
			data, err := Encode(e)
			if err == nil {
				t.Fatalf("Encode succeeded:\n%s", data)
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	good, err := Encode(visit())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(good); err != nil {
		t.Fatalf("Decode of the base case: %v", err)
	}
	replace := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("test bug: %q not in the encoded event", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "CRLF"},
		{"LF line endings", bytes.ReplaceAll(good, []byte("\r\n"), []byte("\n")), "CRLF"},
		{"bare LF inside", replace("VERSION:2.0\r\n", "VERSION:2.0\n"), "bare CR or LF"},
		{"blank line", replace("VERSION:2.0\r\n", "VERSION:2.0\r\n\r\n"), "empty"},
		{"no final CRLF", good[:len(good)-2], "CRLF"},
		{"leading continuation", append([]byte(" x\r\n"), good...), "continuation"},
		{"wrong version", replace("VERSION:2.0", "VERSION:1.0"), "VERSION"},
		{"wrong prodid", replace("PRODID:-//Bedside//Bedside//EN", "PRODID:-//Other//EN"), "PRODID"},
		{"lower-case name", replace("UID:", "uid:"), "property name"},
		{"unknown property", replace("STATUS:", "X-FOO:1\r\nSTATUS:"), "X-FOO"},
		{"missing END", good[:bytes.LastIndex(good, []byte("END:VCALENDAR"))], "missing END"},
		{"trailing line", append(append([]byte{}, good...), "X:1\r\n"...), "after END:VCALENDAR"},
		{"bad escape", replace("Okafor\\, Bedside", "Okafor\\x Bedside"), "bad escape"},
		{"unescaped comma", replace("Okafor\\, Bedside", "Okafor, Bedside"), "unescaped"},
		{"trailing backslash", replace("SUMMARY:Video visit with Dr Ada Okafor", "SUMMARY:Video visit\\"), "trailing backslash"},
		{"local time", replace("DTSTART:20261125T140000Z", "DTSTART:20261125T140000"), "UTC date-time"},
		{"impossible date", replace("DTSTART:20261125T140000Z", "DTSTART:20260230T140000Z"), "DTSTART"},
		{"end before start", replace("DTEND:20261125T143000Z", "DTEND:20261125T133000Z"), "not after start"},
		{"sequence not a number", replace("SEQUENCE:0", "SEQUENCE:zero"), "not an integer"},
		{"negative sequence", replace("SEQUENCE:0", "SEQUENCE:-1"), "negative"},
		{"extra parameter", replace("ATTENDEE;CN=Sam Rivera;", "ATTENDEE;CN=Sam Rivera;X=1;"), "parameters"},
		{"unterminated quote", replace(`ORGANIZER;CN="Bedside Clinic: Dr Ada Okafor"`, `ORGANIZER;CN="Bedside Clinic: Dr Ada Okafor`), "unterminated"},
		{"not mailto", replace("mailto:sam.rivera", "http:sam.rivera"), "mailto"},
		{"bad percent-encoding", replace("mailto:sam.rivera", "mailto:sam%zzrivera"), "escape"},
		{"conference differs", replace("\r\n de.example/visits/7f3c2a9e/join\r\nEND:VEVENT", "\r\n de.example/visits/other\r\nEND:VEVENT"), "differs"},
		{"url without conference", replace("CONFERENCE;", "X-CONFERENCE;"), "CONFERENCE"},
		{"request cancelled", replace("STATUS:CONFIRMED", "STATUS:CANCELLED"), "status of a REQUEST"},
		{"invalid UTF-8", replace("Sam Rivera", "Sam \xffRivera"), "UTF-8"},
		{"control character", replace("SUMMARY:Video", "SUMMARY:Vid\x01eo"), "control character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode(tc.data)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", e)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if e != (Event{}) {
				t.Errorf("Decode returned %+v with its error", e)
			}
		})
	}
}

func TestDecodeAcceptsOtherFolding(t *testing.T) {
	good, err := Encode(visit())
	if err != nil {
		t.Fatal(err)
	}
	// Fold every line after its third octet, with a tab, the way another
	// producer might; the event must not change.
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimSuffix(string(good), "\r\n"), "\r\n") {
		if strings.HasPrefix(l, " ") {
			b.WriteString(l + "\r\n")
			continue
		}
		b.WriteString(l[:3] + "\r\n\t" + l[3:] + "\r\n")
	}
	got, err := Decode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := normalize(visit()); got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

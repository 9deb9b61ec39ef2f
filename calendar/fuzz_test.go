package calendar

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives a trip through Encode: Encode(Decode(x)) succeeds, decodes to the
// same event, and is itself a fixed point of Decode then Encode.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.ics"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		out, err := Encode(e)
		if err != nil {
			t.Fatalf("Encode rejects what Decode accepted: %v\nevent %+v", err, e)
		}
		e2, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode(Encode(e)): %v\n%s", err, out)
		}
		if e2 != e {
			t.Fatalf("Decode(Encode(e)) changed the event:\n got %+v\nwant %+v", e2, e)
		}
		out2, err := Encode(e2)
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("Encode is not stable: %v\n%q\n%q", err, out2, out)
		}
	})
}

// FuzzEncode checks the round-trip property from the other side: for any
// event Encode accepts, Decode gives back the same fields to the second.
func FuzzEncode(f *testing.F) {
	e := visit()
	f.Add(e.UID, int64(0), e.Start.Unix(), int64(1800), e.Stamp.UnixNano(), e.Summary, e.Description, e.JoinURL,
		e.Organizer.Name, e.Organizer.Email, e.Attendee.Name, e.Attendee.Email, false)
	f.Add("u;,\\\n", int64(7), int64(-62135596800), int64(1), int64(1), "a\tb", "Zoë 🙂\n;", "http://h/?a=b,c",
		`Ok, "Ada"`, "a/b=c@x", "", "z@y", true)
	f.Fuzz(func(t *testing.T, uid string, seq, start, dur, stampNano int64, summary, desc, join, oName, oEmail, aName, aEmail string, cancel bool) {
		e := Event{
			UID:         uid,
			Sequence:    int(seq),
			Method:      MethodRequest,
			Start:       time.Unix(start, 0),
			End:         time.Unix(start, 0).Add(time.Duration(dur) * time.Second),
			Stamp:       time.Unix(0, stampNano),
			Summary:     summary,
			Description: desc,
			JoinURL:     join,
			Organizer:   Person{Name: oName, Email: oEmail},
			Attendee:    Person{Name: aName, Email: aEmail},
			Status:      StatusConfirmed,
		}
		if cancel {
			e.Method, e.Status = MethodCancel, StatusCancelled
		}
		data, err := Encode(e)
		if err != nil {
			return
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("Decode(Encode(e)): %v\n%s", err, data)
		}
		if want := normalize(e); got != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

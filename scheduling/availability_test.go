package scheduling

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	loc := mustZone(t, "Europe/London")
	at := func(day, h int) time.Time { return time.Date(2026, 6, day, h, 0, 0, 0, loc) }
	valid := func() Availability {
		return Availability{
			Zone:       loc,
			SlotLength: 30 * time.Minute,
			Weekly:     []WeeklyHours{{Weekday: time.Sunday, Start: 0, End: 24 * 60}, {Weekday: time.Saturday, Start: 9 * 60, End: 9*60 + 1}},
			Overrides:  []Override{{Date: Date{2026, time.February, 28}}, {Date: Date{2028, time.February, 29}, Blocks: []Block{{0, 1440}}}},
			TimeOff:    []Interval{{at(1, 9), at(1, 10)}, {at(1, 9), at(3, 9)}},
			Buffer:     0, MinNotice: 0, Horizon: 0,
			VisitTypes: []VisitType{{Code: "a", Duration: 0}, {Code: "b", Duration: 90 * time.Minute}},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("a valid availability: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Availability)
		want []string // each in the error
	}{
		{"no zone", func(a *Availability) { a.Zone = nil }, []string{"no time zone"}},
		{"no slot length", func(a *Availability) { a.SlotLength = 0 }, []string{"slot length 0s is not a whole positive number of minutes"}},
		{"negative slot length", func(a *Availability) { a.SlotLength = -30 * time.Minute }, []string{"slot length -30m0s"}},
		{"slot length in seconds", func(a *Availability) { a.SlotLength = 90 * time.Second }, []string{"slot length 1m30s"}},
		{"weekday out of range", func(a *Availability) { a.Weekly[1].Weekday = 7 }, []string{"weekly hours 2: weekday 7 is not 0 (Sunday) to 6 (Saturday)"}},
		{"negative weekday", func(a *Availability) { a.Weekly[0].Weekday = -1 }, []string{"weekly hours 1: weekday -1"}},
		{"weekly start before midnight", func(a *Availability) { a.Weekly[0].Start = -30 }, []string{"weekly hours 1 (Sunday): start -30 and end 1440 must be minutes from 0 to 1440"}},
		{"weekly end after midnight", func(a *Availability) { a.Weekly[1].End = 1441 }, []string{"weekly hours 2 (Saturday): start 540 and end 1441"}},
		{"weekly start after end", func(a *Availability) { a.Weekly[1].Start = 10 * 60 }, []string{"weekly hours 2 (Saturday): start 10:00 is not before end 09:01"}},
		{"weekly empty block", func(a *Availability) { a.Weekly[1].End = 9 * 60 }, []string{"start 09:00 is not before end 09:00"}},
		{"override block out of range", func(a *Availability) { a.Overrides[1].Blocks = []Block{{60, 120}, {1400, 1500}} },
			[]string{"override for 2028-02-29, block 2: start 1400 and end 1500"}},
		{"override block backwards", func(a *Availability) { a.Overrides[1].Blocks = []Block{{120, 60}} },
			[]string{"override for 2028-02-29, block 1: start 02:00 is not before end 01:00"}},
		{"two overrides for a date", func(a *Availability) {
			a.Overrides = append(a.Overrides, Override{Date: Date{2026, time.February, 28}, Blocks: []Block{{60, 120}}})
		}, []string{"two overrides for 2026-02-28"}},
		{"an override for no date", func(a *Availability) { a.Overrides[0].Date = Date{2026, time.February, 29} },
			[]string{"override for 2026-02-29: there is no such date"}},
		{"negative buffer", func(a *Availability) { a.Buffer = -time.Minute }, []string{"buffer -1m0s is negative"}},
		{"negative notice", func(a *Availability) { a.MinNotice = -time.Hour }, []string{"minimum notice -1h0m0s is negative"}},
		{"negative horizon", func(a *Availability) { a.Horizon = -time.Hour }, []string{"horizon -1h0m0s is negative"}},
		{"visit type with no code", func(a *Availability) { a.VisitTypes[1].Code = ""; a.VisitTypes[1].Name = "Long" },
			[]string{`visit type 2 ("Long") has no code`}},
		{"two visit types with one code", func(a *Availability) { a.VisitTypes[1].Code = "a" }, []string{`two visit types with code "a"`}},
		{"visit type in seconds", func(a *Availability) { a.VisitTypes[1].Duration = 45*time.Minute + time.Second },
			[]string{`visit type "b": duration 45m1s is not a whole number of minutes`}},
		{"negative visit type", func(a *Availability) { a.VisitTypes[0].Duration = -time.Hour }, []string{`visit type "a": duration -1h0m0s`}},
		{"time off ending at its start", func(a *Availability) { a.TimeOff[1].End = a.TimeOff[1].Start },
			[]string{"time off 2 (2026-06-01T09:00:00+01:00 to 2026-06-01T09:00:00+01:00): the end is not after the start"}},
		{"time off backwards", func(a *Availability) { a.TimeOff[0].Start = at(2, 9) }, []string{"time off 1 ("}},
		{"everything at once", func(a *Availability) {
			a.Zone = nil
			a.SlotLength = 0
			a.Buffer = -1
			a.VisitTypes[1].Code = "a"
		}, []string{"no time zone", "slot length 0s", "buffer -1ns is negative", `two visit types with code "a"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := valid()
			c.edit(&a)
			err := a.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines != len(c.want) {
				t.Errorf("%d problems reported, want %d: %q", lines, len(c.want), err)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Date
		ok   bool
	}{
		{"2026-03-08", Date{2026, time.March, 8}, true},
		{"2028-02-29", Date{2028, time.February, 29}, true},
		{"2026-02-29", Date{}, false},
		{"2026-3-8", Date{}, false},
		{"", Date{}, false},
	} {
		got, err := ParseDate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDate(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

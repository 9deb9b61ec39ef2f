package scheduling

import (
	"errors"
	"fmt"
	"time"
)

// ErrSlotTaken reports that the requested time overlaps an existing booking.
var ErrSlotTaken = errors.New("that time was just taken")

// ErrOutsideHours reports that a requested time is not one of the physician's slots.
var ErrOutsideHours = errors.New("that time is outside the physician's hours")

// ErrTooSoon reports a booking inside the physician's minimum notice.
var ErrTooSoon = errors.New("that time is too soon to book")

// ErrTooFar reports a booking beyond the physician's booking horizon.
var ErrTooFar = errors.New("that time is too far ahead to book")

// ErrTimeOff reports a booking during the physician's time off.
var ErrTimeOff = errors.New("the physician is away at that time")

// ErrTransition reports a status change the appointment lifecycle forbids.
var ErrTransition = errors.New("status change not allowed")

// Status is an appointment's FHIR R4 status.
type Status string

// The appointment statuses used by Bedside, named as in FHIR R4.
const (
	StatusBooked         Status = "booked"
	StatusArrived        Status = "arrived"
	StatusFulfilled      Status = "fulfilled"
	StatusCancelled      Status = "cancelled"
	StatusNoShow         Status = "noshow"
	StatusEnteredInError Status = "entered-in-error"
)

// Valid reports whether s is one of the statuses Bedside uses.
func (s Status) Valid() bool {
	switch s {
	case StatusBooked, StatusArrived, StatusFulfilled, StatusCancelled, StatusNoShow, StatusEnteredInError:
		return true
	}
	return false
}

// Live reports whether an appointment in status s holds its time, so that
// no other appointment of the physician may overlap it.
func (s Status) Live() bool {
	return s != StatusCancelled && s != StatusEnteredInError
}

// next lists the lifecycle: booked, then arrived (checked in) or a no-show
// or a cancellation; arrived, then fulfilled. Any record can be marked
// entered-in-error; a no-show who turns up late can still be checked in.
var next = map[Status][]Status{
	StatusBooked:    {StatusArrived, StatusCancelled, StatusNoShow, StatusFulfilled, StatusEnteredInError},
	StatusArrived:   {StatusFulfilled, StatusCancelled, StatusEnteredInError},
	StatusNoShow:    {StatusArrived, StatusEnteredInError},
	StatusFulfilled: {StatusEnteredInError},
	StatusCancelled: {StatusEnteredInError},
}

// CanBecome reports whether an appointment in status s may change to t.
func (s Status) CanBecome(t Status) bool {
	for _, n := range next[s] {
		if n == t {
			return true
		}
	}
	return false
}

// CheckTransition returns an error wrapping ErrTransition if s may not
// change to t.
func (s Status) CheckTransition(t Status) error {
	if !t.Valid() {
		return fmt.Errorf("%w: unknown status %q", ErrTransition, t)
	}
	if !s.CanBecome(t) {
		return fmt.Errorf("%w: %s to %s", ErrTransition, s, t)
	}
	return nil
}

// Appointment is a booked visit between one physician and one patient.
// Start and End are instants (stored in UTC). Sequence counts the changes
// a patient's calendar must follow (it is the invite's SEQUENCE): 0 when
// booked, then one more on every reschedule and on cancellation.
type Appointment struct {
	ID          int64
	PhysicianID int64
	PatientID   int64
	Start       time.Time
	End         time.Time
	// Zone is the IANA name of the zone the visit was booked in: the
	// physician's at booking or at the last move. Start and End are UTC
	// instants; Zone says which wall clock they were chosen on.
	Zone         string
	Status       Status
	VisitType    string // a VisitType code, "" for the physician's default
	CancelReason string
	Sequence     int
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// NoShowDue reports whether a booked appointment has passed its start by
// grace with nobody checked in.
func NoShowDue(a Appointment, grace time.Duration, now time.Time) bool {
	return a.Status == StatusBooked && !now.Before(a.Start.Add(grace))
}

// WeeklyHours is one recurring block of working time on a weekday, in the
// physician's own time zone. Start and End are minutes after local midnight.
type WeeklyHours struct {
	Weekday time.Weekday
	Start   int
	End     int
}

// Date is a calendar date with no time and no zone, such as a day off.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads a date written 2006-01-02.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// DateOf is the date t shows in its own location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// String writes d as 2006-01-02.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Block is a span of working time on one local date, in minutes after local
// midnight, [Start, End).
type Block struct {
	Start int
	End   int
}

// Override replaces a physician's weekly hours on one local date: Blocks
// are that day's hours, and no Blocks at all means a day off.
type Override struct {
	Date   Date
	Blocks []Block
}

// VisitType is a kind of visit a physician offers, with its length.
type VisitType struct {
	Code     string // short stable name, e.g. "follow-up"
	Name     string // what people read, e.g. "Follow-up visit"
	Duration time.Duration
}

// Availability is what slot generation needs to know about a physician.
//
// Visits start on a grid, every SlotLength from the start of each block of
// working time, on the wall clock of Zone. A visit lasts its VisitType's
// Duration (SlotLength when it has none) and may start at every grid point
// from which it ends within its block, so the slots of a visit longer than
// SlotLength overlap: they are alternatives, of which one is booked.
// Buffer is time kept free before and after every visit; MinNotice is how
// soon from now a visit may start; Horizon is how far ahead it may start
// (0: no limit). TimeOff spans, as instants, are never offered.
type Availability struct {
	Zone       *time.Location
	Weekly     []WeeklyHours
	SlotLength time.Duration
	Overrides  []Override
	TimeOff    []Interval
	Buffer     time.Duration
	MinNotice  time.Duration
	Horizon    time.Duration
	VisitTypes []VisitType
}

// VisitLength is how long a visit of the given type lasts: its Duration,
// or SlotLength for "" or an unknown code (ok false for an unknown code).
func (a Availability) VisitLength(code string) (time.Duration, bool) {
	if code == "" {
		return a.SlotLength, true
	}
	for _, v := range a.VisitTypes {
		if v.Code == code {
			if v.Duration > 0 {
				return v.Duration, true
			}
			return a.SlotLength, true
		}
	}
	return a.SlotLength, false
}

// Interval is a half-open span of time [Start, End).
type Interval struct {
	Start time.Time
	End   time.Time
}

// Overlaps reports whether two half-open intervals share any instant.
func (i Interval) Overlaps(o Interval) bool {
	return i.Start.Before(o.End) && o.Start.Before(i.End)
}

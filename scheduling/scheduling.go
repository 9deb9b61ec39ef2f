package scheduling

import (
	"errors"
	"time"
)

// ErrSlotTaken reports that the requested time overlaps an existing booking.
var ErrSlotTaken = errors.New("that time was just taken")

// ErrOutsideHours reports that a requested time is not one of the physician's slots.
var ErrOutsideHours = errors.New("that time is outside the physician's hours")

// Status is an appointment's FHIR R4 status.
type Status string

// The appointment statuses used by Bedside, named as in FHIR R4.
const (
	StatusBooked    Status = "booked"
	StatusArrived   Status = "arrived"
	StatusFulfilled Status = "fulfilled"
	StatusCancelled Status = "cancelled"
	StatusNoShow    Status = "noshow"
)

// Appointment is a booked visit between one physician and one patient.
// Start and End are instants (stored in UTC).
type Appointment struct {
	ID          int64
	PhysicianID int64
	PatientID   int64
	Start       time.Time
	End         time.Time
	Status      Status
	CreatedAt   time.Time
}

// WeeklyHours is one recurring block of working time on a weekday, in the
// physician's own time zone. Start and End are minutes after local midnight.
type WeeklyHours struct {
	Weekday time.Weekday
	Start   int
	End     int
}

// Availability is what slot generation needs to know about a physician.
type Availability struct {
	Zone       *time.Location
	Weekly     []WeeklyHours
	SlotLength time.Duration
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

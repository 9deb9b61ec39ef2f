package store

import (
	"context"
	"errors"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// ErrNotFound reports that no record matches.
var ErrNotFound = errors.New("not found")

// ErrConflict reports a uniqueness violation, such as an email already in use.
var ErrConflict = errors.New("already exists")

// Role is what a user is allowed to do.
type Role string

// The roles of Bedside users.
const (
	RoleScheduler Role = "scheduler"
	RolePhysician Role = "physician"
	RolePatient   Role = "patient"
	RoleAdmin     Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleScheduler, RolePhysician, RolePatient, RoleAdmin:
		return true
	}
	return false
}

// User is a person who signs in or is seen by a physician.
// PasswordHash is empty for users who cannot sign in with a password
// (patients who only use join links).
type User struct {
	ID           int64
	Email        string
	Name         string
	Role         Role
	TimeZone     string // IANA name, e.g. "Europe/London"
	PasswordHash string
	CreatedAt    time.Time
}

// Session is a server-side browser session. TokenHash is the SHA-256 of the
// cookie value. A session opened from a join link is bound to one appointment
// (AppointmentID != 0) and grants nothing else.
type Session struct {
	TokenHash     []byte
	UserID        int64
	AppointmentID int64
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// Credential kinds stored hashed in the credentials table.
const (
	CredentialAPI    = "api"    // bearer token for FHIR, WHIP/WHEP
	CredentialDevice = "device" // token a device or hub streams with
	CredentialJoin   = "join"   // a patient's single-visit join link
)

// Credential is a bearer secret, stored as the SHA-256 of its value.
// Device credentials carry a name and the patient they post for; join
// credentials carry the appointment they open.
type Credential struct {
	ID            int64
	Kind          string
	TokenHash     []byte
	UserID        int64 // owner: the API user, the device's patient, the joining patient
	AppointmentID int64 // join links only
	Name          string
	CreatedAt     time.Time
	ExpiresAt     time.Time // zero means no expiry
	RevokedAt     time.Time // zero means not revoked
	LastSeq       int64     // devices only: highest contiguous envelope sequence handled
}

// Observation is one stored numeric measurement for a patient.
type Observation struct {
	ID          int64
	PatientID   int64
	DeviceID    int64  // credential ID of the device, 0 if entered
	Seq         int64  // the device's envelope sequence, 0 if none
	Code        string // LOINC
	Value       float64
	Unit        string // UCUM
	EffectiveAt time.Time
	ReceivedAt  time.Time
}

// Users stores people.
type Users interface {
	CreateUser(ctx context.Context, u User) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context, role Role) ([]User, error)
	SetPassword(ctx context.Context, userID int64, hash string) error
}

// Sessions stores browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	SessionByHash(ctx context.Context, hash []byte) (Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
}

// Credentials stores API, device and join tokens.
type Credentials interface {
	CreateCredential(ctx context.Context, c Credential) (Credential, error)
	CredentialByHash(ctx context.Context, kind string, hash []byte) (Credential, error)
	ListCredentials(ctx context.Context, kind string, userID int64) ([]Credential, error)
	RevokeCredential(ctx context.Context, id int64, at time.Time) error
}

// Schedules stores physicians' weekly hours.
type Schedules interface {
	SetWeeklyHours(ctx context.Context, physicianID int64, hours []scheduling.WeeklyHours, slot time.Duration) error
	Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error)
}

// Appointments stores visits. BookAppointment must refuse, atomically, an
// appointment that overlaps another non-cancelled one of the same physician,
// returning an error wrapping scheduling.ErrSlotTaken.
type Appointments interface {
	BookAppointment(ctx context.Context, a scheduling.Appointment) (scheduling.Appointment, error)
	AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error)
	// AppointmentsBetween lists non-cancelled appointments whose start is in [from, to);
	// physicianID or patientID of 0 means any.
	AppointmentsBetween(ctx context.Context, physicianID, patientID int64, from, to time.Time) ([]scheduling.Appointment, error)
	SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status) error
}

// Observations stores device measurements. AppendObservations stores a batch
// from one device in one transaction and advances the device's LastSeq to
// max(LastSeq, lastSeq); an observation whose (DeviceID, Seq, Code) is already
// stored is skipped, never stored twice (Code is in the key because one
// envelope may carry a panel: systolic and diastolic share a Seq). An
// observation with DeviceID 0 is taken to come from deviceID; a deviceID of 0
// means readings entered by hand; an unknown device gives ErrNotFound and
// stores nothing.
type Observations interface {
	AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []Observation) error
	ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]Observation, error)
}

// Store is everything Bedside persists. Times come back in UTC, the same
// instants as were stored to at least the millisecond. Lookups of a missing
// record, and writes referring to one, give errors wrapping ErrNotFound.
// storetest.Run checks an implementation against this contract.
type Store interface {
	Users
	Sessions
	Credentials
	Schedules
	Appointments
	Observations
	Ping(ctx context.Context) error
	Close() error
}

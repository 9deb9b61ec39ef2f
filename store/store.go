package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// ErrNotFound reports that no record matches.
var ErrNotFound = errors.New("not found")

// ErrConflict reports a uniqueness violation, such as an email already in use.
var ErrConflict = errors.New("already exists")

// ErrLimit is returned when storing a record would exceed a limit on how
// many may be live at once (a visit's guest links).
var ErrLimit = errors.New("limit reached")

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
	BirthDate    string // patients: YYYY-MM-DD, "" if unknown
	Phone        string // contact number as entered, "" if none
	TOTPSecret   []byte // the second factor's secret, sealed with the server key; nil if none
	CreatedAt    time.Time
	// DeactivatedAt is when an admin deactivated the account (it may not
	// sign in, and nothing it held still works); zero while it is active.
	DeactivatedAt time.Time
}

// Active reports whether the account may be used.
func (u User) Active() bool { return u.DeactivatedAt.IsZero() }

// Deactivation counts what deactivating an account ended.
type Deactivation struct {
	Sessions    int // browser sessions deleted
	Credentials int // API tokens, device tokens and join links revoked
	// GuestLinks are the live guest links the user had issued, now
	// revoked: a guest answers to whoever issued their link.
	GuestLinks []RevokedGuestLink
}

// RevokedGuestLink names a guest link a deactivation revoked, for the
// audit trail.
type RevokedGuestLink struct {
	ID            int64
	AppointmentID int64
	PatientID     int64 // the visit's patient
}

// Session is a server-side browser session. TokenHash is the SHA-256 of the
// cookie value. A session opened from a join link is bound to one appointment
// (AppointmentID > 0) and grants nothing else; AppointmentID -1 marks a
// sign-in waiting for its second factor, which grants nothing at all.
type Session struct {
	TokenHash     []byte
	UserID        int64
	AppointmentID int64
	CreatedAt     time.Time
	ExpiresAt     time.Time // the absolute timeout
	LastSeenAt    time.Time // last use, for the idle timeout; CreatedAt until touched
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
	// Browser marks the device a patient's browser streams as (relaying
	// the devices it pairs during a visit), which has no usable token: the
	// patient's visit session streams as it. Devices only.
	Browser bool
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
	// Flags are what the device reported about this measurement ("cuff
	// too loose", "poor skin contact"): it is kept, and shown as doubtful.
	Flags []string
	// Relayed is, for a reading that DeviceID relayed (the patient's
	// browser, a hub) from a Bluetooth device it paired, that device's
	// RelayedDevice ID; 0 when DeviceID measured it itself, or relayed it
	// before relayed devices were kept.
	Relayed int64
}

// RelayedDevice is a Bluetooth device a relay (the patient's browser, a
// hub) paired and stored readings of, kept once per relay and name so
// that each of its readings names the device that measured it.
type RelayedDevice struct {
	ID        int64
	RelayID   int64  // the relay's device credential
	PatientID int64  // the relay's patient
	Name      string // as the relay names it
	Relay     string // the relay's name
	CreatedAt time.Time
}

// Device connection event kinds.
const (
	DeviceConnected    = "connected"
	DeviceDisconnected = "disconnected"
)

// DeviceEvent is a device connecting to or disconnecting from Bedside,
// kept for the patient's vitals timeline.
type DeviceEvent struct {
	ID        int64
	PatientID int64
	DeviceID  int64  // the device's credential
	Device    string // its name at the time
	Kind      string // DeviceConnected or DeviceDisconnected
	At        time.Time
	// Relay is, for a Bluetooth device that DeviceID relays (the
	// patient's browser, a hub), the relay's name at the time; "" for the
	// socket's own event, when Device is the credential's name.
	Relay string
}

// UserQuery selects users. Empty fields match everything. Text matches,
// without regard to case, any part of the name or email; each word of Text
// must match. Results are ordered by name then ID; Limit 0 means 100.
type UserQuery struct {
	Role      Role
	Text      string
	Email     string // exact, without regard to case
	BirthDate string // YYYY-MM-DD
	Status    string // UserActive or UserDeactivated; "" for both
	Limit     int
	Offset    int
}

// Account states a UserQuery may select.
const (
	UserActive      = "active"
	UserDeactivated = "deactivated"
)

// Users stores people.
type Users interface {
	CreateUser(ctx context.Context, u User) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context, role Role) ([]User, error)
	// SearchUsers returns one page of the users q selects and how many it
	// selects in all.
	SearchUsers(ctx context.Context, q UserQuery) (page []User, total int, err error)
	// UpdateUser replaces a user's name, time zone, birth date and phone.
	UpdateUser(ctx context.Context, u User) (User, error)
	SetPassword(ctx context.Context, userID int64, hash string) error
	// SetTOTPSecret sets (nil: removes) a user's sealed second-factor secret.
	SetTOTPSecret(ctx context.Context, userID int64, sealed []byte) error
	// DeactivateUser marks a user deactivated at at (zero: now) and, in
	// the same transaction, ends every session of theirs and revokes every
	// credential of theirs not yet revoked (API tokens, device tokens, join
	// links). A user already deactivated keeps the first time; what was
	// issued since is ended all the same. A missing user is ErrNotFound.
	DeactivateUser(ctx context.Context, userID int64, at time.Time) (Deactivation, error)
	// ReactivateUser lets a deactivated user sign in again. What the
	// deactivation ended stays ended: sessions and tokens are new ones.
	ReactivateUser(ctx context.Context, userID int64) error
	// UseTOTPStep records that a code of the given second-factor time step
	// was accepted; a step at or before the last one recorded gives
	// ErrConflict, so each code works only once.
	UseTOTPStep(ctx context.Context, userID, step int64) error
}

// Sessions stores browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	SessionByHash(ctx context.Context, hash []byte) (Session, error)
	// TouchSession sets a session's LastSeenAt; a missing one is ErrNotFound.
	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteUserSessions ends every session of a user (sign out
	// everywhere) and says how many there were.
	DeleteUserSessions(ctx context.Context, userID int64) (int, error)
}

// Throttle counts failed sign-ins, per key (an account or an address), so
// that every node sees the same count.
type Throttle interface {
	// RecordLoginFailure records a failure for key at at and returns how
	// many failures key has had at or after since, this one included.
	RecordLoginFailure(ctx context.Context, key string, at, since time.Time) (int, error)
	// LoginFailures counts key's failures at or after since.
	LoginFailures(ctx context.Context, key string, since time.Time) (int, error)
	// ClearLoginFailures forgets key's failures (after a good sign-in).
	ClearLoginFailures(ctx context.Context, key string) error
}

// AuditEvent is one access to patient data (or a sign-in), as the audit
// trail keeps it: who, what, whose, which record, when, from where, and how
// it ended. It never holds vital values or notes. Seq, PrevHash and Hash
// are set by the store: each event's Hash covers its fields and the
// previous event's Hash, so a changed, removed or inserted row breaks the
// chain (audit.Verify finds where).
type AuditEvent struct {
	Seq       int64
	At        time.Time
	ActorID   int64  // 0 for an anonymous caller or Bedside itself
	ActorRole string // a Role, or "device", "anonymous", "system"
	Action    string // read, search, create, update, delete, export, login, ...
	PatientID int64  // whose data, 0 if none
	Resource  string // e.g. "Appointment/12", "Patient/4", "vitals/live"
	Address   string // the client's address
	Outcome   string // success, denied or failed
	PrevHash  []byte
	Hash      []byte
}

// AuditQuery selects audit events; zero fields match everything. From and
// To bound At, [From, To). Results are in chain order (Seq); Limit 0 means 100.
type AuditQuery struct {
	ActorID   int64
	PatientID int64
	Action    string
	From, To  time.Time
	AfterSeq  int64 // only events with Seq > AfterSeq
	Limit     int
	Offset    int
}

// Audit stores the append-only audit trail.
type Audit interface {
	// AppendAudit adds e at the end of the chain, setting Seq, PrevHash and
	// Hash (with audit.Hash) in one transaction, so concurrent appends
	// chain one after another.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// AuditEvents returns one page of the events q selects and how many it
	// selects in all.
	AuditEvents(ctx context.Context, q AuditQuery) (page []AuditEvent, total int, err error)
}

// Credentials stores API, device and join tokens.
type Credentials interface {
	CreateCredential(ctx context.Context, c Credential) (Credential, error)
	CredentialByHash(ctx context.Context, kind string, hash []byte) (Credential, error)
	ListCredentials(ctx context.Context, kind string, userID int64) ([]Credential, error)
	// JoinCredentials lists an appointment's join links, oldest first.
	JoinCredentials(ctx context.Context, appointmentID int64) ([]Credential, error)
	RevokeCredential(ctx context.Context, id int64, at time.Time) error
	// CredentialByID finds a credential of a kind by its ID.
	CredentialByID(ctx context.Context, kind string, id int64) (Credential, error)
}

// Guest roles: who a guest link invites to a visit's call.
const (
	GuestInterpreter = "interpreter"
	GuestFamily      = "family"
	GuestPhysician   = "physician" // a second physician
)

// ValidGuestRole reports whether role is a guest role.
func ValidGuestRole(role string) bool {
	return role == GuestInterpreter || role == GuestFamily || role == GuestPhysician
}

// GuestLink is a guest's single-visit link to a visit's call, stored as the
// SHA-256 of its token. It opens the call only: nothing of the patient's
// record.
type GuestLink struct {
	ID            int64
	AppointmentID int64
	TokenHash     []byte
	Role          string // a guest role
	Name          string // shown to the others in the call
	IssuedBy      int64  // the user who issued it
	CreatedAt     time.Time
	ExpiresAt     time.Time
	RevokedAt     time.Time // zero means not revoked
}

// GuestLinks stores guest links.
type GuestLinks interface {
	// CreateGuestLink stores g and returns it with its ID; a token hash
	// already stored gives ErrConflict, an unknown appointment or issuer
	// ErrNotFound.
	CreateGuestLink(ctx context.Context, g GuestLink) (GuestLink, error)
	// CreateGuestLinkLimited is CreateGuestLink unless g's appointment
	// already has max live links (not revoked, expiring after
	// g.CreatedAt): then it stores nothing and returns ErrLimit. The count
	// and the insert are one step, so concurrent calls never exceed max.
	CreateGuestLinkLimited(ctx context.Context, g GuestLink, max int) (GuestLink, error)
	// GuestLinkByHash finds a link by its token's hash, revoked and expired
	// ones included: validity is the caller's to check.
	GuestLinkByHash(ctx context.Context, hash []byte) (GuestLink, error)
	// GuestLinks lists an appointment's guest links, oldest first.
	GuestLinks(ctx context.Context, appointmentID int64) ([]GuestLink, error)
	// RevokeGuestLink marks a link revoked at at; revoking it again keeps
	// the first time. An unknown ID gives ErrNotFound.
	RevokeGuestLink(ctx context.Context, id int64, at time.Time) error
}

// Schedules stores physicians' availability.
type Schedules interface {
	// SetAvailability replaces everything about a physician's availability
	// but its Zone, which is the physician's TimeZone. It refuses what
	// a.Validate refuses (the zone aside).
	SetAvailability(ctx context.Context, physicianID int64, a scheduling.Availability) error
	// Availability loads it, with Zone; a physician whose availability was
	// never set gives ErrNotFound.
	Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error)
}

// Change says who changes an appointment, when and why, for its history.
type Change struct {
	ActorID int64 // the user making the change, 0 for Bedside itself
	At      time.Time
	Reason  string // why, e.g. a cancellation reason; may be empty
}

// Appointment event kinds in an appointment's history.
const (
	EventBooked      = "booked"
	EventRescheduled = "rescheduled"
	EventStatus      = "status"
)

// AppointmentEvent is one entry in an appointment's history.
type AppointmentEvent struct {
	ID            int64
	AppointmentID int64
	Kind          string
	ActorID       int64
	At            time.Time
	FromStatus    scheduling.Status // status changes; "" for bookings
	ToStatus      scheduling.Status
	OldStart      time.Time // reschedules only
	OldEnd        time.Time
	NewStart      time.Time // bookings and reschedules
	NewEnd        time.Time
	Reason        string
}

// AppointmentQuery selects appointments. Zero fields match everything:
// From and To bound the start, [From, To); Statuses lists the statuses to
// include. Results are ordered by start then ID; Limit 0 means 100.
type AppointmentQuery struct {
	PhysicianID int64
	PatientID   int64
	From, To    time.Time
	Statuses    []scheduling.Status
	Limit       int
	Offset      int
}

// Appointments stores visits. No write may leave two live appointments
// (scheduling.Status.Live) of one physician overlapping: such a write is
// refused, atomically and by the database itself, with an error wrapping
// scheduling.ErrSlotTaken.
type Appointments interface {
	// BookAppointment stores a new appointment (status booked if empty) and
	// records its booking in the history.
	BookAppointment(ctx context.Context, a scheduling.Appointment, c Change) (scheduling.Appointment, error)
	AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error)
	// AppointmentsBetween lists live appointments whose start is in [from, to);
	// physicianID or patientID of 0 means any.
	AppointmentsBetween(ctx context.Context, physicianID, patientID int64, from, to time.Time) ([]scheduling.Appointment, error)
	// SearchAppointments returns one page of the appointments q selects and
	// how many it selects in all.
	SearchAppointments(ctx context.Context, q AppointmentQuery) (page []scheduling.Appointment, total int, err error)
	// RescheduleAppointment moves a booked appointment to [start, end),
	// increments its Sequence, revokes its join links (ending the sessions
	// they opened) and records the move.
	// An appointment that is not booked gives scheduling.ErrTransition.
	RescheduleAppointment(ctx context.Context, id int64, start, end time.Time, c Change) (scheduling.Appointment, error)
	// SetAppointmentStatus changes the status as the lifecycle allows
	// (else scheduling.ErrTransition) and records it. Cancelling stores
	// c.Reason as the CancelReason, increments Sequence and revokes the
	// join links, ending their sessions; so does entered-in-error.
	SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status, c Change) (scheduling.Appointment, error)
	// AppointmentHistory lists an appointment's events, oldest first.
	AppointmentHistory(ctx context.Context, id int64) ([]AppointmentEvent, error)
}

// Message is an email to send, kept in the outbox until it is delivered.
// Key is unique: enqueueing a message whose Key is already in the outbox
// does nothing, which is how a reminder is sent once however often, and on
// however many restarts, it is enqueued.
type Message struct {
	ID            int64
	Key           string
	AppointmentID int64
	Kind          string // invite, update, cancel, reminder
	To            string
	ToName        string
	Subject       string
	Text          string
	Calendar      []byte // iCalendar attachment, nil if none
	Method        string // the calendar's METHOD
	CreatedAt     time.Time
	NextAttemptAt time.Time
	Attempts      int
	LastError     string
	SentAt        time.Time // zero until delivered
	Via           string    // smtp, or outbox when no mail server is configured
	Failed        bool      // given up: a permanent error or too many attempts
}

// Outbox stores messages to send.
type Outbox interface {
	// EnqueueMessage stores m unless its Key is taken; created reports
	// whether it was stored, and the message returned is the stored one.
	EnqueueMessage(ctx context.Context, m Message) (msg Message, created bool, err error)
	// ClaimMessages takes up to limit undelivered, not failed messages whose
	// next attempt is due at now, oldest first, and moves their next attempt
	// to now+lease in the same statement, so that no other node (or later
	// call) takes them while this one delivers them. A message whose sender
	// crashed is taken again when the lease runs out.
	ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Message, error)
	// MarkMessageSent records a delivery.
	MarkMessageSent(ctx context.Context, id int64, at time.Time, via string) error
	// MarkMessageFailed records a failed attempt: retry at retryAt, or
	// never when permanent.
	MarkMessageFailed(ctx context.Context, id int64, reason string, retryAt time.Time, permanent bool) error
	// MessageByID finds one message.
	MessageByID(ctx context.Context, id int64) (Message, error)
	// ListMessages lists messages newest first; appointmentID 0 means all.
	ListMessages(ctx context.Context, appointmentID int64, limit, offset int) ([]Message, error)
}

// Observations stores device measurements.
//
// AppendObservations stores a batch from one device in one transaction and
// advances the device's LastSeq to max(LastSeq, lastSeq). A device numbers
// its messages (docs/protocol.md), and each reading carries its message's
// number as Seq (a blood-pressure panel's two readings share one). The
// device's LastSeq is the duplicate check: a numbered reading (Seq > 0) is
// stored only if its Seq is above the LastSeq the call finds in its own
// transaction, and once if the call repeats it (same Seq and Code);
// otherwise it is a resend and skipped. That stores every reading exactly
// once provided each call carries every valid reading of the sequences
// after the LastSeq its caller last read or set, up to lastSeq, as the
// device ingest does (vitals.Ingester): the call then finds LastSeq where
// its caller left it, or moved on by another connection of the same
// device that stored those same sequences. So a numbered reading must be
// of deviceID (its DeviceID 0 or deviceID, and deviceID not 0) with Seq
// at most lastSeq; a call with one that is not fails with ErrSequence.
// Readings with Seq 0 (posted one at a time, entered by hand) are never
// de-duplicated. An observation with DeviceID 0 is taken to come from
// deviceID; a deviceID of 0 means readings entered by hand, and no
// sequence moves. A relayed reading's Relayed must be a RelayedDevice
// of its DeviceID. An unknown device gives ErrNotFound. A call that fails
// stores nothing. Concurrent appends (from many devices) are committed
// together in one transaction (group commit); each returns once its own
// batch is stored, and one call's failure never fails another's. A call
// that returns nil keeps nothing of obs: the caller may reuse it.
type Observations interface {
	AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []Observation) error
	ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]Observation, error)
	// AppendDeviceEvent stores a device connecting or disconnecting; an
	// unknown device gives ErrNotFound.
	AppendDeviceEvent(ctx context.Context, e DeviceEvent) (DeviceEvent, error)
	// DeviceEventsBetween lists a patient's device events in [from, to),
	// oldest first.
	DeviceEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]DeviceEvent, error)
	// ObservationByID finds one stored observation.
	ObservationByID(ctx context.Context, id int64) (Observation, error)
	// SearchObservations returns one page of the observations q selects
	// and how many it selects in all.
	SearchObservations(ctx context.Context, q ObservationQuery) (page []Observation, total int, err error)
	// SampleObservations thins a patient's observations effective in
	// [from, to) for display: for each code, the latest (by EffectiveAt,
	// then ID) of each span of every (counted from the Unix epoch), and
	// every observation that carries flags, ordered by EffectiveAt then ID. total
	// is how many observations the range holds in all.
	SampleObservations(ctx context.Context, patientID int64, from, to time.Time, every time.Duration) (sample []Observation, total int, err error)
	// RelayedDevice finds the Bluetooth device that relay relayID names
	// name, and keeps it if it is new: its ID is what the readings it
	// measured carry as Relayed. Names are compared exactly (the device
	// ingest checks and trims them). An unknown relay (not a device
	// credential) gives ErrNotFound, an empty name an error, and a new
	// name of a relay that already has MaxRelayedDevices ErrTooManyRelayed.
	RelayedDevice(ctx context.Context, relayID int64, name string) (RelayedDevice, error)
	// RelayedDeviceByID finds one relayed device.
	RelayedDeviceByID(ctx context.Context, id int64) (RelayedDevice, error)
	// RelayedDevices lists the devices a patient's relays relayed,
	// oldest first.
	RelayedDevices(ctx context.Context, patientID int64) ([]RelayedDevice, error)
}

// MaxRelayedDevices is how many Bluetooth devices one relay may have kept
// (a browser or a home hub pairs a few): a relay that invents names
// cannot fill the store with them.
const MaxRelayedDevices = 64

// ErrTooManyRelayed reports a new relayed device of a relay that already
// has MaxRelayedDevices.
var ErrTooManyRelayed = errors.New("the relay has as many relayed devices as it may keep")

// ErrSequence reports a numbered reading that AppendObservations cannot
// place in its device's sequence (see Observations).
var ErrSequence = errors.New("reading outside its device's sequence")

// CheckSequenced checks that every numbered reading (Seq > 0) of an
// AppendObservations call is of deviceID and at most lastSeq, as the
// duplicate check by the device's LastSeq needs (see Observations).
func CheckSequenced(deviceID, lastSeq int64, obs []Observation) error {
	for _, o := range obs {
		switch {
		case o.Seq <= 0:
		case deviceID == 0:
			return fmt.Errorf("reading %s seq %d: a numbered reading needs its device: %w", o.Code, o.Seq, ErrSequence)
		case o.DeviceID != 0 && o.DeviceID != deviceID:
			return fmt.Errorf("reading %s seq %d of device %d in a call of device %d: %w", o.Code, o.Seq, o.DeviceID, deviceID, ErrSequence)
		case o.Seq > lastSeq:
			return fmt.Errorf("reading %s seq %d beyond the call's last seq %d: %w", o.Code, o.Seq, lastSeq, ErrSequence)
		}
	}
	return nil
}

// LOINC codes of the two readings of a blood-pressure panel, which the
// store keeps as two rows sharing patient, device, sequence and time.
const (
	CodeSystolic  = "8480-6"
	CodeDiastolic = "8462-4"
)

// ObservationQuery selects observations; zero fields match everything.
// From and To bound EffectiveAt, [From, To); Codes lists the LOINC codes
// to include. With Panels, a diastolic reading that has a systolic one of
// the same patient, device, sequence and time is left out: the two are
// one blood-pressure panel, found (and counted) through its systolic
// reading. Relayed selects the readings of one relayed device (its
// RelayedDevice ID), or with NotRelayed those that name no relayed
// device: with DeviceID, those DeviceID measured itself (or relayed
// before relayed devices were kept). Results are ordered by EffectiveAt
// then ID; Limit 0 means 100.
type ObservationQuery struct {
	PatientID int64
	DeviceID  int64
	Relayed   int64
	Codes     []string
	From, To  time.Time
	Panels    bool
	Limit     int
	Offset    int
}

// NotRelayed is the ObservationQuery.Relayed of the readings that name
// no relayed device.
const NotRelayed = -1

// VisitNote is the physician's note on a held visit. It is patient data:
// never logged or audited by content.
type VisitNote struct {
	AppointmentID int64
	AuthorID      int64
	Text          string
	UpdatedAt     time.Time
}

// VisitNotes stores the notes of visits, one per visit.
type VisitNotes interface {
	// VisitNote finds a visit's note; a visit without one is ErrNotFound.
	VisitNote(ctx context.Context, appointmentID int64) (VisitNote, error)
	// SaveVisitNote creates or replaces a visit's note; an unknown
	// appointment or author is ErrNotFound.
	SaveVisitNote(ctx context.Context, n VisitNote) (VisitNote, error)
}

// NEWS2 input kinds (NEWS2Entry.Kind).
const (
	NEWS2Consciousness = "consciousness" // Text: an ACVPU level
	NEWS2Oxygen        = "oxygen"        // Text: air or oxygen
	NEWS2Scale2        = "scale2"        // Text: on or off
	NEWS2Value         = "value"         // Code and Value: a value measured by hand
)

// NEWS2Entry is a physician's input to a patient's NEWS2: what no device
// measures, or a value they measured themselves.
type NEWS2Entry struct {
	ID            int64
	PatientID     int64
	AppointmentID int64 // the visit it was entered in
	Kind          string
	Code          string  // NEWS2Value: LOINC
	Value         float64 // NEWS2Value: in the code's stored unit
	Text          string  // the other kinds
	By            int64   // the physician
	At            time.Time
}

// AlertThreshold is a physician's alert limits for one measurement of a
// patient: below Low or above High (either may be nil).
type AlertThreshold struct {
	PatientID int64
	Code      string
	Low       *float64
	High      *float64
	By        int64
	At        time.Time
}

// AlertEvent is a step in the life of a patient's alert, for the
// timeline: raised, cleared, acknowledged, or notice.
type AlertEvent struct {
	ID        int64
	PatientID int64
	AlertID   string // the monitor's id of the alert
	State     string
	Rule      string
	Severity  string
	Title     string // in words, without the patient's value
	Code      string
	By        string // acknowledged: who, as User/ID
	At        time.Time
}

// NEWS2Records keeps what a patient's NEWS2 monitor must not lose: the
// physicians' entries and thresholds, and the alert timeline. Writes for
// an unknown patient give ErrNotFound and store nothing.
type NEWS2Records interface {
	AppendNEWS2Entry(ctx context.Context, e NEWS2Entry) (NEWS2Entry, error)
	// NEWS2EntriesSince lists a patient's entries made at or after since,
	// oldest first.
	NEWS2EntriesSince(ctx context.Context, patientID int64, since time.Time) ([]NEWS2Entry, error)
	// SetAlertThresholds replaces all of a patient's thresholds with ts
	// (at most one per code), in one transaction.
	SetAlertThresholds(ctx context.Context, patientID int64, ts []AlertThreshold) error
	// AlertThresholds lists a patient's thresholds by code.
	AlertThresholds(ctx context.Context, patientID int64) ([]AlertThreshold, error)
	// AppendAlertEvents stores alert events of one patient, in one
	// transaction.
	AppendAlertEvents(ctx context.Context, patientID int64, evs []AlertEvent) error
	// AlertEventsBetween lists a patient's alert events in [from, to),
	// oldest first.
	AlertEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]AlertEvent, error)
}

// Store is everything Bedside persists. Times come back in UTC, the same
// instants as were stored to at least the millisecond. Lookups of a missing
// record, and writes referring to one, give errors wrapping ErrNotFound.
// storetest.Run checks an implementation against this contract.
type Store interface {
	Users
	Sessions
	Credentials
	GuestLinks
	Schedules
	Appointments
	Outbox
	Observations
	NEWS2Records
	VisitNotes
	Throttle
	Audit
	Ping(ctx context.Context) error
	Close() error
}

// JoinFlags is how both stores keep an observation's flags in one text
// column: one per line, "" for none. A flag never holds a newline.
func JoinFlags(flags []string) string {
	clean := make([]string, 0, len(flags))
	for _, f := range flags {
		if f = strings.TrimSpace(strings.ReplaceAll(f, "\n", " ")); f != "" {
			clean = append(clean, f)
		}
	}
	return strings.Join(clean, "\n")
}

// SplitFlags reads what JoinFlags wrote; nil for none.
func SplitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// VisitPeriod is when a held visit ran, read from its history: from the
// patient's arrival (the first change to arrived) to its end (the change
// to fulfilled). A visit marked fulfilled without an arrival starts at its
// booked start; end is zero while the visit is not fulfilled.
func VisitPeriod(a scheduling.Appointment, history []AppointmentEvent) (start, end time.Time) {
	for _, e := range history {
		if e.Kind != EventStatus {
			continue
		}
		switch e.ToStatus {
		case scheduling.StatusArrived:
			if start.IsZero() {
				start = e.At
			}
		case scheduling.StatusFulfilled:
			end = e.At
		}
	}
	if start.IsZero() || !end.IsZero() && end.Before(start) {
		start = a.Start
	}
	if a.Status != scheduling.StatusFulfilled {
		end = time.Time{}
	}
	return start, end
}

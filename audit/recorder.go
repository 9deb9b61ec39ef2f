package audit

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/store"
)

// Actions an event records. Others may be added: an action is a short
// lowercase word (letters and hyphens).
const (
	ActionRead   = "read"   // one record was shown
	ActionSearch = "search" // a record was among a search's results
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
	ActionExport = "export" // records left Bedside in bulk, e.g. the audit trail itself
	ActionLogin  = "login"
	// ActionDeactivate and ActionReactivate take an account's access away
	// and give it back.
	ActionDeactivate = "deactivate"
	ActionReactivate = "reactivate"
)

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied" // the actor may not do it (403 or a 404 that hides a record)
	OutcomeFailed  = "failed" // refused as invalid, or the server failed
)

// Actor roles besides the store.Role values.
const (
	RoleDevice    = "device"
	RoleAnonymous = "anonymous"
	RoleSystem    = "system"
)

// invalid replaces a field that Record refuses to store as it is.
const invalid = "invalid"

// recordTimeout bounds one append; it runs even if the request is gone.
const recordTimeout = 5 * time.Second

// Appender appends to the audit trail; store.Store satisfies it.
type Appender interface {
	AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// Recorder records events for the handlers that serve patient data. A nil
// *Recorder, or one without a Store, records nothing, so a handler may call
// it unconditionally.
//
// Record what was accessed, not what it holds: user and patient IDs and a
// resource reference ("Appointment/12", "Patient/4", "vitals/live"), never
// a vital value, a note, a cancellation reason, a name or search text. Record
// refuses fields that do not look like identifiers (see Record).
//
// Recording never fails a request: an event that cannot be stored is
// logged as an error, with its identifiers only.
type Recorder struct {
	Store Appender
	Log   *slog.Logger     // where failures are reported; slog.Default() if nil
	Now   func() time.Time // time.Now if nil
}

// Who is the actor of an event: a user (ID 0 for none), their role, and
// the client's address.
type Who struct {
	ID      int64
	Role    string // a store.Role, RoleDevice, RoleAnonymous or RoleSystem
	Address string
}

// User is u acting through the request r.
func User(u store.User, r *http.Request) Who {
	return Who{ID: u.ID, Role: string(u.Role), Address: Address(r)}
}

// Address is the client's address of r: the IP of r.RemoteAddr, without
// the port. Behind a reverse proxy this is the proxy's.
func Address(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// Ref is the resource reference of a record: Ref("Appointment", 12) is
// "Appointment/12".
func Ref(kind string, id int64) string { return kind + "/" + strconv.FormatInt(id, 10) }

// repeatedMark starts the last segment of a summary's resource.
const repeatedMark = "/repeated/"

// Repeated is the resource of an event that stands for n more attempts
// like one already recorded: Repeated("Observation", 56) is
// "Observation/repeated/56". Refusals that come in floods (a device with a
// bad token retrying) are recorded as their first event, then as one such
// summary per window, rather than a row each.
func Repeated(resource string, n int) string {
	return resource + repeatedMark + strconv.Itoa(n)
}

// RepeatCount reads a resource made by Repeated back: the resource of the
// first event and the count. A resource that is not a summary is itself,
// with n 0.
func RepeatCount(resource string) (first string, n int) {
	i := strings.LastIndex(resource, repeatedMark)
	if i < 0 {
		return resource, 0
	}
	n, err := strconv.Atoi(resource[i+len(repeatedMark):])
	if err != nil || n <= 0 {
		return resource, 0
	}
	return resource[:i], n
}

// Success records that w did action to resource, of patientID's data (0 if
// none), and it was done.
func (rec *Recorder) Success(ctx context.Context, w Who, action string, patientID int64, resource string) {
	rec.record(ctx, w, action, patientID, resource, OutcomeSuccess)
}

// Denied records that w tried to do action to resource and was not allowed.
func (rec *Recorder) Denied(ctx context.Context, w Who, action string, patientID int64, resource string) {
	rec.record(ctx, w, action, patientID, resource, OutcomeDenied)
}

// Failed records that w tried to do action to resource and it failed: it
// was invalid, or the server failed.
func (rec *Recorder) Failed(ctx context.Context, w Who, action string, patientID int64, resource string) {
	rec.record(ctx, w, action, patientID, resource, OutcomeFailed)
}

func (rec *Recorder) record(ctx context.Context, w Who, action string, patientID int64, resource, outcome string) {
	rec.Record(ctx, store.AuditEvent{ActorID: w.ID, ActorRole: w.Role, Action: action, PatientID: patientID,
		Resource: resource, Address: w.Address, Outcome: outcome})
}

// Record appends e to the audit trail, setting At to now if it is zero
// (the store sets Seq, PrevHash and Hash). It checks that the fields hold
// identifiers only, storing "invalid" in place of any that does not and
// logging which: ActorRole and Action are short lowercase words (an empty
// ActorRole of actor 0 is RoleAnonymous); Outcome is OutcomeSuccess,
// OutcomeDenied or OutcomeFailed; Resource is empty, or a type and up to
// four path segments of letters, digits, '.', '_' and '-', such as
// "Appointment/12" or "vitals/live", and a summary's "/repeated/N" after
// them (see Repeated) (an invalid Resource keeps its type if
// that is valid); Address is an IP address (a port is dropped).
//
// The append runs even if ctx is cancelled (a client that hung up was
// still served), for at most a few seconds. On failure Record logs an
// error naming the event's identifiers, never more; it does not fail.
func (rec *Recorder) Record(ctx context.Context, e store.AuditEvent) {
	if rec == nil || rec.Store == nil {
		return
	}
	log := rec.Log
	if log == nil {
		log = slog.Default()
	}
	if e.At.IsZero() {
		now := time.Now
		if rec.Now != nil {
			now = rec.Now
		}
		e.At = now()
	}
	if bad := clean(&e); len(bad) > 0 {
		log.ErrorContext(ctx, "audit event fields refused: pass identifiers only; stored as invalid",
			"fields", strings.Join(bad, ","), "action", e.Action, "actor", e.ActorID, "patient", e.PatientID)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if _, err := rec.Store.AppendAudit(ctx, e); err != nil {
		log.ErrorContext(ctx, "AUDIT EVENT NOT RECORDED: access to patient data went unrecorded",
			"actor", e.ActorID, "role", e.ActorRole, "action", e.Action, "patient", e.PatientID,
			"resource", e.Resource, "outcome", e.Outcome, "err", err)
	}
}

var (
	word     = regexp.MustCompile(`^[a-z][a-z-]{0,31}$`)
	resource = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,39}(/[A-Za-z0-9._-]{1,64}){0,4}(/repeated/[1-9][0-9]{0,9})?$`)
	kind     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,39}`)
)

// clean replaces the fields of e that are not identifiers and returns
// their names.
func clean(e *store.AuditEvent) (bad []string) {
	if e.ActorRole == "" && e.ActorID == 0 {
		e.ActorRole = RoleAnonymous
	}
	if !word.MatchString(e.ActorRole) {
		e.ActorRole, bad = invalid, append(bad, "actor role")
	}
	if !word.MatchString(e.Action) {
		e.Action, bad = invalid, append(bad, "action")
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeFailed:
	default:
		e.Outcome, bad = invalid, append(bad, "outcome")
	}
	if e.Resource != "" && !resource.MatchString(e.Resource) {
		k := kind.FindString(e.Resource)
		if k == "" || len(k) < len(e.Resource) && e.Resource[len(k)] != '/' {
			k = invalid
		}
		e.Resource, bad = k, append(bad, "resource")
	}
	if e.Address != "" {
		a, err := netip.ParseAddr(e.Address)
		if err != nil {
			if ap, perr := netip.ParseAddrPort(e.Address); perr == nil {
				a, err = ap.Addr(), nil
			}
		}
		if err != nil {
			e.Address, bad = invalid, append(bad, "address")
		} else {
			e.Address = a.Unmap().String()
		}
	}
	return bad
}

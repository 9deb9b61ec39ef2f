package fhir

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// Code systems of AuditEvent elements.
const (
	auditTypeSystem    = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	dicomSystem        = "http://dicom.nema.org/resources/ontology/DCM"
	interactionSystem  = "http://hl7.org/fhir/restful-interaction"
	entityTypeSystem   = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem   = "http://terminology.hl7.org/CodeSystem/object-role"
	sourceTypeSystem   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	auditActionSystem  = "urn:bedside:audit-action"
	roleSystem         = "urn:bedside:role"
	userSystem         = "urn:bedside:user"
	resourceNameSystem = "urn:bedside:resource"
)

// AuditEvent is one event of the audit trail as a FHIR R4 AuditEvent. Its
// id is the event's place in the chain (Seq).
type AuditEvent struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Type         Coding        `json:"type"`
	Subtype      []Coding      `json:"subtype,omitempty"`
	Action       string        `json:"action"`
	Recorded     string        `json:"recorded"`
	Outcome      string        `json:"outcome"`
	OutcomeDesc  string        `json:"outcomeDesc,omitempty"`
	Agent        []AuditAgent  `json:"agent"`
	Source       AuditSource   `json:"source"`
	Entity       []AuditEntity `json:"entity,omitempty"`
}

// AuditRef is a reference to a resource, or to something that is not
// one, by identifier.
type AuditRef struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// AuditAgent is who acted, in what role, from where.
type AuditAgent struct {
	Role      []CodeableConcept `json:"role,omitempty"`
	Who       AuditRef          `json:"who"`
	Requestor bool              `json:"requestor"`
	Network   *AuditNetwork     `json:"network,omitempty"`
}

// AuditNetwork is the address an agent acted from.
type AuditNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"` // 2: an IP address
}

// AuditSource is the system that recorded the event.
type AuditSource struct {
	Observer AuditRef `json:"observer"`
	Type     []Coding `json:"type,omitempty"`
}

// AuditEntity is a record the event was about.
type AuditEntity struct {
	What AuditRef `json:"what"`
	Type *Coding  `json:"type,omitempty"`
	Role *Coding  `json:"role,omitempty"`
}

var auditEventParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}: events about that patient's data."},
	{Name: "agent", Type: "reference", Doc: "Practitioner/{id}, Patient/{id} or a bare user id (any role): events of that user."},
	{Name: "date", Type: "date", Doc: "When recorded: a day or an instant, with prefix eq (default), ge, gt, le or lt; repeat to give a range; a date without a time is a UTC day.", Repeat: true},
	{Name: "action", Type: "token", Doc: "C, R, U, D or E, or a Bedside action: read, search, create, update, delete, export, login."},
}

// searchAuditEvents answers GET /AuditEvent: the audit trail, in the order
// it was recorded, to admins only. The export is itself recorded.
func (h *handler) searchAuditEvents(w http.ResponseWriter, r *http.Request, c *caller) (err error) {
	ctx := r.Context()
	var aq store.AuditQuery
	defer func() { h.record(r, c, audit.ActionExport, aq.PatientID, kindAuditEvent, err) }()
	if err := h.check(ctx, c, actRead, target{kind: kindAuditEvent}); err != nil {
		return err
	}
	q, err := parseQuery(kindAuditEvent, r.URL.Query(), auditEventParams)
	if err != nil {
		return err
	}
	var code string // a FHIR action code that stands for several Bedside actions
	aq, code, err = auditQuery(q)
	if err != nil {
		return err
	}
	fetch := func(limit, offset int) ([]store.AuditEvent, int, error) {
		aq.Limit, aq.Offset = limit, offset
		return h.Store.AuditEvents(ctx, aq)
	}
	keep := func(e store.AuditEvent) (bool, error) { return code == "" || actionCode(e.Action) == code, nil }
	page, total, err := pageOf(q, code == "", fetch, keep)
	if err != nil {
		return err
	}
	n := h.names()
	entries := make([]entry, len(page))
	for i, e := range page {
		res, err := auditEventResource(ctx, n, e)
		if err != nil {
			return err
		}
		entries[i] = entry{kindAuditEvent + "/" + res.ID, res}
	}
	h.writeBundle(w, r, q, total, entries)
	return nil
}

// auditQuery turns AuditEvent search parameters into a store query. code
// is an action code (R or E) that the store cannot select by, to filter
// on; "" when the query selects exactly.
func auditQuery(q query) (aq store.AuditQuery, code string, err error) {
	if v := q.first("patient"); v != "" {
		if _, aq.PatientID, err = parseRef("patient", v, kindPatient); err != nil {
			return aq, "", err
		}
	}
	if v := q.first("agent"); v != "" {
		id, ok := parseID(v)
		if !ok {
			if _, id, err = parseRef("agent", v, kindPractitioner, kindPatient); err != nil {
				return aq, "", err
			}
		}
		aq.ActorID = id
	}
	var b bounds
	for _, v := range q.values["date"] {
		if err := b.and("date", v); err != nil {
			return aq, "", err
		}
	}
	aq.From, aq.To = b.from, b.to // an empty range selects nothing
	switch v := q.first("action"); v {
	case "":
	case "C":
		aq.Action = audit.ActionCreate
	case "U":
		aq.Action = audit.ActionUpdate
	case "D":
		aq.Action = audit.ActionDelete
	case "R", "E":
		code = v
	default:
		if !actionWord.MatchString(v) {
			return aq, "", badRequest(codeValue, "action: %q is neither C, R, U, D, E nor a Bedside action such as read or search", v)
		}
		aq.Action = v
	}
	return aq, code, nil
}

var actionWord = regexp.MustCompile(`^[a-z][a-z-]{0,31}$`)

// actionCode is the FHIR AuditEvent action code of a Bedside action.
func actionCode(action string) string {
	switch action {
	case audit.ActionCreate:
		return "C"
	case audit.ActionRead, audit.ActionExport:
		return "R"
	case audit.ActionUpdate:
		return "U"
	case audit.ActionDelete:
		return "D"
	}
	return "E" // search, login and anything else executed
}

// restInteraction maps Bedside actions to FHIR RESTful interactions.
var restInteraction = map[string]string{
	audit.ActionRead: "read", audit.ActionSearch: "search-type", audit.ActionCreate: "create",
	audit.ActionUpdate: "update", audit.ActionDelete: "delete",
}

// fhirType matches a resource that is a FHIR reference, e.g. Appointment/12.
var fhirType = regexp.MustCompile(`^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$`)

// auditEventResource renders e as an AuditEvent.
func auditEventResource(ctx context.Context, n *names, e store.AuditEvent) (AuditEvent, error) {
	out := AuditEvent{
		ResourceType: kindAuditEvent,
		ID:           strconv.FormatInt(e.Seq, 10),
		Type:         Coding{System: auditTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Action:       actionCode(e.Action),
		Recorded:     e.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Outcome:      "8",
		Source: AuditSource{Observer: AuditRef{Display: "Bedside"},
			Type: []Coding{{System: sourceTypeSystem, Code: "4", Display: "Application Server"}}},
	}
	if e.Action == audit.ActionLogin {
		out.Type = Coding{System: dicomSystem, Code: "110114", Display: "User Authentication"}
		out.Subtype = []Coding{{System: dicomSystem, Code: "110122", Display: "Login"}}
	} else if code, ok := restInteraction[e.Action]; ok {
		out.Subtype = []Coding{{System: interactionSystem, Code: code}}
	}
	out.Subtype = append(out.Subtype, Coding{System: auditActionSystem, Code: e.Action})
	switch e.Outcome {
	case audit.OutcomeSuccess:
		out.Outcome = "0"
	case audit.OutcomeDenied:
		out.Outcome, out.OutcomeDesc = "4", "denied: the caller may not do this"
	default:
		out.OutcomeDesc = e.Outcome
	}
	agent := AuditAgent{Requestor: true, Role: []CodeableConcept{{Coding: []Coding{{System: roleSystem, Code: e.ActorRole}}, Text: e.ActorRole}}}
	switch {
	case e.ActorID == 0:
		agent.Who = AuditRef{Display: e.ActorRole}
	case e.ActorRole == string(store.RolePatient):
		agent.Who = AuditRef{Reference: ref(kindPatient, e.ActorID)}
	case e.ActorRole == string(store.RolePhysician):
		agent.Who = AuditRef{Reference: ref(kindPractitioner, e.ActorID)}
	default: // staff without a FHIR resource, devices
		agent.Who = AuditRef{Identifier: &Identifier{System: userSystem, Value: strconv.FormatInt(e.ActorID, 10)}}
	}
	if e.ActorID != 0 {
		name, err := n.of(ctx, e.ActorID)
		if err != nil {
			return out, err
		}
		agent.Who.Display = name
	}
	if _, err := netip.ParseAddr(e.Address); err == nil {
		agent.Network = &AuditNetwork{Address: e.Address, Type: "2"}
	}
	out.Agent = []AuditAgent{agent}
	patient := ref(kindPatient, e.PatientID)
	if e.Resource != "" && (e.PatientID == 0 || e.Resource != patient) {
		what := AuditRef{Reference: e.Resource}
		if !fhirType.MatchString(e.Resource) {
			what = AuditRef{Identifier: &Identifier{System: resourceNameSystem, Value: e.Resource}}
		}
		out.Entity = append(out.Entity, AuditEntity{What: what, Type: &Coding{System: entityTypeSystem, Code: "2", Display: "System Object"}})
	}
	if e.PatientID != 0 {
		name, err := n.of(ctx, e.PatientID)
		if err != nil {
			return out, err
		}
		out.Entity = append(out.Entity, AuditEntity{What: AuditRef{Reference: patient, Display: name},
			Type: &Coding{System: entityTypeSystem, Code: "1", Display: "Person"},
			Role: &Coding{System: objectRoleSystem, Code: "1", Display: "Patient"}})
	}
	return out, nil
}

// record records, if Deps.Audit is set, that c did action (through r) to
// resource, of patientID's data (0 if none), ending with err: nil is a
// success, a 403 or 404 a denial, anything else a failure.
func (h *handler) record(r *http.Request, c *caller, action string, patientID int64, resource string, err error) {
	if h.Audit == nil {
		return
	}
	outcome := audit.OutcomeFailed
	var ae *apiError
	switch {
	case err == nil:
		outcome = audit.OutcomeSuccess
	case errors.As(err, &ae) && (ae.status == http.StatusForbidden || ae.status == http.StatusNotFound):
		outcome = audit.OutcomeDenied
	}
	who := audit.User(c.user, r)
	// At from the handler's clock, which tests fix.
	h.Audit.Record(r.Context(), store.AuditEvent{At: h.Now(), ActorID: who.ID, ActorRole: who.Role, Action: action,
		PatientID: patientID, Resource: resource, Address: who.Address, Outcome: outcome})
}

// recordFound records a search's results: one event per record found, or
// one for the search itself (about patientID, if the search named one)
// when it found nothing.
func (h *handler) recordFound(r *http.Request, c *caller, kind string, patientID int64, found []recordRef) {
	if len(found) == 0 {
		h.record(r, c, audit.ActionSearch, patientID, kind, nil)
	}
	for _, f := range found {
		rf := f.ref
		if rf == "" {
			rf = ref(kind, f.id)
		}
		h.record(r, c, audit.ActionSearch, f.patient, rf, nil)
	}
}

// recordRef is a record found, and whose it is.
type recordRef struct {
	id, patient int64
	ref         string // the resource, if its id is not id (a relayed Device)
}

package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// auditPage is how many events one page of the audit log lists.
const auditPage = 50

// auditActions are the actions the audit log's search offers.
var auditActions = []string{audit.ActionRead, audit.ActionSearch, audit.ActionCreate, audit.ActionUpdate,
	audit.ActionDelete, audit.ActionExport, audit.ActionLogin, audit.ActionDeactivate, audit.ActionReactivate}

// handleAudit shows admins the audit trail: a search by patient, actor,
// action and dates (in the viewer's zone), one page of events, and
// whether the chain verifies. Viewing it is itself recorded.
func (s *server) handleAudit(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	in := r.URL.Query()
	loc := viewerZone(c.User)
	v := templates.AuditView{Page: page("Audit log", c), Zone: loc.String(),
		Patient: strings.TrimSpace(in.Get("patient")), Actor: strings.TrimSpace(in.Get("actor")),
		Action: in.Get("action"), From: in.Get("from"), To: in.Get("to")}
	v.Actions = []templates.Option{{Value: "", Label: "Any", Selected: v.Action == ""}}
	for _, a := range auditActions {
		v.Actions = append(v.Actions, templates.Option{Value: a, Label: a, Selected: v.Action == a})
	}

	var q store.AuditQuery
	var problems []string
	problem := func(p string) {
		if p != "" {
			problems = append(problems, p)
		}
	}
	var p string
	q.PatientID, v.PatientChoices, p = s.auditUser(ctx, in, "patient", store.RolePatient)
	problem(p)
	q.ActorID, v.ActorChoices, p = s.auditUser(ctx, in, "actor", "")
	problem(p)
	if v.Action != "" && !slices.Contains(auditActions, v.Action) {
		problem("Choose an action from the list.")
	}
	q.Action = v.Action
	var ok bool
	if q.From, ok = auditDate(v.From, loc, false); !ok {
		problem("Enter the From date as YYYY-MM-DD.")
	}
	if q.To, ok = auditDate(v.To, loc, true); !ok {
		problem("Enter the To date as YYYY-MM-DD.")
	}
	v.Error = strings.Join(problems, " ")

	if v.Error == "" && len(v.PatientChoices) == 0 && len(v.ActorChoices) == 0 {
		offset, _ := strconv.Atoi(in.Get("offset"))
		q.Offset, q.Limit = max(offset, 0), auditPage
		events, total, err := s.Store.AuditEvents(ctx, q)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		v.Searched, v.Total = true, total
		v.First, v.Last = q.Offset+1, q.Offset+len(events)
		names := map[int64]string{}
		for _, e := range events {
			v.Rows = append(v.Rows, s.auditRow(r, e, loc, names))
		}
		if q.Offset > 0 {
			v.PrevURL = auditURL(in, max(q.Offset-auditPage, 0))
		}
		if q.Offset+len(events) < total {
			v.NextURL = auditURL(in, q.Offset+auditPage)
		}
	}

	up, err := audit.VerifiedUpTo(ctx, s.Store)
	var broken *audit.BreakError
	switch {
	case errors.As(err, &broken):
		s.Log.ErrorContext(ctx, "audit chain broken", "seq", broken.Seq, "kind", broken.Kind)
		v.Chain = fmt.Sprintf("%s. Events up to %d verify.", upperFirst(err.Error()), up)
	case err != nil:
		s.Log.ErrorContext(ctx, "audit chain not verified", "err", err)
		v.Chain = "The audit chain could not be checked; the server log has the details."
	case up == 0:
		v.ChainOK, v.Chain = true, "The audit trail is empty."
	default:
		v.ChainOK, v.Chain = true, fmt.Sprintf("Chain intact up to event %d.", up)
	}
	if v.Searched { // after the check, so that N is the last event listed
		s.Audit.Success(ctx, audit.User(c.User, r), audit.ActionSearch, q.PatientID, "audit")
	}
	s.render(w, r, http.StatusOK, templates.AuditPage(v))
}

// auditUser reads the search field name: a user id, or words of a name or
// email resolved with SearchUsers among users of role ("" for any). A
// name that matches several gives choices, each a link that searches by
// id; problem says what went wrong, for the page.
func (s *server) auditUser(ctx context.Context, in url.Values, name string, role store.Role) (id int64, choices []templates.AuditChoice, problem string) {
	text := strings.TrimSpace(in.Get(name))
	if text == "" {
		return 0, nil, ""
	}
	if id, err := strconv.ParseInt(text, 10, 64); err == nil && id > 0 {
		return id, nil, ""
	}
	who := "user"
	if role != "" {
		who = string(role)
	}
	users, total, err := s.Store.SearchUsers(ctx, store.UserQuery{Role: role, Text: text, Limit: 10})
	switch {
	case err != nil:
		s.Log.ErrorContext(ctx, "audit log: user search failed", "err", err)
		return 0, nil, fmt.Sprintf("The %s search failed; please try again.", who)
	case total == 0:
		return 0, nil, fmt.Sprintf("No %s matches %q.", who, text)
	case total == 1:
		return users[0].ID, nil, ""
	}
	for _, u := range users {
		pick := url.Values{}
		for k, vs := range in {
			pick[k] = vs
		}
		pick.Set(name, strconv.FormatInt(u.ID, 10))
		pick.Del("offset")
		label := fmt.Sprintf("%s (%s, %s)", u.Name, u.Email, u.Role)
		if u.BirthDate != "" {
			label = fmt.Sprintf("%s (%s, born %s)", u.Name, u.Email, u.BirthDate)
		}
		choices = append(choices, templates.AuditChoice{Label: label, URL: "/audit?" + pick.Encode()})
	}
	if total > len(users) {
		return 0, choices, fmt.Sprintf("%d people match %q; choose one of the first %d, or type more of the name.", total, text, len(users))
	}
	return 0, choices, ""
}

// auditDate reads a YYYY-MM-DD date in loc as the instant the day starts,
// or, for end, the instant after it ends; "" is no bound.
func auditDate(d string, loc *time.Location, end bool) (time.Time, bool) {
	if d == "" {
		return time.Time{}, true
	}
	t, err := time.ParseInLocation(dateLayout, d, loc)
	if err != nil {
		return time.Time{}, false
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, true
}

// auditRow shows one event; names caches display names by user id.
func (s *server) auditRow(r *http.Request, e store.AuditEvent, loc *time.Location, names map[int64]string) templates.AuditRow {
	name := func(id int64) string {
		if n, ok := names[id]; ok {
			return n
		}
		n := s.userName(r, id)
		names[id] = n
		return n
	}
	row := templates.AuditRow{Seq: e.Seq, When: e.At.In(loc).Format("Mon 2 Jan 2006, 15:04:05"), Role: e.ActorRole,
		Action: e.Action, Resource: e.Resource, Address: e.Address, Outcome: e.Outcome, Actor: e.ActorRole}
	if e.ActorID != 0 {
		row.Actor = name(e.ActorID) + " #" + strconv.FormatInt(e.ActorID, 10)
	}
	if e.PatientID != 0 {
		row.Patient = name(e.PatientID) + " #" + strconv.FormatInt(e.PatientID, 10)
	}
	return row
}

// auditURL is the audit log's URL for the search in, at offset.
func auditURL(in url.Values, offset int) string {
	out := url.Values{}
	for _, k := range []string{"patient", "actor", "action", "from", "to"} {
		if v := in.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	out.Set("offset", strconv.Itoa(offset))
	return "/audit?" + out.Encode()
}

// upperFirst capitalises the first letter of a sentence.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

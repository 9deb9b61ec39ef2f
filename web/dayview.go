package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// handleDay is the day view across physicians: each physician's slots and
// visits on one day of the viewer's calendar.
func (s *server) handleDay(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	loc := viewerZone(c.User)
	day := s.Now().In(loc)
	if d, err := time.ParseInLocation(dateLayout, r.URL.Query().Get("date"), loc); err == nil {
		day = d
	}
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
	next := day.AddDate(0, 0, 1)
	physicians, err := s.Store.ListUsers(ctx, store.RolePhysician)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := templates.DayPageView{
		Page: page("Day", c), Label: day.Format("Monday 2 January 2006"), Zone: loc.String(),
		Date: day.Format(dateLayout), Prev: day.AddDate(0, 0, -1).Format(dateLayout), Next: next.Format(dateLayout),
		Today: s.Now().In(loc).Format(dateLayout),
	}
	// The patient being booked, chosen by a search on this page: then
	// every physician's free times are buttons that book at once.
	patientID, _ := strconv.ParseInt(r.URL.Query().Get("patient"), 10, 64)
	if v.PatientChoice, err = s.choosePatient(r, c, patientID, strings.TrimSpace(r.URL.Query().Get("q"))); err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, p := range physicians {
		avail, slots, err := s.slotsFor(ctx, p.ID, "", day, next, 0)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		visits, err := s.Store.AppointmentsBetween(ctx, p.ID, 0, day, next)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		col := templates.DayColumn{PhysicianID: p.ID, Name: p.Name, Week: day.Format(dateLayout)}
		if avail.Zone != nil {
			col.Zone = avail.Zone.String()
		}
		for _, sl := range slots {
			if sl.Free {
				col.Free = append(col.Free, slotView(sl, loc))
			}
		}
		for _, a := range visits {
			col.Visits = append(col.Visits, templates.VisitRow{ID: a.ID, When: a.Start.In(loc).Format("15:04") + "–" + a.End.In(loc).Format("15:04"),
				With: s.userName(r, a.PatientID), Status: statusLabel(a.Status)})
		}
		v.Columns = append(v.Columns, col)
	}
	s.render(w, r, http.StatusOK, templates.DayPage(v))
}

// handleOutbox lists the emails Bedside has queued, sent or kept.
func (s *server) handleOutbox(w http.ResponseWriter, r *http.Request, c caller) {
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	offset = max(offset, 0)
	list, err := s.Store.ListMessages(r.Context(), 0, 50, offset)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	loc := viewerZone(c.User)
	v := templates.OutboxView{Page: page("Outbox", c), SMTP: s.MailConfigured}
	for _, m := range list {
		v.Messages = append(v.Messages, messageRow(m, loc))
	}
	if len(list) == 50 {
		v.NextURL = "/outbox?offset=" + strconv.Itoa(offset+50)
	}
	s.render(w, r, http.StatusOK, templates.OutboxPage(v))
}

// handleOutboxMessage shows one email as it was or will be sent.
func (s *server) handleOutboxMessage(w http.ResponseWriter, r *http.Request, c caller) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "no such message", http.StatusNotFound)
		return
	}
	m, err := s.Store.MessageByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such message", http.StatusNotFound)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if a, err := s.Store.AppointmentByID(r.Context(), m.AppointmentID); err == nil {
		s.audited(r, c, audit.ActionRead, a.PatientID, audit.Ref("Message", m.ID))
	}
	s.render(w, r, http.StatusOK, templates.OutboxMessagePage(templates.OutboxMessageView{
		Page: page("Message", c), Row: messageRow(m, viewerZone(c.User)), Text: m.Text, Calendar: string(m.Calendar)}))
}

func messageRow(m store.Message, loc *time.Location) templates.MessageRow {
	row := templates.MessageRow{ID: m.ID, AppointmentID: m.AppointmentID, Kind: m.Kind, To: m.To, Subject: m.Subject,
		Queued: formatWhen(m.CreatedAt, loc), HasCalendar: len(m.Calendar) > 0}
	switch {
	case m.Failed:
		row.State = "Not delivered: " + m.LastError
	case !m.SentAt.IsZero() && m.Via == "outbox":
		row.State = "Kept here (no mail server configured)"
	case !m.SentAt.IsZero():
		row.State = "Sent " + formatWhen(m.SentAt, loc)
	case m.Attempts > 0:
		row.State = "Retrying (attempt " + strconv.Itoa(m.Attempts+1) + "): " + m.LastError
	default:
		row.State = "Queued"
	}
	return row
}

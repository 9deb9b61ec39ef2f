package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/ward"
)

// maxNEWS2Body bounds a NEWS2 input or thresholds request.
const maxNEWS2Body = 8 << 10

// news2Visit finds the visit of a NEWS2 request and checks the caller is
// its physician while its live vitals are open; what reports the resource
// in the audit record.
func (s *server) news2Visit(w http.ResponseWriter, r *http.Request, c caller, what string) (scheduling.Appointment, bool) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return a, false
	}
	if !mayJoin(c, a) || !vitalsOpen(a, s.Now()) {
		s.auditDenied(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+what)
		s.forbidden(w, r, "NEWS2 inputs are set by the visit's physician, from 30 minutes before it until 2 hours after")
		return a, false
	}
	return a, true
}

// news2Request is the body of POST /consult/{id}/news2.
type news2Request struct {
	Kind  string   `json:"kind"`
	Text  string   `json:"text"`
	Code  string   `json:"code"`
	Value *float64 `json:"value"`
}

// decodeNEWS2Input reads a physician's NEWS2 input; errors name the field.
func decodeNEWS2Input(body []byte) (ward.Input, error) {
	var req news2Request
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return ward.Input{}, fmt.Errorf("not a JSON object of kind, text, code and value: %w", err)
	}
	if d.More() {
		return ward.Input{}, errors.New("one JSON object per request")
	}
	in := ward.Input{Kind: req.Kind, Text: req.Text, Code: req.Code}
	switch req.Kind {
	case ward.KindValue:
		if req.Value == nil {
			return in, errors.New("value: missing")
		}
		in.Value = *req.Value
		if in.Text != "" {
			return in, errors.New("text: not used with kind value")
		}
	case ward.KindConsciousness, ward.KindOxygen, ward.KindScale2:
		if req.Value != nil || req.Code != "" {
			return in, fmt.Errorf("code, value: not used with kind %s (give text)", req.Kind)
		}
	}
	return in, ward.Check(in)
}

// readJSONBody reads a bounded JSON request body.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, errors.New("send application/json")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNEWS2Body))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// handleNEWS2Input takes the physician's input for what no device
// measures (consciousness, air or oxygen, SpO2 scale 2) or a value they
// measured: stored, then applied to the patient's live NEWS2.
func (s *server) handleNEWS2Input(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.news2Visit(w, r, c, "/news2")
	if !ok {
		return
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	in, err := decodeNEWS2Input(body)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	in.At = s.Now().UTC()
	if _, err := s.Store.AppendNEWS2Entry(r.Context(), store.NEWS2Entry{PatientID: a.PatientID, AppointmentID: a.ID,
		Kind: in.Kind, Code: in.Code, Value: in.Value, Text: in.Text, By: c.User.ID, At: in.At}); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/news2")
	if err := s.NEWS2.Enter(r.Context(), a.PatientID, in); err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"kind": in.Kind})
}

// thresholdJSON is one threshold on the wire.
type thresholdJSON struct {
	Code string   `json:"code"`
	Low  *float64 `json:"low,omitempty"`
	High *float64 `json:"high,omitempty"`
}

// decodeThresholds reads a patient's thresholds, normalized; errors name
// the threshold and field at fault.
func decodeThresholds(body []byte) ([]alert.Threshold, error) {
	var req struct {
		Thresholds []thresholdJSON `json:"thresholds"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return nil, fmt.Errorf("not a JSON object with thresholds [{code, low, high}]: %w", err)
	}
	if d.More() {
		return nil, errors.New("one JSON object per request")
	}
	if len(req.Thresholds) > 20 {
		return nil, errors.New("thresholds: at most 20")
	}
	out := make([]alert.Threshold, 0, len(req.Thresholds))
	for i, t := range req.Thresholds {
		n, err := alert.Threshold{Code: t.Code, Low: t.Low, High: t.High}.Normalize()
		if err != nil {
			return nil, fmt.Errorf("thresholds[%d].%w", i, err)
		}
		for _, o := range out {
			if o.Code == n.Code {
				return nil, fmt.Errorf("thresholds[%d].code: %s has a threshold already; give one per code with low and high", i, n.Code)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// handleThresholds replaces the patient's alert thresholds.
func (s *server) handleThresholds(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.news2Visit(w, r, c, "/thresholds")
	if !ok {
		return
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	ts, err := decodeThresholds(body)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.Now().UTC()
	rows := make([]store.AlertThreshold, len(ts))
	for i, t := range ts {
		rows[i] = store.AlertThreshold{PatientID: a.PatientID, Code: t.Code, Low: t.Low, High: t.High, By: c.User.ID, At: now}
	}
	if err := s.Store.SetAlertThresholds(r.Context(), a.PatientID, rows); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+"/thresholds")
	set, err := s.NEWS2.SetThresholds(r.Context(), a.PatientID, ts)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	out := make([]thresholdJSON, len(set))
	for i, t := range set {
		out[i] = thresholdJSON{Code: t.Code, Low: t.Low, High: t.High}
	}
	writeJSON(w, http.StatusOK, map[string]any{"thresholds": out})
}

// handleAcknowledge records that the physician acknowledged one of the
// patient's alerts; the alert timeline keeps who and when.
func (s *server) handleAcknowledge(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.news2Visit(w, r, c, "/alerts")
	if !ok {
		return
	}
	id := r.PathValue("alert")
	if len(id) > 100 {
		jsonError(w, http.StatusNotFound, "no such alert")
		return
	}
	by := audit.Ref("User", c.User.ID)
	al, err := s.NEWS2.Acknowledge(r.Context(), a.PatientID, id, by)
	if errors.Is(err, alert.ErrUnknownAlert) {
		jsonError(w, http.StatusNotFound, "no such alert (cleared, or never raised)")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+"/alerts")
	writeJSON(w, http.StatusOK, map[string]any{"id": al.ID, "ack": al.Ack})
}

// wardRecords keeps the NEWS2 monitors' records in the store.
type wardRecords struct{ st store.NEWS2Records }

// NewWardRecords keeps the NEWS2 monitors' records in st: entries and
// thresholds to restore them from, and the alert timeline.
func NewWardRecords(st store.NEWS2Records) ward.Records { return wardRecords{st} }

// restoreWindow is how far back entries are read to restore a monitor:
// longer than any entry stays current.
const restoreWindow = 24 * time.Hour

func (wr wardRecords) Restore(ctx context.Context, patientID int64) ([]ward.Input, []alert.Threshold, error) {
	es, err := wr.st.NEWS2EntriesSince(ctx, patientID, time.Now().Add(-restoreWindow))
	if err != nil {
		return nil, nil, err
	}
	ins := make([]ward.Input, len(es))
	for i, e := range es {
		ins[i] = ward.Input{Kind: e.Kind, Code: e.Code, Value: e.Value, Text: e.Text, At: e.At}
	}
	rows, err := wr.st.AlertThresholds(ctx, patientID)
	if err != nil {
		return nil, nil, err
	}
	ts := make([]alert.Threshold, len(rows))
	for i, t := range rows {
		ts[i] = alert.Threshold{Code: t.Code, Low: t.Low, High: t.High}
	}
	return ins, ts, nil
}

func (wr wardRecords) RecordAlerts(ctx context.Context, patientID int64, evs []monitor.AlertEvent) error {
	rows := make([]store.AlertEvent, 0, len(evs))
	for _, e := range evs {
		row := store.AlertEvent{PatientID: patientID, AlertID: e.ID, State: e.State, Rule: string(e.Rule),
			Severity: e.Severity.String(), Title: e.Title, Code: e.Code, At: e.Raised}
		switch {
		case e.State == "cleared" && e.Cleared != nil:
			row.At = *e.Cleared
		case e.State == "acknowledged" && e.Ack != nil:
			row.At, row.By = e.Ack.At, e.Ack.By
		}
		rows = append(rows, row)
	}
	return wr.st.AppendAlertEvents(ctx, patientID, rows)
}

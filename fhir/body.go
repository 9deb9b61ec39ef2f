package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// appointmentBody is an Appointment as a client sends it: the elements
// Bedside reads, and meta, text and extension, which it ignores (the
// zone a visit was booked in is the physician's, not the client's). Absent elements are
// zero (nil for the pointers and slices).
type appointmentBody struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id"`
	Meta              json.RawMessage   `json:"meta"`
	Text              json.RawMessage   `json:"text"`
	Extension         json.RawMessage   `json:"extension"`
	Status            string            `json:"status"`
	CancelationReason *CodeableConcept  `json:"cancelationReason"`
	ServiceType       []CodeableConcept `json:"serviceType"`
	Start             string            `json:"start"`
	End               string            `json:"end"`
	MinutesDuration   *int              `json:"minutesDuration"`
	Created           string            `json:"created"`
	Slot              []Reference       `json:"slot"`
	Participant       []participantBody `json:"participant"`
}

// participantBody is a participant as a client sends it; type and
// required are accepted and ignored.
type participantBody struct {
	Type     json.RawMessage `json:"type"`
	Actor    *Reference      `json:"actor"`
	Required string          `json:"required"`
	Status   string          `json:"status"`
}

// appointmentElements are the top-level elements appointmentBody reads,
// matched exactly (encoding/json alone would ignore case).
var appointmentElements = []string{"resourceType", "id", "meta", "text", "extension", "status", "cancelationReason", "serviceType",
	"start", "end", "minutesDuration", "created", "slot", "participant"}

// readBody reads a request's JSON body: 415 for a media type other than
// application/fhir+json or application/json (in UTF-8), 413 beyond maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/fhir+json" && mt != "application/json" {
		return nil, newError(http.StatusUnsupportedMediaType, codeNotSupported,
			"Content-Type %q is not supported: send application/fhir+json (or application/json)", r.Header.Get("Content-Type"))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, newError(http.StatusUnsupportedMediaType, codeNotSupported, "charset %q is not supported: send UTF-8", cs)
	}
	tooLarge := newError(http.StatusRequestEntityTooLarge, codeTooCostly, "the body is larger than %d KiB", maxBody>>10)
	if r.ContentLength > maxBody {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, badRequest(codeInvalid, "the body could not be read")
	}
	return b, nil
}

// decodeAppointment reads an Appointment from a request body. Every
// problem is a 400 naming the element.
func decodeAppointment(b []byte) (appointmentBody, error) {
	var res appointmentBody
	if len(bytes.TrimSpace(b)) == 0 {
		return res, badRequest(codeInvalid, "the body is empty: send an Appointment")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return res, jsonError(err)
	}
	if top == nil {
		return res, badRequest(codeInvalid, "the body must be a JSON object: an Appointment")
	}
	for name := range top {
		if !slices.Contains(appointmentElements, name) {
			return res, badRequest(codeInvalid, "unknown element %q: Bedside's Appointment takes %s", name, strings.Join(appointmentElements, ", "))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return res, jsonError(err)
	}
	switch res.ResourceType {
	case kindAppointment:
	case "":
		return res, badRequest(codeRequired, "resourceType: missing; the body must be an Appointment")
	default:
		return res, badRequest(codeInvalid, "resourceType: want Appointment, got %q", res.ResourceType)
	}
	return res, nil
}

// jsonError explains why a body is not the JSON expected.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest(codeInvalid, "the body is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(codeInvalid, "%s: want a JSON %s, got %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &typ):
		return badRequest(codeInvalid, "the body must be a JSON object (an Appointment), not %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(codeInvalid, "the body is not valid JSON: it ends too soon")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest(codeInvalid, "unknown element %s in the Appointment", name)
	}
	return badRequest(codeInvalid, "the body is not a valid Appointment: %v", err)
}

// jsonKind names a Go kind as the JSON it is decoded from.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "slice":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "int", "int64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return fmt.Sprintf("value (%s)", k)
}

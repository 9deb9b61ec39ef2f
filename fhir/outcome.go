package fhir

import (
	"fmt"
	"net/http"
	"time"
)

// FHIR issue type codes (http://hl7.org/fhir/issue-type) used in answers.
const (
	codeInvalid      = "invalid"       // the request could not be read as FHIR
	codeRequired     = "required"      // a required element or parameter is missing
	codeValue        = "value"         // an element or parameter has a wrong value
	codeNotFound     = "not-found"     // no such resource, or not one the caller may see
	codeForbidden    = "forbidden"     // the caller's role never allows this
	codeLogin        = "login"         // no valid bearer token
	codeConflict     = "conflict"      // the slot is taken, or the lifecycle forbids the change
	codeNotSupported = "not-supported" // a method, media type or search feature Bedside lacks
	codeTooCostly    = "too-costly"    // the body or the searched range is too large
	codeThrottled    = "throttled"     // too many refused tokens from the client's address
	codeProcessing   = "processing"    // a business rule refuses the request
	codeException    = "exception"     // the server failed
)

// apiError is an answer other than success: a status and one issue.
type apiError struct {
	status       int
	code         string
	diagnostics  string
	invalidToken bool          // 401 for a token that was sent but is not valid
	retryAfter   time.Duration // 429: how long the client must wait
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.diagnostics)
}

// OperationOutcome is the FHIR resource every error answers with.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one problem an OperationOutcome reports.
type Issue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

func (e *apiError) outcome() OperationOutcome {
	return OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: "error", Code: e.code, Diagnostics: e.diagnostics}}}
}

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, diagnostics: fmt.Sprintf(format, args...)}
}

// badRequest is a 400: a request that cannot be read or a bad search.
func badRequest(code, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, code, format, args...)
}

// unprocessable is a 422: a resource that reads well but cannot be accepted.
func unprocessable(code, format string, args ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, code, format, args...)
}

// conflict is a 409.
func conflict(format string, args ...any) *apiError {
	return newError(http.StatusConflict, codeConflict, format, args...)
}

// forbidden is a 403: a write the caller's role never allows.
func forbidden(format string, args ...any) *apiError {
	return newError(http.StatusForbidden, codeForbidden, format, args...)
}

// unauthorized is a 401.
func unauthorized(invalidToken bool, format string, args ...any) *apiError {
	e := newError(http.StatusUnauthorized, codeLogin, format, args...)
	e.invalidToken = invalidToken
	return e
}

// notFound is the 404 for a resource that does not exist or that the caller
// may not see: the two are answered alike, so IDs cannot be probed.
func notFound(kind, id string) *apiError {
	return newError(http.StatusNotFound, codeNotFound, "%s/%s is not known", kind, id)
}

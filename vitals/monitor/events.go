package monitor

import (
	"encoding/json"
	"time"

	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/news2"
)

// Event is something the Monitor tells the live stream. Each is a JSON
// object with a "type": NEWS2Event ("news2"), AlertEvent ("alert") or
// StaleEvent ("stale"); docs/protocol.md describes them.
type Event interface {
	// EventType is the message's "type".
	EventType() string
}

// Encode is an event's JSON message for the live stream.
func Encode(e Event) ([]byte, error) { return json.Marshal(e) }

// NEWS2Event is a changed NEWS2: score, band, the response it calls for,
// and each parameter's points and source. It is sent when any of those
// change, not on every reading.
type NEWS2Event struct {
	Type     string         `json:"type"` // "news2"
	Time     time.Time      `json:"time"` // when it was computed
	Score    int            `json:"score"`
	Band     news2.Band     `json:"band"`
	Complete bool           `json:"complete"`
	Scale    int            `json:"scale"` // SpO2 scale: 1 or 2
	Params   []ParamState   `json:"params"`
	Missing  []news2.Param  `json:"missing,omitempty"`
	Stale    []news2.Param  `json:"stale,omitempty"`
	Response news2.Response `json:"response"`
}

// EventType is "news2".
func (NEWS2Event) EventType() string { return "news2" }

// ParamState is one NEWS2 parameter in a NEWS2Event.
type ParamState struct {
	Param  news2.Param  `json:"param"`
	Score  int          `json:"score"`
	Source news2.Source `json:"source"`
	// Code is the LOINC code a device measures the parameter by.
	Code string `json:"code,omitempty"`
	// Doubtful says the latest readings of the parameter were flagged and
	// set aside: the score uses the last sound value.
	Doubtful bool `json:"doubtful,omitempty"`
	// Entered is true when the value in use is a clinician's entry; Value
	// and Time are then given (for a measured value, the latest "reading"
	// message of Code holds them). Value is a number, a consciousness
	// level ("alert", "confusion", "voice", "pain", "unresponsive") or
	// "air" or "oxygen".
	Entered bool       `json:"entered,omitempty"`
	Value   any        `json:"value,omitempty"`
	Time    *time.Time `json:"time,omitempty"`
}

// AlertEvent is a change in an alert's life. State is "raised" (also for
// the current alerts a snapshot lists), "cleared", "acknowledged",
// "reminder" (still active and not acknowledged), or "notice" (for
// information only, raised and cleared at once: a NEWS2 band went down).
type AlertEvent struct {
	Type      string         `json:"type"` // "alert"
	State     string         `json:"state"`
	ID        string         `json:"id"`
	Rule      alert.Rule     `json:"rule"`
	Severity  alert.Severity `json:"severity"`
	Title     string         `json:"title"`
	Code      string         `json:"code,omitempty"`
	Param     string         `json:"param,omitempty"`
	Direction string         `json:"direction,omitempty"`
	Limit     *float64       `json:"limit,omitempty"`
	Band      string         `json:"band,omitempty"`
	Value     *float64       `json:"value,omitempty"`
	Raised    time.Time      `json:"raised"`
	Cleared   *time.Time     `json:"cleared,omitempty"`
	Ack       *alert.Ack     `json:"ack,omitempty"`
}

// EventType is "alert".
func (AlertEvent) EventType() string { return "alert" }

// StaleEvent says a measurement (by Code) or a clinician's entry (by
// Param) went stale, or is fresh again.
type StaleEvent struct {
	Type  string    `json:"type"` // "stale"
	Code  string    `json:"code,omitempty"`
	Param string    `json:"param,omitempty"`
	Stale bool      `json:"stale"`
	Last  time.Time `json:"last"` // the latest reading's or entry's time
	Time  time.Time `json:"time"` // when the change was seen
}

// EventType is "stale".
func (StaleEvent) EventType() string { return "stale" }

func alertEvent(state string, a alert.Alert) AlertEvent {
	e := AlertEvent{
		Type: "alert", State: state, ID: a.ID, Rule: a.Rule, Severity: a.Severity, Title: a.Title,
		Code: a.Code, Param: a.Param, Direction: a.Direction, Limit: a.Limit, Band: a.Band, Value: a.Value,
		Raised: a.Raised, Ack: a.Ack,
	}
	if !a.Cleared.IsZero() {
		c := a.Cleared
		e.Cleared = &c
	}
	return e
}

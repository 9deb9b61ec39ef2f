// Package vitals decodes and validates device observations (FHIR R4
// Observation JSON in a sequenced envelope), holds the LOINC and UCUM
// catalogue with the plausibility ranges, and implements the per-device
// acknowledgement contract of docs/protocol.md: Ingester is the
// transport-free session logic and ServeDevice its websocket read loop.
// It knows nothing of HTTP or SQL; the web layer adapts a store to Sink and
// the cluster bus to Publisher.
//
// Values are health data: nothing here logs them, and error texts name
// fields and quote the offending input only to the device that sent it.
package vitals

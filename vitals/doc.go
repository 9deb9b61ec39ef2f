// Package vitals decodes and validates device observations (FHIR R4
// Observation JSON inside a sequenced envelope), holds the LOINC and UCUM
// catalogue, and implements the per-device acknowledgement contract. It knows
// nothing of HTTP or SQL.
package vitals

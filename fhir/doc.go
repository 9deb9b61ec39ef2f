// Package fhir serves Bedside's FHIR R4 JSON REST API: the
// CapabilityStatement, Patient, Practitioner, Schedule, Slot and
// Appointment, the vitals (Observation, with create as device ingest, and
// Device), held visits as Encounters and a visit's export as a Bundle with
// a derived NEWS2, with bearer-token authentication, role-based visibility
// decided in one place, strict searches paged as Bundles, booking from a
// free Slot and appointment status changes, every error an
// OperationOutcome. The web package mounts it under /fhir.
package fhir

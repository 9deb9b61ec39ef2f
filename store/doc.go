// Package store defines Bedside's records and the persistence interfaces
// that its adapters (package sqlite, and later postgres) implement.
package store

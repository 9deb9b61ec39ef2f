//go:build race

package sqlite

// raceEnabled: the race detector slows SQLite (C translated to Go) many
// times over.
const raceEnabled = true

//go:build !race

package vitals

const raceEnabled = false

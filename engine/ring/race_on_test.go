//go:build race

package ring

// raceEnabled scales the stress tests down: the race detector makes every
// atomic and slot access several times slower.
const raceEnabled = true

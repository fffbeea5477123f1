//go:build race

package engine

// raceEnabled scales stress tests down under the race detector.
const raceEnabled = true

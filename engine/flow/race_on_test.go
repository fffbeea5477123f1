//go:build race

package flow

// raceEnabled scales the stress test down under the race detector.
const raceEnabled = true

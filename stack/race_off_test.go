//go:build !race

package stack

// raceEnabled says the race detector is on: long transfers shrink under it.
const raceEnabled = false

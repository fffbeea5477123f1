//go:build !race

package stack

// raceEnabled shrinks the long transfers under the race detector.
const raceEnabled = false

//go:build !race

package stack

// raceEnabled shrinks the long interop transfers under the race detector.
const raceEnabled = false

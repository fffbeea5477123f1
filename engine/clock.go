package engine

import _ "unsafe" // for go:linkname

// Nanotime is the runtime's monotonic clock in nanoseconds. It skips the wall
// clock read that time.Now adds, which matters when every poll reads it.
//
//go:linkname Nanotime runtime.nanotime
func Nanotime() int64

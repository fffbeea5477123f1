package engine

// prefetchLines asks the CPU to start loading the cache line at each address.
// A hint only: it never faults, whatever the address.
//
//go:noescape
func prefetchLines(addrs *uintptr, n int)

// prefetchLinesW is prefetchLines for lines about to be written: it fetches
// them exclusive, saving the second round trip a read-then-write would cost.
//
//go:noescape
func prefetchLinesW(addrs *uintptr, n int)

//go:build !amd64

package engine

func prefetchLines(addrs *uintptr, n int)  {}
func prefetchLinesW(addrs *uintptr, n int) {}

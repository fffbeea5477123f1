//go:build !race

package ring

import (
	"sync/atomic"
	"unsafe"
)

// storeRelease stores v to *addr with release ordering only.
//
//go:noescape
func storeRelease(addr *uint64, v uint64)

// release publishes v in a with release ordering: everything written before
// is visible to a goroutine whose a.Load() sees v. The rings need no more
// than that (no store is ever followed by a load that must see other
// goroutines' later stores), and on amd64 it is a plain MOV, where
// atomic.Uint64.Store is a sequentially consistent XCHG that costs about
// 6 ns on the EPYC test machine: for MPMC, which stores a sequence per slot,
// that was two thirds of the cost of a burst.
//
// Race builds use a.Store instead (release_other.go) so that the race
// detector sees the synchronisation.
func release(a *atomic.Uint64, v uint64) {
	// atomic.Uint64 is a bare uint64 behind zero-size markers; see TestReleaseLayout.
	storeRelease((*uint64)(unsafe.Pointer(a)), v)
}

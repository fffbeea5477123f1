//go:build !amd64 || race

package ring

import "sync/atomic"

// release publishes v in a with (at least) release ordering; see
// release_amd64.go for why the rings use it instead of a.Store directly.
func release(a *atomic.Uint64, v uint64) { a.Store(v) }

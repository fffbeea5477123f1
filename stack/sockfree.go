package stack

import (
	"sync"

	"github.com/pollnet/pollnet/engine"
)

// socketFrees is where sockets free the packets their readers are done
// with: one set of caches for every socket of the stack, behind a lock of
// its own, rather than a private cache per socket. A private cache keeps up
// to twice its pool's cache size of receive buffers (511 by default) out of
// the port's reach for as long as its socket lives, so a few sockets that
// have each read a few hundred datagrams could drain a receive pool; and a
// pool keeps every cache ever made of it. This one keeps at most one cache
// per pool per stack.
type socketFrees struct {
	mu sync.Mutex
	cs engine.Caches // guarded by mu
}

// free frees one packet.
func (f *socketFrees) free(m engine.Mbuf) {
	f.mu.Lock()
	f.cs.Free(m)
	f.mu.Unlock()
}

// flush gives every cached buffer back to its pool and retires the caches,
// when the stack closes: the ports' pools outlive the stack.
func (f *socketFrees) flush() {
	f.mu.Lock()
	f.cs.Close()
	f.mu.Unlock()
}

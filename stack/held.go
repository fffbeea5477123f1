package stack

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/network/frag"
)

// heldMemory accounts the buffers pinned by packets that wait for something:
// on a neighbour entry for its address, in the reassembler for the rest of
// their datagram (and, with TCP, out-of-order data for the gap before it).
// Such packets mostly sit in the receive buffers they arrived in, so
// together they may hold at most limit mbufs, by default an eighth of the
// smallest receive pool among the stack's ports: whatever arrives from the
// wire, a port keeps seven eighths of its buffers for traffic that moves.
// A holder charges each packet's segments before keeping it and drops the
// packet when refused; it uncharges them when it lets the packet go.
//
// It implements frag.Accountant for the reassembler. Used under the stack
// lock.
type heldMemory struct {
	limit   int    // mbufs that may be held
	held    int    // mbufs held now
	refused uint64 // charges refused
}

// Charge counts n more mbufs as held and reports true, or, when that would
// pass the limit, counts a refusal and reports false.
func (h *heldMemory) Charge(n int) bool {
	if h.held+n > h.limit {
		h.refused++
		return false
	}
	h.held += n
	return true
}

// Uncharge gives back n mbufs charged earlier.
func (h *heldMemory) Uncharge(n int) { h.held -= n }

// Room is how many more mbufs may be held now.
func (h *heldMemory) Room() int { return max(0, h.limit-h.held) }

var _ frag.Accountant = (*heldMemory)(nil)

// pooled is a port that says which pool it receives into (pmd/wire and
// pmd/tap do).
type pooled interface{ Pool() *engine.Pool }

// heldLimit is the default bound: an eighth of the smallest receive pool of
// the stack's ports, or of the stack's own pool when no port tells.
func (s *Stack) heldLimit() int {
	smallest := 0
	for _, d := range s.devs {
		if p, ok := d.Port.(pooled); ok && !d.Loopback {
			if n := p.Pool().Size(); smallest == 0 || n < smallest {
				smallest = n
			}
		}
	}
	if smallest == 0 {
		smallest = s.pool.Size()
	}
	return max(1, smallest/8)
}

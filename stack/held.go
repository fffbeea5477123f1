package stack

import (
	"sync/atomic"

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
// It implements frag.Accountant for the reassemblers and the neighbour
// table. Every shard charges the one budget, with atomic operations.
type heldMemory struct {
	limit   atomic.Int64  // mbufs that may be held
	held    atomic.Int64  // mbufs held now
	refused atomic.Uint64 // charges refused
}

// Charge takes n mbufs of the budget, or refuses and counts.
func (h *heldMemory) Charge(n int) bool {
	for {
		held := h.held.Load()
		if held+int64(n) > h.limit.Load() {
			h.refused.Add(1)
			return false
		}
		if h.held.CompareAndSwap(held, held+int64(n)) {
			return true
		}
	}
}

// Uncharge gives n mbufs back.
func (h *heldMemory) Uncharge(n int) { h.held.Add(-int64(n)) }

// Room is how many mbufs may still be charged.
func (h *heldMemory) Room() int { return int(max(0, h.limit.Load()-h.held.Load())) }

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

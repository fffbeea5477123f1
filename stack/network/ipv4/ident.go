// Package ipv4 holds the IPv4 network layer's state that every shard of a
// stack shares: the per-destination ID counters.
package ipv4

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/pollnet/pollnet/stack/siphash"
)

// ipIdentSlots is the number of ID counters; flows share one when their
// hashes collide, so more slots leak less (Linux sizes ip_idents from
// memory, 2048 at the least).
const ipIdentSlots = 2048

// ipIdents gives IPv4 IDs per flow, like Linux's ip_idents_reserve: an array
// of counters indexed by a keyed hash (SipHash, secret per stack) of the
// destination, source and protocol, each ID offset by the hash as well. An
// off-path host cannot tell from the IDs it receives how many datagrams we
// send to anyone else, nor guess the IDs of a flow it cannot see (the
// fragment-injection and idle-scan attacks on a global counter). A counter
// unused for a while jumps ahead by a random amount below the milliseconds
// it was idle, so even two flows that share a slot cannot count each other.
// Every shard draws from one set of counters, with atomic operations only
// (ip_idents_reserve's cmpxchg on the stamp and atomic add on the counter),
// so that two shards sending to one destination never hand out one ID twice.
type Idents struct {
	key    siphash.Key
	rnd    atomic.Uint64 // draws from the key so far
	ids    [ipIdentSlots]atomic.Uint32
	stamps [ipIdentSlots]atomic.Uint32 // when each counter was last used, in ms
}

// Init keys the counters with the stack's secret.
func (t *Idents) Init(key siphash.Key) { t.key = key }

// Next returns the ID for a datagram from src to dst carrying proto, at now
// (nanoseconds).
func (t *Idents) Next(src, dst [4]byte, proto uint8, now int64) uint16 {
	h := t.key.Hash3(uint64(binary.BigEndian.Uint32(dst[:])), uint64(binary.BigEndian.Uint32(src[:])),
		uint64(proto)|siphash.TagIPID<<8)
	b := h & (ipIdentSlots - 1)
	ms := uint32(now / 1e6)
	var jump uint32
	// Of several shards seeing the same stale stamp, the one that moves it
	// draws the jump; the others add nothing, as in Linux. A shard whose
	// clock reading is older than the stamp (another shard read the clock
	// later and got here first) leaves it: a negative idle time would draw
	// a jump across the whole ID space.
	if old := t.stamps[b].Load(); (old == 0 || int32(ms-old) > 0) && t.stamps[b].CompareAndSwap(old, ms) {
		jump = t.randBelow(ms - old)
	}
	id := t.ids[b].Add(jump+1) - 1
	return uint16(id + uint32(h>>32))
}

// randBelow returns a number in [0, n), or 0 for n == 0, drawn from the
// secret key and a counter, like get_random_u32_below.
func (t *Idents) randBelow(n uint32) uint32 {
	return uint32((t.key.Hash2(siphash.TagIPIDRandom, t.rnd.Add(1)) >> 32) * uint64(n) >> 32)
}

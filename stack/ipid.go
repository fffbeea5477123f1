package stack

import (
	"encoding/binary"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/siphash"
)

// ipIdentSlots is the number of ID counters; flows share one when their
// hashes collide, so more slots leak less (Linux sizes ip_idents from
// memory, 2048 at the least).
const ipIdentSlots = 2048

// Tags that keep the stack's uses of its one secret apart.
const (
	hashTagIPID uint64 = iota + 1
	hashTagIPIDRandom
	hashTagICMPHost
	hashTagICMPRandom
	hashTagPort
)

// ipIdents gives IPv4 IDs per flow, like Linux's ip_idents_reserve: an array
// of counters indexed by a keyed hash (SipHash, secret per stack) of the
// destination, source and protocol, each ID offset by the hash as well. An
// off-path host cannot tell from the IDs it receives how many datagrams we
// send to anyone else, nor guess the IDs of a flow it cannot see (the
// fragment-injection and idle-scan attacks on a global counter). A counter
// unused for a while jumps ahead by a random amount below the milliseconds
// it was idle, so even two flows that share a slot cannot count each other.
// Used under the stack lock.
type ipIdents struct {
	key    siphash.Key
	rnd    uint64 // draws from the key so far
	ids    [ipIdentSlots]uint32
	stamps [ipIdentSlots]uint32 // when each counter was last used, in ms
}

// next returns the ID for a datagram from src to dst carrying proto, at now
// (nanoseconds).
func (t *ipIdents) next(src, dst [4]byte, proto uint8, now int64) uint16 {
	h := t.key.Hash3(uint64(binary.BigEndian.Uint32(dst[:])), uint64(binary.BigEndian.Uint32(src[:])),
		uint64(proto)|hashTagIPID<<8)
	b := h & (ipIdentSlots - 1)
	ms := uint32(now / 1e6)
	var jump uint32
	if old := t.stamps[b]; old != ms {
		t.stamps[b] = ms
		jump = t.randBelow(ms - old)
	}
	t.ids[b] += jump
	id := t.ids[b]
	t.ids[b]++
	return uint16(id + uint32(h>>32))
}

// randBelow returns a number in [0, n), or 0 for n == 0, drawn from the
// secret key and a counter, like get_random_u32_below.
func (t *ipIdents) randBelow(n uint32) uint32 {
	t.rnd++
	return uint32((t.key.Hash2(hashTagIPIDRandom, t.rnd) >> 32) * uint64(n) >> 32)
}

// ipIdent is the ID of the next datagram from src to dst carrying proto.
func (s *Stack) ipIdent(src, dst [4]byte, proto uint8) uint16 {
	return s.idents.next(src, dst, proto, engine.Nanotime())
}

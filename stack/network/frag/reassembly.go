package frag

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// Reassembly defaults, those of Linux's ipfrag_high_thresh and ipfrag_time,
// and the largest limit accepted (its bookkeeping arrays are sized from it).
const (
	DefaultReasmLimit   = 4 << 20
	DefaultReasmTimeout = int64(30 * time.Second)
	MaxReasmLimit       = 1 << 30
)

// Reassembly errors. Add returns one when it drops the fragment it was given.
var (
	ErrFragment  = errors.New("ipv4 reassembly: malformed fragment")
	ErrTooBig    = errors.New("ipv4 reassembly: datagram would exceed 65535 bytes")
	ErrOverlap   = errors.New("ipv4 reassembly: fragment overlaps one already held")
	ErrDuplicate = errors.New("ipv4 reassembly: duplicate fragment")
	ErrMemory    = errors.New("ipv4 reassembly: over the memory limit")
)

// ReasmConfig sets up a Reassembler. Zero fields take the defaults.
type ReasmConfig struct {
	// Limit is the most buffer memory, in bytes, that held fragments may
	// pin. Each segment of a held fragment counts engine.BufSize, the
	// memory it really keeps from the pool, not just its payload (as Linux
	// charges skb->truesize). Values above MaxReasmLimit are clamped.
	Limit int
	// Timeout is how long, in nanoseconds, a datagram may take to complete,
	// counted from its first fragment's arrival.
	Timeout int64
	// OnTimeout, if set, is called for each datagram that times out after
	// its first fragment (offset 0) arrived, with that fragment, so the
	// caller can send ICMP time exceeded (code 1). The reassembler still
	// owns the mbuf: the callback reads it or clones it, never frees it.
	OnTimeout func(first engine.Mbuf)
	// Account, if set, is a bound on held buffers shared with the caller's
	// other holders of received packets; each held fragment's segments are
	// charged to it as well as to Limit.
	Account Accountant
}

// Accountant is a bound on buffers that the reassembler shares with other
// holders of packets waiting for something (a stack's neighbour queues, a
// TCP out-of-order queue), so that together they cannot take a receive pool.
// When a fragment does not fit, the reassembler evicts its own oldest
// datagrams to make room, and drops the fragment if that is not enough.
type Accountant interface {
	// Charge counts n more mbufs as held and reports true, or reports
	// false, counting nothing, when they would pass the bound.
	Charge(n int) bool
	// Uncharge gives back n mbufs charged earlier.
	Uncharge(n int)
	// Room is how many more mbufs may be charged now.
	Room() int
}

// ReasmCounters are the reassembler's statistics, named after the Linux SNMP
// counters where one exists.
type ReasmCounters struct {
	ReasmReqds  uint64 // fragments received
	ReasmOKs    uint64 // datagrams reassembled
	ReasmFails  uint64 // fragments refused as malformed or for memory, and datagrams abandoned (timeout, eviction, too big)
	Timeouts    uint64 // datagrams abandoned because they did not complete in time
	Overlaps    uint64 // fragments dropped because they overlapped one held
	Duplicates  uint64 // fragments dropped because an identical one was held
	Invalid     uint64 // fragments dropped as malformed
	MemoryDrops uint64 // fragments freed to stay under the byte limit or the Accountant's bound: refused ones and those of evicted datagrams
	Evictions   uint64 // datagrams evicted, oldest first, to make room
	BytesHeld   int    // buffer bytes held now
	Queues      int    // datagrams in progress now
}

// Reassembler rebuilds datagrams from fragments, like Linux's ip_defrag with
// its ipq queues. Fragments are keyed by (source, destination, protocol, ID).
//
// Memory is bounded: held fragments may pin at most Limit bytes of pool
// buffers. When a new fragment would pass the limit, the oldest datagrams in
// progress are evicted until it fits. Under a flood of fragments that never
// complete, the flood's own old queues are the ones evicted, while a real
// datagram (whose fragments arrive close together) still completes; a
// datagram that could not fit even alone is abandoned at once. All
// bookkeeping lives in arrays sized from Limit when the Reassembler is made,
// so Add allocates nothing and the number of datagrams held is bounded too.
//
// Overlaps: a fragment that overlaps any byte already held is dropped
// (counted in Overlaps; an exact repeat counts in Duplicates), and the
// datagram keeps what it has. The first data to arrive for a range wins, so
// a reassembled datagram never mixes bytes from two sources, which is what
// overlap attacks rely on. Linux instead drops the whole datagram on an
// overlap (RFC 5722 requires that for IPv6); we keep the queue because one
// forged fragment should not be able to destroy a genuine datagram, and
// dropping the newcomer is just as safe against ambiguity.
//
// Malformed fragments are dropped the same way: one whose end conflicts with
// the datagram's known end (a second, different last fragment, or data
// beyond the end), an empty one, one that would end past 65535 bytes, and
// one with MF set whose payload is not a multiple of 8 (RFC 791 forbids it;
// Linux trims such a fragment instead).
//
// A Reassembler is owned by one goroutine (the worker that receives for its
// queue): it has no locks. Every mbuf it drops goes back through the Caches
// it was given.
type Reassembler struct {
	cs        *engine.Caches
	pool      *engine.Pool
	limit     int
	timeout   int64
	onTimeout func(engine.Mbuf)
	acct      Accountant

	nodes    []fragNode
	freeNode int32
	queues   []reasmQueue
	freeQ    int32
	buckets  []int32
	seed     uint64
	oldest   int32 // age list, oldest first; expiry order too
	newest   int32

	c ReasmCounters
}

// fragNode is one held fragment. Its mbuf holds only payload, except for the
// fragment at offset 0, which keeps its header for the reassembled datagram.
type fragNode struct {
	m        engine.Mbuf
	off, end int32 // payload bytes [off, end) of the datagram
	next     int32 // next fragment by offset, or -1
}

type reasmKey struct {
	addrs   uint64 // source and destination
	idProto uint32
}

type reasmQueue struct {
	key        reasmKey
	hnext      int32 // hash chain
	prev, next int32 // age list
	head, tail int32 // fragments by offset
	expires    int64
	held       int   // bytes charged to this datagram
	segs       int   // mbufs charged to the Accountant for it
	have       int32 // payload bytes held
	end        int32 // payload length once the last fragment is in, else -1
	hasFirst   bool  // the fragment at offset 0 is held
}

const none = -1

// NewReassembler makes a reassembler that frees through cs and takes header
// mbufs from p (needed when the first fragment's buffer is shared).
func NewReassembler(cs *engine.Caches, p *engine.Pool, cfg ReasmConfig) *Reassembler {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultReasmLimit
	}
	cfg.Limit = min(cfg.Limit, MaxReasmLimit)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReasmTimeout
	}
	// Every held fragment pins at least one buffer, so this many nodes and
	// queues can never run out while the limit holds.
	n := max(1, cfg.Limit/engine.BufSize)
	nb := 1
	for nb < 2*n {
		nb <<= 1
	}
	r := &Reassembler{
		cs: cs, pool: p, limit: cfg.Limit, timeout: cfg.Timeout, onTimeout: cfg.OnTimeout, acct: cfg.Account,
		nodes:   make([]fragNode, n),
		queues:  make([]reasmQueue, n),
		buckets: make([]int32, nb),
		seed:    rand.Uint64(),
		oldest:  none, newest: none,
	}
	for i := range r.nodes {
		r.nodes[i].next = int32(i + 1)
		r.queues[i].next = int32(i + 1)
	}
	r.nodes[n-1].next = none
	r.queues[n-1].next = none
	r.freeNode, r.freeQ = 0, 0
	for i := range r.buckets {
		r.buckets[i] = none
	}
	return r
}

// Counters returns the statistics and the memory held now.
func (r *Reassembler) Counters() ReasmCounters { return r.c }

// Add takes the datagram m (IPv4 header first, in its first segment) and
// always takes ownership of it. A datagram that is not a fragment comes
// straight back (whole == m, ok). A fragment is stored; when it completes a
// datagram, Add returns the whole datagram as one chain whose header is the
// first fragment's with the total length, flags and offset fixed and a fresh
// checksum. ok false with a nil error means the fragment is held; a non-nil
// error means it was dropped (and freed), with the reason. The header
// checksum is not checked again: the caller's input path already did.
//
// now is the current time in nanoseconds; Add first expires datagrams whose
// time is up, so a caller that never calls Expire still stays bounded in
// time as well as memory.
func (r *Reassembler) Add(now int64, m engine.Mbuf) (whole engine.Mbuf, ok bool, err error) {
	b := m.Data()
	h, err := ipv4.ParseOffloaded(b, m.PktLen())
	if err != nil {
		r.c.ReasmReqds++
		return engine.NoMbuf, false, r.refuse(m, err)
	}
	if !h.IsFragment() {
		return m, true, nil
	}
	r.c.ReasmReqds++
	r.Expire(now)

	hl := int32(h.HeaderLen)
	off := int32(h.FragOff)
	end := off + int32(h.TotalLen) - hl
	switch {
	case end == off, h.MF() && (end-off)&7 != 0:
		return engine.NoMbuf, false, r.refuse(m, ErrFragment)
	case hl+end > ipv4.MaxTotalLen:
		return engine.NoMbuf, false, r.refuse(m, ErrTooBig)
	}
	if extra := m.PktLen() - int(h.TotalLen); extra > 0 { // link padding
		if m.Trim(extra) != nil {
			return engine.NoMbuf, false, r.refuse(m, ErrFragment)
		}
	}
	key := reasmKey{
		addrs:   uint64(binary.BigEndian.Uint32(h.Src[:]))<<32 | uint64(binary.BigEndian.Uint32(h.Dst[:])),
		idProto: uint32(h.ID)<<8 | uint32(h.Protocol),
	}
	bucket := r.bucket(key)
	qi := r.find(bucket, key)

	// Where the fragment goes, and whether it fits with what is held.
	prev := int32(none)
	if qi != none {
		q := &r.queues[qi]
		if !h.MF() && (q.end >= 0 && q.end != end || r.nodes[q.tail].end > end) ||
			h.MF() && q.end >= 0 && end > q.end {
			return engine.NoMbuf, false, r.refuse(m, ErrFragment)
		}
		if t := &r.nodes[q.tail]; t.end <= off {
			prev = q.tail // in-order arrival: append
		} else {
			next := q.head
			for next != none && r.nodes[next].off < off {
				prev, next = next, r.nodes[next].next
			}
			if next != none && r.nodes[next].off == off && r.nodes[next].end == end {
				r.c.Duplicates++
				r.cs.Free(m)
				return engine.NoMbuf, false, ErrDuplicate
			}
			if prev != none && r.nodes[prev].end > off || next != none && r.nodes[next].off < end {
				r.c.Overlaps++
				r.cs.Free(m)
				return engine.NoMbuf, false, ErrOverlap
			}
		}
	}

	charge := m.Segs() * engine.BufSize
	held := 0
	if qi != none {
		held = r.queues[qi].held
	}
	if held+charge > r.limit {
		// This datagram cannot fit even alone: give it up now.
		if qi != none {
			r.c.MemoryDrops += uint64(r.dropQueue(qi))
			r.c.ReasmFails++
		}
		r.c.MemoryDrops++
		return engine.NoMbuf, false, r.refuse(m, ErrMemory)
	}
	for r.c.BytesHeld+charge > r.limit {
		victim := r.oldest
		if victim == qi {
			victim = r.queues[victim].next
		}
		r.c.MemoryDrops += uint64(r.dropQueue(victim))
		r.c.Evictions++
		r.c.ReasmFails++
	}
	if off > 0 {
		if m.Adj(int(hl)) != nil { // the header is in the first segment: parse checked
			return engine.NoMbuf, false, r.refuse(m, ErrFragment)
		}
	}
	segs := m.Segs()
	if r.acct != nil {
		for r.acct.Room() < segs {
			victim := r.oldest
			if victim != none && victim == qi {
				victim = r.queues[victim].next
			}
			if victim == none {
				break // only this datagram is held here: the rest is not ours to evict
			}
			r.c.MemoryDrops += uint64(r.dropQueue(victim))
			r.c.Evictions++
			r.c.ReasmFails++
		}
		if !r.acct.Charge(segs) {
			r.c.MemoryDrops++
			return engine.NoMbuf, false, r.refuse(m, ErrMemory)
		}
	}
	if qi == none {
		qi = r.newQueue(bucket, key, now)
	}
	ni := r.freeNode
	r.freeNode = r.nodes[ni].next
	r.nodes[ni] = fragNode{m: m, off: off, end: end, next: none}
	q := &r.queues[qi]
	if prev == none {
		r.nodes[ni].next = q.head
		q.head = ni
	} else {
		r.nodes[ni].next = r.nodes[prev].next
		r.nodes[prev].next = ni
	}
	if r.nodes[ni].next == none {
		q.tail = ni
	}
	q.held += charge
	q.segs += segs
	r.c.BytesHeld += charge
	q.have += end - off
	if !h.MF() {
		q.end = end
	}
	if off == 0 {
		q.hasFirst = true
	}
	if q.end < 0 || q.have != q.end {
		return engine.NoMbuf, false, nil
	}
	return r.complete(qi)
}

// refuse drops a fragment that cannot be used and counts why.
func (r *Reassembler) refuse(m engine.Mbuf, err error) error {
	r.cs.Free(m)
	if err != ErrMemory {
		r.c.Invalid++
	}
	r.c.ReasmFails++
	return err
}

// complete chains the fragments of a full datagram behind the first one's
// header, fixes the header and retires the queue, like ip_frag_reasm.
func (r *Reassembler) complete(qi int32) (engine.Mbuf, bool, error) {
	q := &r.queues[qi]
	first := r.nodes[q.head].m
	hl := int(first.Data()[0]&0x0f) * 4
	total := hl + int(q.end)
	if total > ipv4.MaxTotalLen { // the first fragment has a longer header than the last
		r.dropQueue(qi)
		r.c.ReasmFails++
		r.c.Invalid++
		return engine.NoMbuf, false, ErrTooBig
	}
	if !first.Writable() {
		// The first fragment's bytes are shared (a clone, external memory)
		// and its header is about to be rewritten: take a private copy of
		// the whole fragment, as ip_frag_reasm's skb_unclone does. Copying
		// only the header would leave the transport header out of the
		// first segment, where UDP and ICMP read it.
		c, err := r.copyFirst(first)
		if err != nil {
			r.dropQueue(qi)
			r.c.ReasmFails++
			return engine.NoMbuf, false, err
		}
		r.cs.Free(first)
		r.nodes[q.head].m = c
		first = c
	}
	// Chain back to front (reversing the list first) so each Chain walks
	// only its own segments. The pieces sum to total <= 65535, within the
	// engine's packet limit, so Chain cannot fail.
	var rev int32 = none
	for n := q.head; n != none; {
		next := r.nodes[n].next
		r.nodes[n].next = rev
		rev, n = n, next
	}
	acc := engine.NoMbuf
	for n := rev; n != none; n = r.nodes[n].next {
		m := r.nodes[n].m
		if acc != engine.NoMbuf {
			m.Chain(acc)
		}
		acc = m
	}
	hdr := first.Data()[:hl]
	binary.BigEndian.PutUint16(hdr[2:4], uint16(total))
	binary.BigEndian.PutUint16(hdr[6:8], binary.BigEndian.Uint16(hdr[6:8])&^(ipv4.FlagMF<<13|0x1fff))
	hdr[10], hdr[11] = 0, 0
	binary.BigEndian.PutUint16(hdr[10:12], ipv4.Checksum(hdr, 0))
	// A port cannot have checked the transport checksum of a whole
	// datagram from one fragment.
	first.SetFlags(first.Flags() &^ engine.FlagRxL4CsumGood)
	for n := rev; n != none; {
		next := r.nodes[n].next
		r.freeNodeAt(n)
		n = next
	}
	q.head, q.tail = none, none
	r.release(q)
	r.retire(qi)
	r.c.ReasmOKs++
	return first, true, nil
}

// copyFirst copies a datagram's first fragment into fresh mbufs of the
// reassembler's pool, keeping its offload flags and receive queue. The first
// segment of the copy holds the header and as much payload as fits.
func (r *Reassembler) copyFirst(m engine.Mbuf) (engine.Mbuf, error) {
	c, err := r.cs.Alloc(r.pool)
	if err != nil {
		return engine.NoMbuf, err
	}
	for seg := m; seg != engine.NoMbuf; seg = seg.Next() {
		if err := r.cs.AppendBytes(c, r.pool, seg.Data()); err != nil {
			r.cs.Free(c)
			return engine.NoMbuf, err
		}
	}
	c.SetFlags(m.Flags())
	c.SetRxInfo(m.Port(), m.Queue())
	return c, nil
}

// Expire abandons every datagram whose time is up and returns how many, like
// ip_expire. For each that had its first fragment, OnTimeout is called first.
func (r *Reassembler) Expire(now int64) int {
	n := 0
	for r.oldest != none && now >= r.queues[r.oldest].expires {
		qi := r.oldest
		if q := &r.queues[qi]; q.hasFirst && r.onTimeout != nil {
			r.onTimeout(r.nodes[q.head].m)
		}
		r.dropQueue(qi)
		r.c.Timeouts++
		r.c.ReasmFails++
		n++
	}
	return n
}

// Next is when the oldest datagram's time runs out, for a timer that calls
// Expire then; ok is false when nothing is held.
func (r *Reassembler) Next() (when int64, ok bool) {
	if r.oldest == none {
		return 0, false
	}
	return r.queues[r.oldest].expires, true
}

// Clear frees every fragment held, counting nothing, as a worker does when it
// stops.
func (r *Reassembler) Clear() {
	for r.oldest != none {
		r.dropQueue(r.oldest)
	}
}

// dropQueue frees a datagram's fragments and retires it; it returns the
// number of fragments freed.
func (r *Reassembler) dropQueue(qi int32) int {
	q := &r.queues[qi]
	k := 0
	for n := q.head; n != none; {
		next := r.nodes[n].next
		r.cs.Free(r.nodes[n].m)
		r.freeNodeAt(n)
		n = next
		k++
	}
	q.head, q.tail = none, none
	r.release(q)
	r.retire(qi)
	return k
}

// release gives back what a retiring datagram had charged.
func (r *Reassembler) release(q *reasmQueue) {
	r.c.BytesHeld -= q.held
	if r.acct != nil && q.segs > 0 {
		r.acct.Uncharge(q.segs)
	}
	q.held, q.segs = 0, 0
}

func (r *Reassembler) freeNodeAt(n int32) {
	r.nodes[n] = fragNode{m: engine.NoMbuf, next: r.freeNode}
	r.freeNode = n
}

func (r *Reassembler) bucket(k reasmKey) uint32 {
	x := k.addrs ^ r.seed
	x ^= uint64(k.idProto) * 0x9e3779b97f4a7c15
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x) & uint32(len(r.buckets)-1)
}

func (r *Reassembler) find(bucket uint32, k reasmKey) int32 {
	for qi := r.buckets[bucket]; qi != none; qi = r.queues[qi].hnext {
		if r.queues[qi].key == k {
			return qi
		}
	}
	return none
}

// newQueue takes a free queue, links it into its bucket and at the young end
// of the age list. The caller has made room, so one is free.
func (r *Reassembler) newQueue(bucket uint32, k reasmKey, now int64) int32 {
	qi := r.freeQ
	q := &r.queues[qi]
	r.freeQ = q.next
	expires := now + r.timeout
	if now > math.MaxInt64-r.timeout {
		expires = math.MaxInt64
	}
	*q = reasmQueue{
		key: k, hnext: r.buckets[bucket], prev: r.newest, next: none,
		head: none, tail: none, expires: expires, end: -1,
	}
	r.buckets[bucket] = qi
	if r.newest != none {
		r.queues[r.newest].next = qi
	} else {
		r.oldest = qi
	}
	r.newest = qi
	r.c.Queues++
	return qi
}

// retire unlinks an emptied queue from its bucket and the age list and puts
// it on the free list.
func (r *Reassembler) retire(qi int32) {
	q := &r.queues[qi]
	b := r.bucket(q.key)
	for p := &r.buckets[b]; *p != none; p = &r.queues[*p].hnext {
		if *p == qi {
			*p = q.hnext
			break
		}
	}
	if q.prev != none {
		r.queues[q.prev].next = q.next
	} else {
		r.oldest = q.next
	}
	if q.next != none {
		r.queues[q.next].prev = q.prev
	} else {
		r.newest = q.prev
	}
	*q = reasmQueue{next: r.freeQ, head: none, tail: none}
	r.freeQ = qi
	r.c.Queues--
}

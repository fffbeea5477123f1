// Package sndq is the sender's send buffer and retransmission queue of a TCP
// connection: the bytes the application wrote, from SND.UNA to the end of
// what was queued, held as mbuf references until they are acknowledged, and
// cut into packets for first transmissions and retransmissions alike.
//
// Read first: RFC 9293 section 3.3.1 (the send sequence space: SND.UNA,
// SND.NXT) and section 3.10.7.4 (an acknowledgement removes the data it
// covers from the retransmission queue).
//
// The queue never copies or writes payload. An entry is a sequence number, a
// queued packet and the offset and length of its bytes in that packet; an
// acknowledgement that ends inside an entry moves its offset. A packet built
// by Segment is a fresh head mbuf, empty but for its headroom, chained to
// clones of the queued segments that hold its bytes (read-only, sharing the
// buffers), so queued packets may be shared (Ref'd or cloned by the
// application, external memory) and in flight on a port's transmit ring
// while the queue still holds them.
//
// A Queue is owned by the goroutine of its connection's shard: no locks.
package sndq

import (
	"errors"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// Limits. DefaultLimit is Linux's tcp_wmem[1], the send buffer a socket
// starts with; MaxLimit keeps the queued bytes well inside half the
// sequence space.
const (
	DefaultLimit = 16 << 10
	MaxLimit     = 1 << 30

	// MaxSegment is the most payload one packet built by Segment carries:
	// an mbuf chain's limit less the head's headroom for headers.
	MaxSegment = engine.MaxPacket - engine.Headroom
)

// Errors. Append returns one without taking the caller's reference.
var (
	ErrInvalid = errors.New("tcp sndq: append: empty range or range beyond the packet")
	ErrFull    = errors.New("tcp sndq: append: over the send buffer")
	ErrRange   = errors.New("tcp sndq: segment: sequence number outside the queued data")
)

// Config sets up a Queue.
type Config struct {
	// Limit is the most payload bytes the queue holds: the socket's send
	// buffer (SO_SNDBUF, tcp_wmem). 0 means DefaultLimit; values above
	// MaxLimit are clamped.
	Limit int
	// Pool gives the head and clone mbufs of the packets Segment builds.
	Pool *engine.Pool
	// Free returns a queued packet once it is acknowledged: the shard's
	// engine.Caches.Free. nil means engine.Free, without a cache.
	Free func(engine.Mbuf)
	// Start is the sequence number of the first byte to be appended
	// (ISS+1): SND.UNA of the empty queue.
	Start seq.Value
}

// Counters are the queue's statistics.
type Counters struct {
	Appended uint64 // the number of buffers queued by Append
	Refused  uint64 // the number of appends refused for want of send buffer (ErrFull)
	Segments uint64 // the number of packets built by Segment
	NoMbufs  uint64 // the number of packets Segment could not build for want of mbufs
	Acked    uint64 // the number of queued buffers freed as wholly acknowledged
}

// entry is n bytes of the stream from sequence number s, found at offset off
// of the queued packet m. The queue holds one reference to m per entry.
type entry struct {
	s   seq.Value
	off uint32
	n   uint32
	m   engine.Mbuf
}

func (e *entry) end() seq.Value { return e.s.Add(seq.Size(e.n)) }

// Queue holds the unacknowledged and unsent bytes of a connection in
// sequence order, with no gaps: entry i+1 starts where entry i ends, the
// first starts at Una and the last ends at Nxt.
//
// Entries live in a ring whose size is a power of two; it doubles when full
// and never shrinks, so once it has reached the connection's high-water mark
// Append, Segment and Ack allocate nothing.
type Queue struct {
	limit int
	pool  *engine.Pool
	free  func(engine.Mbuf)

	ring  []entry // ring[(head+i)&(len(ring)-1)] is entry i
	head  int
	count int

	una, nxt seq.Value
	c        Counters
}

// Init sets up q, empty, dropping nothing: Purge a queue in use first.
func (q *Queue) Init(cfg Config) {
	*q = Queue{pool: cfg.Pool, free: cfg.Free, una: cfg.Start, nxt: cfg.Start}
	if q.free == nil {
		q.free = engine.Free
	}
	q.SetLimit(cfg.Limit)
}

// SetLimit changes the send buffer (auto-tuning, SO_SNDBUF). Lowering it
// below what is queued drops nothing; Append refuses until acks make room.
func (q *Queue) SetLimit(n int) {
	if n <= 0 {
		n = DefaultLimit
	}
	q.limit = min(n, MaxLimit)
}

// Counters returns the statistics.
func (q *Queue) Counters() Counters { return q.c }

// Una is the sequence number of the oldest queued byte (SND.UNA).
func (q *Queue) Una() seq.Value { return q.una }

// Nxt is the sequence number after the last queued byte.
func (q *Queue) Nxt() seq.Value { return q.nxt }

// Len is the number of bytes queued, sent or not.
func (q *Queue) Len() int { return int(q.nxt.Sub(q.una)) }

// Space is how many more bytes Append accepts now.
func (q *Queue) Space() int { return max(q.limit-q.Len(), 0) }

// Unsent is the number of queued bytes from sequence number from on: from
// is SND.NXT, or SND.UNA when the connection goes back to retransmit. A
// from below Una counts from Una; one at or past Nxt gives 0.
func (q *Queue) Unsent(from seq.Value) int {
	if from.LessThan(q.una) {
		return q.Len()
	}
	if q.nxt.LessEq(from) {
		return 0
	}
	return int(q.nxt.Sub(from))
}

func (q *Queue) at(i int) *entry { return &q.ring[(q.head+i)&(len(q.ring)-1)] }

// Append queues the n bytes at offset off of packet m, after every byte
// queued so far, and takes the caller's reference to m. On an error it takes
// nothing: the caller still owns m, and on ErrFull waits for Space (blocks,
// or returns EAGAIN) and tries again. The queue never writes m, so m may be
// shared.
func (q *Queue) Append(m engine.Mbuf, off, n int) error {
	if n <= 0 || off < 0 || off+n > m.PktLen() {
		return ErrInvalid
	}
	if n > q.Space() {
		q.c.Refused++
		return ErrFull
	}
	if q.count == len(q.ring) {
		q.grow()
	}
	*q.at(q.count) = entry{s: q.nxt, off: uint32(off), n: uint32(n), m: m}
	q.count++
	q.nxt = q.nxt.Add(seq.Size(n))
	q.c.Appended++
	return nil
}

func (q *Queue) grow() {
	r := make([]entry, max(2*len(q.ring), 16))
	for i := range q.count {
		r[i] = *q.at(i)
	}
	q.ring, q.head = r, 0
}

// find is the index of the entry that holds sequence number s, which lies in
// [Una, Nxt).
func (q *Queue) find(s seq.Value) int {
	lo, hi := 0, q.count-1
	for lo < hi {
		m := int(uint(lo+hi+1) >> 1)
		if q.at(m).s.LessEq(s) {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return lo
}

// Ack frees every queued byte below to (an acceptable SEG.ACK) and returns
// how many bytes that was. An entry wholly acknowledged is freed; one that
// to ends inside keeps its packet and moves its offset. A to at or below Una
// (a duplicate ack) or beyond Nxt (acking data never queued; the connection
// has rejected it already) frees nothing.
func (q *Queue) Ack(to seq.Value) int {
	if to.LessEq(q.una) || q.nxt.LessThan(to) {
		return 0
	}
	acked := int(to.Sub(q.una))
	for q.count > 0 {
		e := q.at(0)
		if to.LessThan(e.end()) {
			cut := uint32(to.Sub(e.s))
			e.off += cut
			e.n -= cut
			e.s = to
			break
		}
		q.free(e.m)
		*e = entry{}
		q.head = (q.head + 1) & (len(q.ring) - 1)
		q.count--
		q.c.Acked++
	}
	q.una = to
	return acked
}

// Purge frees everything queued (the connection is reset or closed) and
// leaves the queue empty at Nxt.
func (q *Queue) Purge() {
	for i := range q.count {
		e := q.at(i)
		q.free(e.m)
		*e = entry{}
	}
	q.head, q.count = 0, 0
	q.una = q.nxt
}

// Segment builds a packet carrying the queued bytes from sequence number s,
// at most mss of them (the MSS, or a TSO size up to MaxSegment), and
// returns it with the number of bytes n it carries: [s, s+n). It serves
// first transmissions (s is SND.NXT) and retransmissions (s anywhere in
// [Una, Nxt)) alike, as Linux's tcp_fragment and tcp_retransmit_skb make a
// packet of a part of the write queue.
//
// The packet's first mbuf is fresh from cs, with no data and all of its
// headroom for the caller to Prepend the TCP, IP and Ethernet headers; the
// payload follows in clones of just the queued segments that hold it
// (engine.Caches.CloneRange), each narrowed to its bytes and holding a
// reference on the buffer it reads. The caller owns the packet and frees
// it, with cs or on the port's transmit completion; the queue's buffers
// outlive it as long as it needs them.
func (q *Queue) Segment(s seq.Value, mss int, cs *engine.Caches) (engine.Mbuf, int, error) {
	if mss <= 0 || s.LessThan(q.una) || q.nxt.LessEq(s) {
		return engine.NoMbuf, 0, ErrRange
	}
	n := min(mss, MaxSegment, int(q.nxt.Sub(s)))
	h, err := cs.Alloc(q.pool)
	if err != nil {
		q.c.NoMbufs++
		return engine.NoMbuf, 0, err
	}
	left := n
	for i := q.find(s); left > 0; i++ {
		e := q.at(i)
		in := int(s.Sub(e.s))
		k := min(left, int(e.n)-in)
		c, err := cs.CloneRange(e.m, int(e.off)+in, k, q.pool)
		if err != nil {
			cs.Free(h)
			q.c.NoMbufs++
			return engine.NoMbuf, 0, err
		}
		_ = h.Chain(c) // at most MaxSegment bytes behind an empty head: never ErrTooLong
		s = s.Add(seq.Size(k))
		left -= k
	}
	q.c.Segments++
	return h, n, nil
}

// Package ofo is the receiver's out-of-order queue of a TCP connection: the
// segments that arrived beyond RCV.NXT, held as mbuf references until the
// hole before them fills, bounded in memory, and described to the sender in
// SACK and D-SACK blocks.
//
// Read first: RFC 9293 section 3.10.7.4 (segments beyond RCV.NXT are held
// for later processing), RFC 2018 section 4 (which SACK blocks a receiver
// reports, the most recent first), RFC 2883 section 4 (D-SACK: reporting a
// duplicate once, first).
//
// The queue never copies or writes payload: an entry is a sequence range,
// the mbuf that holds it and the offset of its first byte in that packet.
// Overlaps are resolved by moving an entry's offset and length, so a packet
// shared with another holder (a clone, a capture) is safe to queue.
//
// A Queue is owned by the goroutine of its connection's shard: no locks.
package ofo

import (
	"errors"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// Limits. DefaultLimit is Linux's tcp_rmem[1], the receive buffer a socket
// starts with; MaxLimit bounds the bookkeeping a queue may grow.
const (
	DefaultLimit = 128 << 10
	MaxLimit     = 1 << 30
)

// Insert errors. Insert returns one when it frees the segment it was given
// instead of holding it.
var (
	ErrInvalid   = errors.New("tcp ofo: insert: empty segment or payload beyond the packet")
	ErrDuplicate = errors.New("tcp ofo: insert: every byte already held")
	ErrMemory    = errors.New("tcp ofo: insert: over the receive buffer or the stack's bound")
)

// Accountant is the stack-wide bound on held receive buffers, shared with the
// other holders of packets that wait for something (IP reassembly, neighbour
// queues); it has frag.Accountant's method set, so one value serves both.
type Accountant interface {
	// Charge counts n more mbufs as held and reports true, or reports
	// false, counting nothing, when they would pass the bound.
	Charge(n int) bool
	// Uncharge gives back n mbufs charged earlier.
	Uncharge(n int)
	// Room is how many more mbufs may be charged now.
	Room() int
}

// Config sets up a Queue.
type Config struct {
	// Limit is the most buffer memory, in bytes, the queue may pin: the
	// socket's receive buffer. Each segment of a held packet counts
	// engine.BufSize, what it really keeps from the pool (Linux charges
	// skb->truesize). 0 means DefaultLimit; values above MaxLimit are
	// clamped.
	Limit int
	// Account, if set, is charged each held packet's segments as well.
	Account Accountant
	// Free returns a packet the queue lets go of: the shard's
	// engine.Caches.Free. nil means engine.Free, without a cache.
	Free func(engine.Mbuf)
}

// Entry is one held range of the byte stream: Len bytes from sequence number
// Seq, found at offset Off of the packet Mbuf. The queue holds one reference
// to Mbuf per entry; Take hands that reference to its caller.
type Entry struct {
	Seq  seq.Value
	Len  uint32
	Off  uint32
	Mbuf engine.Mbuf
	segs uint16 // mbufs charged for it
}

// End is the sequence number after the entry's last byte.
func (e *Entry) End() seq.Value { return e.Seq.Add(seq.Size(e.Len)) }

// Counters are the queue's statistics, named after Linux's netstat (TcpExt)
// counters where one exists.
type Counters struct {
	OFOQueue   uint64 // the number of segments queued (TCPOFOQueue)
	OFOMerge   uint64 // the number of segments freed because the queue held all their bytes: arrivals wholly held, held ones wholly covered by an arrival (TCPOFOMerge)
	Duplicates uint64 // the number of arrivals every byte of which was held already (also in OFOMerge); each sets a D-SACK
	OFODrop    uint64 // the number of arrivals refused for want of memory (TCPOFODrop)
	OFOPruned  uint64 // the number of times held segments were dropped from the top to make room (OfoPruned)
	PrunedSegs uint64 // the number of held segments those prunes dropped
	BytesHeld  int    // buffer bytes charged now
	Segments   int    // entries held now
}

// Queue holds out-of-order segments, sorted by sequence number and disjoint:
// no byte is held twice. It models Linux's tcp_data_queue_ofo (insertion),
// tcp_ofo_queue (draining into the receive queue) and tcp_prune_ofo_queue.
//
// Overlaps are resolved on insertion as Linux resolves them, keeping the
// data already queued: an arrival wholly held is freed (and D-SACKed); one
// that overlaps a held entry at either end is trimmed to the bytes it adds;
// a held entry that the arrival covers entirely is freed and replaced by
// the arrival, which then holds those bytes in one packet instead of many.
// Entries are never merged, since merging would mean copying.
//
// Entries live in one slice sorted by sequence; Take consumes from its
// front by moving a start index, most arrivals land at the end, and the
// slice grows only to its high-water mark (at most Limit/engine.BufSize
// entries, as every entry pins a buffer), so Insert and Take allocate
// nothing in steady state. An arrival in the middle costs a memmove of the
// entries above it, a few kilobytes at the largest receive buffers.
type Queue struct {
	limit int
	acct  Accountant
	free  func(engine.Mbuf)

	buf  []Entry // buf[head:] are the entries, sorted
	head int

	sack sackState
	c    Counters
}

// Init sets up q, empty.
func (q *Queue) Init(cfg Config) {
	*q = Queue{acct: cfg.Account, free: cfg.Free}
	if q.free == nil {
		q.free = engine.Free
	}
	q.SetLimit(cfg.Limit)
}

// SetLimit changes the byte limit (receive-buffer auto-tuning). Lowering it
// below what is held drops nothing; the caller prunes.
func (q *Queue) SetLimit(n int) {
	if n <= 0 {
		n = DefaultLimit
	}
	q.limit = min(n, MaxLimit)
}

// Counters returns the statistics.
func (q *Queue) Counters() Counters { return q.c }

// Len is the number of entries held.
func (q *Queue) Len() int { return len(q.buf) - q.head }

// Empty reports whether nothing is held.
func (q *Queue) Empty() bool { return q.Len() == 0 }

func (q *Queue) ents() []Entry { return q.buf[q.head:] }

// firstEndAfter is the index of the first entry that ends after s: those
// before it lie wholly at or below s.
func firstEndAfter(es []Entry, s seq.Value) int {
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.LessThan(es[m].End()) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// Insert queues the n payload bytes found at offset off of packet m, whose
// first byte has sequence number s. The caller has checked that s lies in
// the receive window beyond RCV.NXT, and gives up its reference to m: the
// queue holds it or frees it. On ErrDuplicate a D-SACK block is pending
// (DSACK); a partial overlap, held, sets one for the overlapping bytes.
//
// When the segment does not fit, held entries above it are dropped from the
// top first (counted in OFOPruned), since data nearer RCV.NXT is worth more,
// as tcp_prune_ofo_queue drops nothing below the segment it makes room for.
func (q *Queue) Insert(s seq.Value, m engine.Mbuf, off, n int) error {
	if n <= 0 || off < 0 || off+n > m.PktLen() {
		q.free(m)
		return ErrInvalid
	}
	origS, origE := s, s.Add(seq.Size(n))
	e := origE
	es := q.ents()
	var d dsackBuilder

	i := firstEndAfter(es, s)
	if i < len(es) && es[i].Seq.LessEq(s) {
		// The held entry i holds s: keep its bytes, trim the front.
		if e.LessEq(es[i].End()) {
			return q.duplicate(m, origS, origE)
		}
		held := es[i].End()
		d.add(s, held)
		off += int(held.Sub(s))
		s = held
		i++
	}
	// Entries i..j-1 lie wholly inside [s, e): replaced by the arrival.
	j, coveredLen, coveredSegs := i, 0, 0
	for j < len(es) && es[j].End().LessEq(e) {
		d.add(es[j].Seq, es[j].End())
		coveredLen += int(es[j].Len)
		coveredSegs += int(es[j].segs)
		j++
	}
	if j < len(es) && es[j].Seq.LessThan(e) {
		// The held entry j holds e-1: keep its bytes, trim the tail.
		d.add(es[j].Seq, e)
		e = es[j].Seq
	}
	if int(e.Sub(s)) == coveredLen {
		return q.duplicate(m, origS, origE)
	}

	segs := m.Segs()
	if !q.fits(segs, coveredSegs) {
		q.pruneAbove(origE, segs, coveredSegs)
		if !q.fits(segs, coveredSegs) {
			return q.refuse(m)
		}
		es = q.ents() // pruning left i..j in place
	}
	if q.acct != nil {
		// Charge the difference first, so that a refusal changes nothing.
		if net := segs - coveredSegs; net > 0 && !q.acct.Charge(net) {
			return q.refuse(m)
		} else if net < 0 {
			q.acct.Uncharge(-net)
		}
	}
	for k := i; k < j; k++ {
		q.c.BytesHeld -= int(es[k].segs) * engine.BufSize
		q.c.Segments--
		q.free(es[k].Mbuf)
		q.c.OFOMerge++
	}
	ent := Entry{Seq: s, Len: uint32(e.Sub(s)), Off: uint32(off), Mbuf: m, segs: uint16(segs)}
	if j > i {
		es[i] = ent
		q.removeRange(i+1, j)
	} else {
		q.insertAt(i, ent)
	}
	q.c.BytesHeld += segs * engine.BufSize
	q.c.Segments++
	q.c.OFOQueue++
	q.sack.held(origS, origE)
	if d.set {
		q.sack.setDSACK(d.start, d.end)
	}
	return nil
}

// fits reports whether a packet of segs mbufs fits once entries charged
// freed mbufs are released.
func (q *Queue) fits(segs, freed int) bool {
	if q.c.BytesHeld+(segs-freed)*engine.BufSize > q.limit {
		return false
	}
	return q.acct == nil || q.acct.Room()+freed >= segs
}

// pruneAbove drops entries that start at or after top, from the highest
// down, until a packet of segs mbufs fits.
func (q *Queue) pruneAbove(top seq.Value, segs, freed int) {
	dropped := false
	for !q.fits(segs, freed) && q.Len() > 0 {
		last := &q.buf[len(q.buf)-1]
		if last.Seq.LessThan(top) {
			break
		}
		q.dropLast()
		dropped = true
	}
	if dropped {
		q.c.OFOPruned++
	}
}

func (q *Queue) duplicate(m engine.Mbuf, s, e seq.Value) error {
	q.free(m)
	q.c.Duplicates++
	q.c.OFOMerge++
	q.sack.setDSACK(s, e)
	q.sack.touch(s)
	return ErrDuplicate
}

func (q *Queue) refuse(m engine.Mbuf) error {
	q.free(m)
	q.c.OFODrop++
	return ErrMemory
}

// release gives back what an entry was charged.
func (q *Queue) release(en *Entry) {
	q.c.BytesHeld -= int(en.segs) * engine.BufSize
	q.c.Segments--
	if q.acct != nil {
		q.acct.Uncharge(int(en.segs))
	}
}

// insertAt puts en at index i of the entries, shifting those above it.
func (q *Queue) insertAt(i int, en Entry) {
	if len(q.buf) == cap(q.buf) && q.head > 0 {
		n := copy(q.buf, q.buf[q.head:])
		q.buf = q.buf[:n]
		q.head = 0
	}
	q.buf = append(q.buf, Entry{})
	es := q.ents()
	copy(es[i+1:], es[i:])
	es[i] = en
}

// removeRange deletes entries i..j-1, already released and freed.
func (q *Queue) removeRange(i, j int) {
	if i >= j {
		return
	}
	es := q.ents()
	n := copy(es[i:], es[j:])
	q.buf = q.buf[:q.head+i+n]
}

// dropLast frees the highest entry.
func (q *Queue) dropLast() {
	last := q.buf[len(q.buf)-1]
	q.release(&last)
	q.free(last.Mbuf)
	q.buf = q.buf[:len(q.buf)-1]
	q.c.PrunedSegs++
	q.sack.dropTop(last.Seq, last.End())
	q.compactIfEmpty()
}

func (q *Queue) compactIfEmpty() {
	if q.head == len(q.buf) {
		q.buf = q.buf[:0]
		q.head = 0
	}
}

// Take moves to dst the held data that now continues the stream at rcvNxt,
// in order, and returns dst and the sequence number after the last byte it
// took (rcvNxt if none), which the caller makes its RCV.NXT. Entries that
// start at or before rcvNxt are taken with the bytes below rcvNxt trimmed
// off, and each one taken continues the run, so a filled hole drains every
// entry contiguous with it. Entries wholly below rcvNxt are freed (their
// bytes arrived twice: a D-SACK). Take appends at most cap(dst)-len(dst)
// entries, allocating nothing; the caller owns each entry's mbuf reference
// and calls again if dst was filled. As Linux's tcp_ofo_queue.
func (q *Queue) Take(rcvNxt seq.Value, dst []Entry) ([]Entry, seq.Value) {
	next := rcvNxt
	var d dsackBuilder
	for q.Len() > 0 {
		en := &q.buf[q.head]
		if next.LessThan(en.Seq) {
			break
		}
		end := en.End()
		if end.LessEq(next) {
			d.add(en.Seq, end)
			q.release(en)
			q.free(en.Mbuf)
			q.head++
			continue
		}
		if len(dst) == cap(dst) {
			break
		}
		if en.Seq.LessThan(next) {
			d.add(en.Seq, next)
			cut := next.Sub(en.Seq)
			en.Off += uint32(cut)
			en.Len -= uint32(cut)
			en.Seq = next
		}
		q.release(en)
		dst = append(dst, *en)
		next = end
		q.head++
	}
	q.compactIfEmpty()
	q.sack.taken(next)
	if d.set {
		q.sack.setDSACK(d.start, d.end)
	}
	return dst, next
}

// Prune drops held entries from the highest sequence down until at least
// goal bytes of charge are freed or nothing is left, and returns the bytes
// freed; the caller asks for what takes it back under its limit, as
// tcp_prune_ofo_queue does under memory pressure. Dropped data is no longer
// reported in SACK blocks (RFC 2018 section 8 lets a receiver renege).
func (q *Queue) Prune(goal int) int {
	freed := 0
	for freed < goal && q.Len() > 0 {
		freed += int(q.buf[len(q.buf)-1].segs) * engine.BufSize
		q.dropLast()
	}
	if freed > 0 {
		q.c.OFOPruned++
	}
	return freed
}

// Purge frees everything held and forgets the SACK state (the connection is
// closing or reset).
func (q *Queue) Purge() {
	for i := range q.ents() {
		en := &q.buf[q.head+i]
		q.release(en)
		q.free(en.Mbuf)
	}
	q.buf = q.buf[:0]
	q.head = 0
	q.sack.reset()
}

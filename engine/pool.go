package engine

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine/ring"
)

// Pool is a fixed set of mbufs carved from one pointer-free arena, with a
// shared free ring and per-goroutine caches in front of it (the design of
// rte_mempool and its per-lcore caches). Most gets and puts touch only the
// caller's cache; the shared ring is touched in bulk, once per CacheSize mbufs.
type Pool struct {
	id        uint8
	name      string
	size      int
	cacheSize int
	arena     []byte
	meta      []meta
	mem       packetMem
	ext       []extSeg // indexed like meta; set only on mbufs with flagExternal
	free      *ring.MPMC[Mbuf]
	dbg       debugInfo // the debug build's side table; empty otherwise

	// External buffers' shared records, made on the first NewExtBuf.
	sharedOnce sync.Once
	shared     []extShared
	sharedFree *ring.MPMC[uint32] // indices of unused records

	emptyEvents atomic.Uint64 // allocations refused because the pool was empty
	doubleFrees atomic.Uint64

	mu     sync.Mutex
	caches []*Cache // the open caches; Cache.Close removes one
}

var poolsMu sync.Mutex

// DefaultCacheSize is the per-goroutine cache size, as DPDK's usual 256.
const DefaultCacheSize = 256

// NewPool creates a pool of size mbufs. cacheSize is how many mbufs each
// goroutine's cache holds before it spills to the shared ring (0 means
// DefaultCacheSize, or an eighth of a small pool).
func NewPool(name string, size, cacheSize int) (*Pool, error) {
	if size < 1 || size > MaxPoolSize {
		return nil, fmt.Errorf("pool %q: size %d out of range 1..%d", name, size, MaxPoolSize)
	}
	if cacheSize == 0 {
		cacheSize = max(1, min(DefaultCacheSize, size/8))
	}
	if cacheSize < 1 || cacheSize > size {
		return nil, fmt.Errorf("pool %q: cache size %d out of range 1..%d (the pool size)", name, cacheSize, size)
	}
	ringSize := 2
	for ringSize < size {
		ringSize <<= 1
	}
	free, err := ring.NewMPMC[Mbuf](ringSize)
	if err != nil {
		return nil, err
	}
	mem, err := packetMemory(size)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", name, err)
	}
	p := &Pool{
		name:      name,
		size:      size,
		cacheSize: cacheSize,
		arena:     mem.arena,
		meta:      mem.metas,
		mem:       mem,
		ext:       make([]extSeg, size),
		free:      free,
	}
	if debug {
		p.debugInit()
	}
	poolsMu.Lock()
	id := -1
	for i, q := range pools[:maxPools] {
		if q == nil {
			id = i
			break
		}
	}
	if id < 0 {
		poolsMu.Unlock()
		mem.unmap()
		return nil, fmt.Errorf("pool %q: all %d pool slots in use; close unused pools", name, maxPools)
	}
	p.id = uint8(id)
	pools[id] = p
	poolsMu.Unlock()

	batch := make([]Mbuf, 0, 256)
	for i := 0; i < size; i++ {
		batch = append(batch, Mbuf(uint32(id)<<poolShift|uint32(i)))
		if len(batch) == cap(batch) || i == size-1 {
			free.EnqueueBulk(batch)
			batch = batch[:0]
		}
	}
	recordPoolMemory(p)
	return p, nil
}

// Close releases the pool's slot so a new pool may take it. Every mbuf of the
// pool must be back, and every external buffer made by it released, or Close
// refuses.
func (p *Pool) Close() error {
	if n := p.Available(); n != p.size {
		return fmt.Errorf("pool %q: %d of %d mbufs still in use", p.name, p.size-n, p.size)
	}
	if p.sharedFree != nil {
		if n := p.sharedFree.Len(); n != p.size {
			return fmt.Errorf("pool %q: %d external buffers still in use", p.name, p.size-n)
		}
	}
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if pools[p.id] == p {
		pools[p.id] = nil
		p.mem.unmap()
	}
	return nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Size is the number of mbufs in the pool.
func (p *Pool) Size() int { return p.size }

// EmptyEvents counts allocations refused because the pool was empty.
func (p *Pool) EmptyEvents() uint64 { return p.emptyEvents.Load() }

// DoubleFrees is the number of frees of an mbuf of this pool that was
// already free (its count 0), and of releases of an external buffer already
// released. Each was refused: the mbuf was not handed back a second time,
// and a chain was not followed past the free segment. The debug build panics
// at the first instead. A free of an mbuf that has been handed out again
// since is its new owner's as far as any count can tell, and is not seen.
func (p *Pool) DoubleFrees() uint64 { return p.doubleFrees.Load() }

// doubleFree counts a free of the free mbuf m, which panics in the debug
// build.
func (p *Pool) doubleFree(m Mbuf) {
	p.doubleFrees.Add(1)
	if debug {
		p.debugDoubleFree(m)
	}
}

// Available counts the free mbufs in the shared ring and in every cache. It
// reads the caches without synchronising with their owners, so it may only be
// called while no goroutine is using the pool, as at the end of a run.
func (p *Pool) Available() int {
	n := p.free.Len()
	p.mu.Lock()
	for _, c := range p.caches {
		n += len(c.objs)
	}
	p.mu.Unlock()
	return n
}

// reset prepares a freshly allocated mbuf.
func (p *Pool) reset(m Mbuf) {
	// One whole-line store; the count needs no atomic here because no
	// other goroutine can see an mbuf that is being handed out.
	p.meta[m.index()] = freshMeta
}

var freshMeta = meta{refcnt: 1, dataOff: Headroom, next: NoMbuf, direct: NoMbuf, tail: NoMbuf, nbSegs: 1}

// giveBack returns free mbufs to the shared ring. The ring holds the whole
// pool, so there is always room in the end; a burst can still come up short
// while a preempted consumer holds a slot it has claimed but not yet read.
func (p *Pool) giveBack(ms []Mbuf) {
	if n := p.free.EnqueueBurst(ms); n < len(ms) {
		enqueueAll(p.free, ms[n:], p.name)
	}
}

// giveBackPatience bounds how long enqueueAll waits for room in a free ring.
//
// Why a bound, then a panic: a free ring has a slot for every object of its
// pool, so a give-back can only come up short for two reasons. Either a
// consumer claimed slots and was preempted before reading them (the ring
// frees a slot only once it is read), which lasts as long as the operating
// system keeps that thread off a core: milliseconds, even on a loaded
// machine; or more objects are being given back than the pool holds, which
// is corruption (a double free the counts could not see) and never ends.
// Spinning for ever turns the second into a hang with no clue, so we retry
// for a time no preemption lasts, then panic and say why.
var giveBackPatience = time.Second

// enqueueAll puts every value into r, a free ring with room for all of its
// pool, retrying while a preempted consumer holds slots, and panics when
// there is still no room after giveBackPatience.
func enqueueAll[T any](r *ring.MPMC[T], vals []T, pool string) {
	var start int64
	for try := 0; ; try++ {
		vals = vals[r.EnqueueBurst(vals):]
		if len(vals) == 0 {
			return
		}
		if try < 64 {
			runtime.Gosched() // the consumer may be a goroutine on our thread
			continue
		}
		now := Nanotime()
		if start == 0 {
			start = now
		} else if time.Duration(now-start) > giveBackPatience {
			panic(fmt.Sprintf("engine: pool %q: free ring full for %v with %d still to give back: "+
				"the pool is being given more mbufs than it holds (a double free, or a corrupt handle)",
				pool, giveBackPatience, len(vals)))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Get takes one mbuf straight from the shared ring. Goroutines on a hot path
// use a Cache instead.
func (p *Pool) Get() (Mbuf, error) {
	m, ok := p.free.Dequeue()
	if !ok {
		p.emptyEvents.Add(1)
		return NoMbuf, ErrPoolEmpty
	}
	p.reset(m)
	return m, nil
}

// Cache is one goroutine's private stock of a pool's free mbufs, like an
// rte_mempool lcore cache. It must be used by one goroutine at a time.
type Cache struct {
	pool *Pool
	objs []Mbuf // free mbufs, len(objs) == n
	size int
}

// NewCache creates a cache for this pool, owned by the calling goroutine.
// Whoever stops using it closes it, or the pool keeps it for ever.
func (p *Pool) NewCache() *Cache {
	c := &Cache{pool: p, objs: make([]Mbuf, 0, 2*p.cacheSize+64), size: p.cacheSize}
	p.mu.Lock()
	p.caches = append(p.caches, c)
	p.mu.Unlock()
	return c
}

// Pool is the pool this cache serves.
func (c *Cache) Pool() *Pool { return c.pool }

// refill moves up to max(want, size) mbufs from the shared ring into the
// cache, as many as fit.
func (c *Cache) refill(want int) {
	k := len(c.objs)
	want = min(max(want, c.size), cap(c.objs)-k)
	got := c.pool.free.DequeueBurst(c.objs[k : k+want])
	c.objs = c.objs[:k+got]
}

// Get takes one mbuf.
func (c *Cache) Get() (Mbuf, error) {
	if len(c.objs) == 0 {
		c.refill(1)
		if len(c.objs) == 0 {
			c.pool.emptyEvents.Add(1)
			return NoMbuf, ErrPoolEmpty
		}
	}
	k := len(c.objs) - 1
	m := c.objs[k]
	c.objs = c.objs[:k]
	c.pool.reset(m)
	return m, nil
}

// GetBulk fills out with fresh mbufs, all or none.
func (c *Cache) GetBulk(out []Mbuf) error {
	if err := c.take(out); err != nil {
		return err
	}
	for _, m := range out {
		c.pool.reset(m)
	}
	return nil
}

// GetBulkReceived fills out with fresh mbufs, all or none, as GetBulk, each
// with a header that says it holds n bytes received on port and queue (the
// data bytes are left as they are). It is what a driver's receive burst
// makes of the buffers it hands out, written as one store per header where
// GetBulk, SetLen and SetRxInfo would take three passes. n is at most
// DataRoom; port and queue are at most 65535.
func (c *Cache) GetBulkReceived(out []Mbuf, n, port, queue int) error {
	if n < 0 || n > DataRoom {
		return ErrNoTailroom
	}
	if err := c.take(out); err != nil {
		return err
	}
	h := freshMeta
	h.dataLen, h.pktLen = uint16(n), uint32(n)
	h.port, h.queue = uint16(port), uint16(queue)
	metas := c.pool.meta
	for _, m := range out {
		metas[uint32(m)&indexMask] = h
	}
	return nil
}

// take moves len(out) free mbufs into out, all or none, without preparing
// their headers.
func (c *Cache) take(out []Mbuf) error {
	if len(out) > cap(c.objs) {
		// Larger than the cache can ever hold: straight from the ring.
		if !c.pool.free.DequeueBulk(out) {
			c.pool.emptyEvents.Add(1)
			return ErrPoolEmpty
		}
		return nil
	}
	if len(c.objs) < len(out) {
		c.refill(len(out) - len(c.objs))
		if len(c.objs) < len(out) {
			c.pool.emptyEvents.Add(1)
			return ErrPoolEmpty
		}
	}
	k := len(c.objs) - len(out)
	copy(out, c.objs[k:])
	c.objs = c.objs[:k]
	return nil
}

// put returns one free mbuf of this pool to the cache.
func (c *Cache) put(m Mbuf) {
	if len(c.objs) == cap(c.objs) {
		c.spill()
	}
	c.objs = append(c.objs, m)
	if len(c.objs) >= 2*c.size {
		c.spill()
	}
}

// spill moves the oldest mbufs beyond size back to the shared ring.
func (c *Cache) spill() {
	extra := len(c.objs) - c.size
	if extra <= 0 {
		return
	}
	c.pool.giveBack(c.objs[:extra])
	n := copy(c.objs, c.objs[extra:])
	c.objs = c.objs[:n]
}

// Flush returns everything in the cache to the shared ring, as a goroutine
// does when it stops.
func (c *Cache) Flush() {
	c.pool.giveBack(c.objs)
	c.objs = c.objs[:0]
}

// Close flushes the cache and unregisters it from its pool, for a goroutine
// or a socket that is done with it. A closed cache must not be used again;
// a Caches that held it makes a new one on its next use.
func (c *Cache) Close() {
	p := c.pool
	if p == nil {
		return
	}
	c.Flush()
	p.mu.Lock()
	if i := slices.Index(p.caches, c); i >= 0 {
		last := len(p.caches) - 1
		p.caches[i] = p.caches[last]
		p.caches[last] = nil
		p.caches = p.caches[:last]
	}
	p.mu.Unlock()
	c.pool = nil // every "c.pool == p" test fails: Caches replace it
	c.objs = nil
}

// Caches is one goroutine's caches for every pool it touches: a worker or a
// port queue owns one. Freeing routes each mbuf to the cache of its own pool.
type Caches struct {
	c [maxPools]*Cache
}

// For returns this goroutine's cache of pool p, creating it on first use.
func (cs *Caches) For(p *Pool) *Cache {
	c := cs.c[p.id]
	if c == nil || c.pool != p {
		c = p.NewCache()
		cs.c[p.id] = c
	}
	return c
}

// Alloc takes one mbuf from pool p.
func (cs *Caches) Alloc(p *Pool) (Mbuf, error) { return cs.For(p).Get() }

// AllocBulk fills out from pool p, all or none.
func (cs *Caches) AllocBulk(p *Pool, out []Mbuf) error { return cs.For(p).GetBulk(out) }

// Flush returns every cached mbuf to its pool's shared ring.
func (cs *Caches) Flush() {
	for _, c := range cs.c {
		if c != nil && c.pool != nil {
			c.Flush()
		}
	}
}

// Close closes every cache (see Cache.Close). The Caches may be used again;
// it then makes new caches.
func (cs *Caches) Close() {
	for i, c := range cs.c {
		if c != nil {
			c.Close()
			cs.c[i] = nil
		}
	}
}

// Free drops one reference to every segment of the packet m; segments whose
// last reference goes return to their pool (rte_pktmbuf_free). A nil Caches
// returns them straight to the shared ring.
//
// A segment found free already (count 0) is a double free: it is counted in
// its pool's DoubleFrees and the free stops there, since the free segment's
// link may lead into packets that others own by now.
func (cs *Caches) Free(m Mbuf) {
	for m != NoMbuf {
		p := pools[m>>poolShift]
		md := &p.meta[uint32(m)&indexMask]
		r := atomic.LoadInt32(&md.refcnt)
		if r <= 0 {
			p.doubleFree(m)
			return
		}
		next := md.next
		if r == 1 {
			// Sole owner: no other goroutine can see the count, so
			// skip the atomic read-modify-write, as
			// rte_pktmbuf_prefree_seg does; a plain store marks it free.
			md.refcnt = 0
			cs.release(m, md)
		} else if n := atomic.AddInt32(&md.refcnt, -1); n == 0 {
			cs.release(m, md)
		} else if n < 0 { // its holders freed it more often than it was referenced
			p.doubleFree(m)
			return
		}
		m = next
	}
}

// FreeBulk frees every packet in ms.
func (cs *Caches) FreeBulk(ms []Mbuf) {
	if cs == nil {
		for _, m := range ms {
			cs.Free(m)
		}
		return
	}
	// The pool of the previous packet and this goroutine's cache of it
	// (nil when there is none), looked up once per run of packets from
	// one pool rather than once per packet.
	var last *Pool
	var c *Cache
	for _, m := range ms {
		// Fast path: a lone segment that owns its buffer and has one
		// reference goes straight onto this goroutine's cache.
		p := pools[m>>poolShift]
		md := &p.meta[uint32(m)&indexMask]
		if md.next == NoMbuf && md.direct == NoMbuf && md.flags&flagExternal == 0 && atomic.LoadInt32(&md.refcnt) == 1 {
			if p != last {
				last, c = p, cs.c[p.id]
				if c != nil && c.pool != p {
					c = nil
				}
			}
			if c != nil && len(c.objs) < 2*c.size {
				md.refcnt = 0 // free; the sole owner needs no atomic store
				if debug {
					p.debugFreed(m)
				}
				c.objs = append(c.objs, m)
				continue
			}
		}
		cs.Free(m)
		last = nil // Free may have made a cache, or spilled one
	}
}

// release returns a segment with no references left (its count already 0)
// to its pool, after letting go of whatever buffer it borrowed.
func (cs *Caches) release(m Mbuf, md *meta) {
	if md.direct != NoMbuf {
		d := md.direct
		md.direct = NoMbuf
		dp := d.pool()
		dm := &dp.meta[d.index()]
		// Only this segment is released: the direct mbuf's own chain
		// belongs to whoever holds it.
		switch n := atomic.AddInt32(&dm.refcnt, -1); {
		case n == 0:
			cs.release(d, dm)
		case n < 0:
			dp.doubleFree(d)
		}
	}
	p := m.pool()
	if md.flags&flagExternal != 0 {
		e := &p.ext[m.index()]
		sh := e.shared
		*e = extSeg{}
		md.flags &^= flagExternal
		sh.put()
	}
	if debug {
		p.debugFreed(m)
	}
	if cs == nil {
		p.giveBack([]Mbuf{m})
		return
	}
	cs.For(p).put(m)
}

// Free frees a packet without a cache, for code off the hot path.
func Free(m Mbuf) { (*Caches)(nil).Free(m) }

// Ref adds one reference to every segment of m, so that two holders (say a
// socket's retransmit queue and a port's transmit ring) can each free it.
// The holders share the headers as well as the bytes: Append and Prepend
// refuse the packet (ErrShared), and neither holder may change its headers
// (Adj, Trim, Chain, AppendBytes); one that needs to takes a Clone instead.
func Ref(m Mbuf) {
	for ; m != NoMbuf; m = m.meta().next {
		if debug {
			m.pool().checkLive(m, m.meta())
		}
		atomic.AddInt32(&m.meta().refcnt, 1)
	}
}

// Clone returns a new packet whose segments share m's data without copying
// it (rte_pktmbuf_clone). Each clone segment has its own offsets, so a clone
// can be trimmed or adjusted without touching m; neither may write the shared
// bytes. The clone's headers come from p through cs.
func (cs *Caches) Clone(m Mbuf, p *Pool) (Mbuf, error) {
	head, tail := NoMbuf, NoMbuf
	for s := m; s != NoMbuf; s = s.meta().next {
		if debug {
			s.pool().checkLive(s, s.meta())
		}
		c, err := cs.Alloc(p)
		if err != nil {
			if head != NoMbuf {
				cs.Free(head)
			}
			return NoMbuf, err
		}
		sm, cm := s.meta(), c.meta()
		owner := s
		if sm.direct != NoMbuf {
			owner = sm.direct
		}
		atomic.AddInt32(&owner.meta().refcnt, 1)
		cm.direct = owner
		cm.dataOff, cm.dataLen = sm.dataOff, sm.dataLen
		cm.flags = sm.flags &^ flagExternal
		cm.hash, cm.port, cm.queue = sm.hash, sm.port, sm.queue
		cm.tsoSegSize, cm.l2Len, cm.l3Len, cm.l4Len = sm.tsoSegSize, sm.l2Len, sm.l3Len, sm.l4Len
		cm.stamp = sm.stamp
		if head == NoMbuf {
			head = c
			cm.pktLen, cm.nbSegs = sm.pktLen, sm.nbSegs
		} else {
			tail.meta().next = c
			head.meta().tail = c
		}
		tail = c
	}
	return head, nil
}

// AppendBytes copies b onto the end of the packet m, chaining new segments
// from p when the last one is full or not writable (a clone's, or external
// memory): a shared buffer is never written.
func (cs *Caches) AppendBytes(m Mbuf, p *Pool, b []byte) error {
	if m.PktLen()+len(b) > MaxPacket {
		return ErrTooLong
	}
	seg := m.last()
	for len(b) > 0 {
		if seg.Tailroom() == 0 { // full, or shared: a segment of our own
			s, err := cs.Alloc(p)
			if err != nil {
				return err
			}
			if err := m.Chain(s); err != nil { // shared (length checked above)
				cs.Free(s)
				return err
			}
			seg = s
		}
		k := min(seg.Tailroom(), len(b))
		dst, err := m.Append(k)
		if err != nil {
			return err
		}
		copy(dst, b[:k])
		b = b[k:]
	}
	return nil
}

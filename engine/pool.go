package engine

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

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
	unmap     func()
	ext       []extBuf // indexed like meta; set only on mbufs with flagExternal
	free      *ring.MPMC[Mbuf]

	emptyEvents atomic.Uint64 // allocations refused because the pool was empty

	mu     sync.Mutex
	caches []*Cache
}

// extBuf is memory the pool does not own, attached to an mbuf, and the
// function that hands it back when the last reference to it is gone.
type extBuf struct {
	data    []byte
	release func()
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
	arena, metas, unmap, err := packetMemory(size)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", name, err)
	}
	p := &Pool{
		name:      name,
		size:      size,
		cacheSize: cacheSize,
		arena:     arena,
		meta:      metas,
		unmap:     unmap,
		ext:       make([]extBuf, size),
		free:      free,
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
		unmap()
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
	return p, nil
}

// Close releases the pool's slot so a new pool may take it. Every mbuf of the
// pool must be back, or Close refuses.
func (p *Pool) Close() error {
	if n := p.Available(); n != p.size {
		return fmt.Errorf("pool %q: %d of %d mbufs still in use", p.name, p.size-n, p.size)
	}
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if pools[p.id] == p {
		pools[p.id] = nil
		p.unmap()
	}
	return nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Size is the number of mbufs in the pool.
func (p *Pool) Size() int { return p.size }

// EmptyEvents counts allocations refused because the pool was empty.
func (p *Pool) EmptyEvents() uint64 { return p.emptyEvents.Load() }

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

var freshMeta = meta{refcnt: 1, dataOff: Headroom, next: NoMbuf, direct: NoMbuf, nbSegs: 1}

// giveBack returns free mbufs to the shared ring. The ring holds the whole
// pool, so there is always room in the end; a burst can still come up short
// while a preempted consumer holds a slot it has claimed but not yet read.
func (p *Pool) giveBack(ms []Mbuf) {
	for len(ms) > 0 {
		n := p.free.EnqueueBurst(ms)
		ms = ms[n:]
		if len(ms) > 0 {
			runtime.Gosched()
		}
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
	if len(out) > cap(c.objs) {
		// Larger than the cache can ever hold: straight from the ring.
		if !c.pool.free.DequeueBulk(out) {
			c.pool.emptyEvents.Add(1)
			return ErrPoolEmpty
		}
	} else {
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
	}
	for _, m := range out {
		c.pool.reset(m)
	}
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
		if c != nil {
			c.Flush()
		}
	}
}

// Free drops one reference to every segment of the packet m; segments whose
// last reference goes return to their pool (rte_pktmbuf_free). A nil Caches
// returns them straight to the shared ring.
func (cs *Caches) Free(m Mbuf) {
	for m != NoMbuf {
		md := m.meta()
		next := md.next
		// Sole owner: no other goroutine can see the count, so skip the
		// atomic read-modify-write, as rte_pktmbuf_prefree_seg does.
		if atomic.LoadInt32(&md.refcnt) == 1 || atomic.AddInt32(&md.refcnt, -1) == 0 {
			cs.release(m, md)
		}
		m = next
	}
}

// FreeBulk frees every packet in ms.
func (cs *Caches) FreeBulk(ms []Mbuf) {
	for _, m := range ms {
		// Fast path: a lone segment that owns its buffer and has one
		// reference goes straight onto this goroutine's cache.
		p := pools[m>>poolShift]
		md := &p.meta[uint32(m)&indexMask]
		if cs != nil && md.next == NoMbuf && md.direct == NoMbuf && md.flags&flagExternal == 0 && atomic.LoadInt32(&md.refcnt) == 1 {
			if c := cs.c[p.id]; c != nil && c.pool == p && len(c.objs) < 2*c.size {
				c.objs = append(c.objs, m)
				continue
			}
		}
		cs.Free(m)
	}
}

// release returns a segment with no references left to its pool, after
// letting go of whatever buffer it borrowed.
func (cs *Caches) release(m Mbuf, md *meta) {
	if md.direct != NoMbuf {
		d := md.direct
		md.direct = NoMbuf
		dm := d.meta()
		// Only this segment is released: the direct mbuf's own chain
		// belongs to whoever holds it.
		if atomic.AddInt32(&dm.refcnt, -1) == 0 {
			cs.release(d, dm)
		}
	}
	p := m.pool()
	if md.flags&flagExternal != 0 {
		e := &p.ext[m.index()]
		fn := e.release
		*e = extBuf{}
		md.flags &^= flagExternal
		if fn != nil {
			fn()
		}
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
func Ref(m Mbuf) {
	for ; m != NoMbuf; m = m.meta().next {
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
		}
		tail = c
	}
	return head, nil
}

// AttachExternal returns an mbuf whose data is buf, memory the pool does not
// own (file pages for sendfile, say). release runs once, when the last
// reference to the mbuf or to any clone of it is dropped; it may be nil.
func (cs *Caches) AttachExternal(p *Pool, buf []byte, release func()) (Mbuf, error) {
	if len(buf) > 0xffff {
		return NoMbuf, fmt.Errorf("mbuf: external buffer of %d bytes is over the 65535-byte segment limit", len(buf))
	}
	m, err := cs.Alloc(p)
	if err != nil {
		return NoMbuf, err
	}
	md := m.meta()
	p.ext[m.index()] = extBuf{data: buf, release: release}
	md.flags |= flagExternal
	md.dataOff = 0
	md.dataLen = uint16(len(buf))
	md.pktLen = uint32(len(buf))
	return m, nil
}

// AppendBytes copies b onto the end of the packet m, chaining new segments
// from p when the last one fills up.
func (cs *Caches) AppendBytes(m Mbuf, p *Pool, b []byte) error {
	if m.PktLen()+len(b) > MaxPacket {
		return ErrTooLong
	}
	seg := m.last()
	for len(b) > 0 {
		if seg.Tailroom() == 0 {
			s, err := cs.Alloc(p)
			if err != nil {
				return err
			}
			m.Chain(s) // length checked above
			seg = s
		}
		k := min(seg.Tailroom(), len(b))
		dst, _ := m.Append(k)
		copy(dst, b[:k])
		b = b[k:]
	}
	return nil
}

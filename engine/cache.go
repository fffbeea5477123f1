package engine

import "slices"

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

// Len is the number of free mbufs in the cache (rte_mempool_cache's len).
// Only the cache's goroutine may ask.
func (c *Cache) Len() int { return len(c.objs) }

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

package engine

import "sync/atomic"

// Freeing. A segment's count is the number of its holders: 1 when it is
// handed out, one more for each Ref and for each clone segment whose buffer
// it lends (a clone's direct). Each holder drops one with Free; the segment
// goes back to its pool when the count reaches 0, after dropping the count
// of the buffer it borrowed, if any. A count already at 0, or one a free
// takes below 0, is a double free: counted, and the free goes no further.

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

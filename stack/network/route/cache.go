package route

import "sync/atomic"

// Gen is the number of snapshots the table has published: it changes with
// every change of its routes, after the new snapshot is in place.
func (t *Table) Gen() uint64 { return t.gen.Load() }

// Gen is a generation number of the pair of tables: it grows whenever
// either publishes a snapshot, so a result looked up while Gen read g is
// still the answer as long as Gen still reads g (the role of Linux's
// rt_genid and fnhe_genid, which invalidate cached dst entries).
//
// It is the sum of the tables' own numbers. Each only grows, so an
// unchanged sum means neither moved; and each moves after its snapshot is
// stored, so a lookup made after reading the sum sees every change the sum
// counts.
func (rs *Routes) Gen() uint64 {
	var g uint64
	if rs.Local != nil {
		g += rs.Local.Gen()
	}
	if rs.Main != nil {
		g += rs.Main.Gen()
	}
	return g
}

// Cache remembers the route to one destination for a sender that keeps
// sending there, as a connected socket keeps its dst_entry (sk_dst_cache):
// a hit costs two atomic loads instead of a lookup, and any change to the
// tables makes the next use look up again. A Cache serves one Routes. It is
// safe for concurrent use; its zero value is empty and ready.
type Cache struct {
	e atomic.Pointer[cacheEntry]
}

// cacheEntry is one immutable answer: replaced whole, never written in
// place, so readers on other goroutines need no lock.
type cacheEntry struct {
	gen uint64
	dst [4]byte
	r   Result
	ok  bool
}

// LookupCached is Lookup4 through c: the remembered answer while the tables
// are unchanged (Gen) and dst is the destination it was for, else a fresh
// lookup, which c then remembers. A hit allocates nothing; a miss
// allocates one small entry. A nil c always looks up.
func (rs *Routes) LookupCached(c *Cache, dst [4]byte) (Result, bool) {
	if c == nil {
		return rs.Lookup4(dst)
	}
	g := rs.Gen() // before the lookup: a change after it forces a miss next time
	if e := c.e.Load(); e != nil && e.gen == g && e.dst == dst {
		return e.r, e.ok
	}
	r, ok := rs.Lookup4(dst)
	c.e.Store(&cacheEntry{gen: g, dst: dst, r: r, ok: ok})
	return r, ok
}

// Reset forgets the remembered route.
func (c *Cache) Reset() { c.e.Store(nil) }

package engine

import "testing"

func TestClosedCachesAreForgotten(t *testing.T) {
	p := newTestPool(t, 64, 8)
	for i := 0; i < 10000; i++ {
		var cs Caches
		m, err := cs.Alloc(p)
		if err != nil {
			t.Fatal(err)
		}
		cs.Free(m)
		cs.Close()
		c := p.NewCache()
		m, err = c.Get()
		if err != nil {
			t.Fatal(err)
		}
		Free(m)
		c.Close()
	}
	p.mu.Lock()
	n := len(p.caches)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("the pool keeps %d closed caches", n)
	}
	if p.Available() != 64 {
		t.Fatalf("closing caches lost mbufs: available %d", p.Available())
	}
}

func TestCachesServeAgainAfterClose(t *testing.T) {
	p := newTestPool(t, 64, 8)
	var cs Caches
	m, _ := cs.Alloc(p)
	cs.Close()
	cs.Free(m) // a new cache takes it
	if p.Available() != 64 {
		t.Fatalf("available %d", p.Available())
	}
	cs.Close()
	p.mu.Lock()
	n := len(p.caches)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d caches left after Close", n)
	}
}

// GetBulkReceived hands out fresh mbufs whose headers already say what was
// received, all or none, and allocates nothing.
func TestGetBulkReceivedWritesTheReceiveHeader(t *testing.T) {
	p := newTestPool(t, 64, 8)
	c := p.NewCache()
	defer c.Close()
	pkts := make([]Mbuf, Burst)
	// A used mbuf comes back with a header that says nothing of its past.
	m, _ := c.Get()
	m.Append(100)
	m.SetHash(7)
	m.SetHeaderLens(14, 20, 8)
	Free(m)
	if err := c.GetBulkReceived(pkts, 60, 3, 2); err != nil {
		t.Fatal(err)
	}
	for _, m := range pkts {
		l2, l3, l4 := m.HeaderLens()
		if m.Len() != 60 || m.PktLen() != 60 || m.Port() != 3 || m.Queue() != 2 || m.Segs() != 1 || m.Refs() != 1 ||
			m.Flags() != 0 || m.Hash() != 0 || l2+l3+l4 != 0 || m.Next() != NoMbuf || !m.Writable() || m.Headroom() != Headroom {
			t.Fatalf("%v: len %d/%d port %d queue %d segs %d refs %d flags %x hash %d", m, m.Len(), m.PktLen(), m.Port(),
				m.Queue(), m.Segs(), m.Refs(), m.Flags(), m.Hash())
		}
	}
	more := make([]Mbuf, 33)
	if err := c.GetBulkReceived(more, 60, 0, 0); err == nil {
		t.Fatal("33 from the 32 left succeeded")
	}
	if err := c.GetBulkReceived(more[:1], DataRoom+1, 0, 0); err != ErrNoTailroom {
		t.Fatalf("a frame longer than the data room: %v", err)
	}
	var cs Caches
	defer cs.Close()
	cs.FreeBulk(pkts)
	if n := p.Available(); n != 64 {
		t.Fatalf("available %d after a refused bulk", n)
	}
	allocs := testing.AllocsPerRun(100, func() {
		c.GetBulkReceived(pkts, 60, 0, 0)
		cs.FreeBulk(pkts)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per burst", allocs)
	}
}

// FreeBulk of a burst that mixes pools, a chain and a shared mbuf frees each
// to its own pool.
func TestFreeBulkMixedPools(t *testing.T) {
	a, b := newTestPool(t, 64, 8), newTestPool(t, 64, 8)
	var cs Caches
	defer cs.Close()
	var burst []Mbuf
	for i := 0; i < 40; i++ {
		p := a
		if i%3 == 0 {
			p = b
		}
		m, err := cs.Alloc(p)
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, m)
	}
	chain, _ := cs.Alloc(a)
	tail, _ := cs.Alloc(b)
	chain.Chain(tail)
	shared, _ := cs.Alloc(b)
	Ref(shared)
	burst = append(burst, chain, shared)
	cs.Close() // the free below starts with no caches at all
	cs.FreeBulk(burst)
	if shared.Refs() != 1 {
		t.Fatalf("shared mbuf has %d references after one free", shared.Refs())
	}
	cs.Free(shared)
	if a.Available() != 64 || b.Available() != 64 || a.DoubleFrees()+b.DoubleFrees() != 0 {
		t.Fatalf("available %d and %d, double frees %d", a.Available(), b.Available(), a.DoubleFrees()+b.DoubleFrees())
	}
}

func TestBulkAllOrNone(t *testing.T) {
	p := newTestPool(t, 100, 16)
	var cs Caches
	big := make([]Mbuf, 101)
	if err := cs.AllocBulk(p, big); err == nil {
		t.Fatal("bulk of 101 from a pool of 100 succeeded")
	}
	if p.Available() != 100 {
		t.Fatalf("failed bulk lost mbufs: available %d", p.Available())
	}
	some := make([]Mbuf, 60)
	if err := cs.AllocBulk(p, some); err != nil {
		t.Fatal(err)
	}
	seen := map[Mbuf]bool{}
	for _, m := range some {
		if seen[m] {
			t.Fatalf("%v handed out twice", m)
		}
		seen[m] = true
	}
	cs.FreeBulk(some)
	cs.Flush()
}

func TestAllocFreeAllocatesNothing(t *testing.T) {
	p := newTestPool(t, 1024, 64)
	var cs Caches
	defer cs.Flush()
	burst := make([]Mbuf, Burst)
	cs.AllocBulk(p, burst) // warm the cache
	cs.FreeBulk(burst)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := cs.AllocBulk(p, burst); err != nil {
			t.Fatal(err)
		}
		for _, m := range burst {
			m.Append(60)
			m.Prepend(14)
		}
		cs.FreeBulk(burst)
	})
	if allocs != 0 {
		t.Fatalf("alloc/free burst allocates %v objects, want 0", allocs)
	}
}

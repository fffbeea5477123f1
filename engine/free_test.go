package engine

import (
	"strings"
	"testing"
	"time"
)

// allocAll takes every mbuf of p and fails the test if one comes out twice.
func allocAll(t *testing.T, cs *Caches, p *Pool) []Mbuf {
	t.Helper()
	seen := map[Mbuf]bool{}
	var got []Mbuf
	for {
		m, err := cs.Alloc(p)
		if err != nil {
			break
		}
		if seen[m] {
			t.Fatalf("%v handed out twice", m)
		}
		seen[m] = true
		got = append(got, m)
	}
	if len(got) != p.Size() {
		t.Fatalf("took %d mbufs from a pool of %d", len(got), p.Size())
	}
	return got
}

func TestDoubleFreeIsCountedAndRefused(t *testing.T) {
	if debug {
		t.Skip("the debug build panics on a double free instead")
	}
	p := newTestPool(t, 8, 2) // a power of two: the free ring holds exactly the pool
	var cs Caches
	m, _ := cs.Alloc(p)
	m.Append(10)
	cs.Free(m)
	if m.Refs() != 0 {
		t.Fatalf("a freed mbuf has %d references, want 0", m.Refs())
	}
	cs.Free(m)                // through the cache
	cs.FreeBulk([]Mbuf{m, m}) // through the bulk fast path
	Free(m)                   // straight to the ring
	if n := p.DoubleFrees(); n != 4 {
		t.Fatalf("DoubleFrees = %d, want 4", n)
	}
	cs.Flush() // spun for ever when the ring was handed more than the pool
	if p.Available() != 8 {
		t.Fatalf("available %d, want 8", p.Available())
	}
	cs.FreeBulk(allocAll(t, &cs, p))
	cs.Flush()
}

func TestDoubleFreeOfAChainStopsAtTheFreedHead(t *testing.T) {
	if debug {
		t.Skip("the debug build panics on a double free instead")
	}
	p := newTestPool(t, 16, 4)
	var cs Caches
	m := fillChain(t, &cs, p, 3*DataRoom)
	s1, s2 := m.Next(), m.Next().Next()
	cs.Free(m)
	// The freed chain's tail segments go to new owners while the old head
	// stays free; a second free of the head must not follow its stale
	// links into their packets.
	var owned []Mbuf
	for len(owned) < 2 {
		o, err := cs.Alloc(p)
		if err != nil || o == m {
			t.Fatalf("alloc gave %v, %v: the cache no longer hands out the last freed first", o, err)
		}
		owned = append(owned, o)
	}
	if !(owned[0] == s2 && owned[1] == s1) {
		t.Fatalf("took %v, want the old segments %v and %v", owned, s2, s1)
	}
	cs.Free(m)
	if n := p.DoubleFrees(); n != 1 {
		t.Fatalf("DoubleFrees = %d, want 1", n)
	}
	for _, o := range owned {
		if o.Refs() != 1 {
			t.Fatalf("%v lost its new owner's reference to a stale free", o)
		}
	}
	cs.FreeBulk(owned)
	cs.Flush()
	if p.Available() != 16 {
		t.Fatalf("available %d", p.Available())
	}
}

func TestDoubleFreeOfADirectMbufHeldByACloneIsCounted(t *testing.T) {
	if debug {
		t.Skip("the debug build panics on a double free instead")
	}
	p := newTestPool(t, 8, 2)
	var cs Caches
	m, _ := cs.Alloc(p)
	c, err := cs.Clone(m, p)
	if err != nil {
		t.Fatal(err)
	}
	cs.Free(c)
	cs.Free(m)
	cs.Free(c)
	cs.Free(m)
	if n := p.DoubleFrees(); n != 2 {
		t.Fatalf("DoubleFrees = %d, want 2", n)
	}
	cs.FreeBulk(allocAll(t, &cs, p))
	cs.Flush()
}

func TestGiveBackOfMoreThanThePoolPanicsInsteadOfSpinning(t *testing.T) {
	p := newTestPool(t, 8, 2)
	old := giveBackPatience
	giveBackPatience = 20 * time.Millisecond
	defer func() { giveBackPatience = old }()
	m, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	// Smuggle an mbuf into the full ring behind the free checks, as a
	// corruption the counts cannot see would.
	extra := []Mbuf{m, m}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		p.giveBack(extra)
	}()
	select {
	case r := <-done:
		s, _ := r.(string)
		if !strings.Contains(s, "more mbufs than it holds") {
			t.Fatalf("giveBack of too many mbufs: recovered %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("giveBack of more mbufs than the pool holds spins for ever")
	}
	// One copy of m went in before the ring filled: the pool is whole.
	if p.Available() != 8 {
		t.Fatalf("available %d", p.Available())
	}
}

func TestFreeAllocatesNothingAndMarksTheMbufFree(t *testing.T) {
	p := newTestPool(t, 64, 8)
	var cs Caches
	defer cs.Flush()
	burst := make([]Mbuf, 8)
	cs.AllocBulk(p, burst)
	cs.FreeBulk(burst)
	for _, m := range burst {
		if m.Refs() != 0 {
			t.Fatalf("%v freed through the bulk fast path has %d references", m, m.Refs())
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		m, _ := cs.Alloc(p)
		c, _ := cs.Clone(m, p)
		cs.Free(m)
		cs.Free(c)
	})
	if allocs != 0 {
		t.Fatalf("alloc, clone and free allocate %v objects, want 0", allocs)
	}
}

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

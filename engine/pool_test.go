package engine

import (
	"errors"
	"sync"
	"testing"
)

func newTestPool(t testing.TB, size, cache int) *Pool {
	t.Helper()
	p, err := NewPool(t.Name(), size, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("pool leak: %v", err)
		}
	})
	return p
}

func TestPoolGeometry(t *testing.T) {
	if BufSize%64 != 0 {
		t.Fatalf("BufSize %d is not a multiple of a cache line", BufSize)
	}
	var cs Caches
	p := newTestPool(t, 4, 2)
	m, err := cs.Alloc(p)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Flush()
	defer cs.Free(m)
	if m.Headroom() != Headroom || m.Tailroom() != DataRoom || m.Len() != 0 || m.PktLen() != 0 || m.Segs() != 1 || m.Refs() != 1 {
		t.Fatalf("fresh mbuf: headroom %d tailroom %d len %d pktlen %d segs %d refs %d",
			m.Headroom(), m.Tailroom(), m.Len(), m.PktLen(), m.Segs(), m.Refs())
	}
	if !m.Writable() {
		t.Fatal("fresh mbuf not writable")
	}
}

func TestPoolBadSizes(t *testing.T) {
	for _, c := range []struct{ size, cache int }{{0, 0}, {-1, 0}, {MaxPoolSize + 1, 0}, {8, 9}, {8, -1}} {
		if p, err := NewPool("bad", c.size, c.cache); err == nil {
			p.Close()
			t.Errorf("NewPool(%d, %d) accepted", c.size, c.cache)
		}
	}
}

func TestPoolEmptyIsAnErrorAndACounter(t *testing.T) {
	p := newTestPool(t, 8, 4)
	var cs Caches
	var got []Mbuf
	for i := 0; i < 8; i++ {
		m, err := cs.Alloc(p)
		if err != nil {
			t.Fatalf("alloc %d: %v", i, err)
		}
		got = append(got, m)
	}
	if _, err := cs.Alloc(p); !errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("alloc from empty pool: %v, want ErrPoolEmpty", err)
	}
	if _, err := p.Get(); !errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("Get from empty pool: %v", err)
	}
	out := make([]Mbuf, 2)
	if err := cs.AllocBulk(p, out); !errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("bulk alloc from empty pool: %v", err)
	}
	if n := p.EmptyEvents(); n != 3 {
		t.Fatalf("EmptyEvents = %d, want 3", n)
	}
	cs.FreeBulk(got)
	cs.Flush()
	if p.Available() != 8 {
		t.Fatalf("available %d, want 8", p.Available())
	}
}

func TestPoolConcurrentExactlyOnce(t *testing.T) {
	const size, workers = 4096, 4
	rounds := 2000
	if testing.Short() || raceEnabled {
		rounds = 300
	}
	p := newTestPool(t, size, 64)
	var mu sync.Mutex
	owner := make(map[Mbuf]int)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var cs Caches
			defer cs.Flush()
			held := make([]Mbuf, 0, 300)
			for r := 0; r < rounds; r++ {
				n := 1 + (r*7+w)%250
				batch := make([]Mbuf, n)
				if err := cs.AllocBulk(p, batch); err != nil {
					continue // the others hold the pool for now
				}
				mu.Lock()
				for _, m := range batch {
					if o, dup := owner[m]; dup {
						mu.Unlock()
						errs <- errors.New(m.String() + " held twice")
						_ = o
						return
					}
					owner[m] = w
				}
				mu.Unlock()
				held = append(held, batch...)
				if len(held) > 200 || r%3 == 0 {
					mu.Lock()
					for _, m := range held {
						delete(owner, m)
					}
					mu.Unlock()
					cs.FreeBulk(held)
					held = held[:0]
				}
			}
			mu.Lock()
			for _, m := range held {
				delete(owner, m)
			}
			mu.Unlock()
			cs.FreeBulk(held)
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p.Available() != size {
		t.Fatalf("available %d, want %d", p.Available(), size)
	}
}

func BenchmarkPool(b *testing.B) {
	p, err := NewPool("bench", 8192, 256)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var cs Caches
	defer cs.Flush()
	b.Run("get-put", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m, _ := cs.Alloc(p)
			cs.Free(m)
		}
	})
	b.Run("bulk32", func(b *testing.B) {
		burst := make([]Mbuf, Burst)
		for i := 0; i < b.N; i += Burst {
			cs.AllocBulk(p, burst)
			cs.FreeBulk(burst)
		}
	})
	b.Run("shared-ring", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m, _ := p.Get()
			Free(m)
		}
	})
}

package engine

import (
	"bytes"
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

func TestHeadroomTailroom(t *testing.T) {
	p := newTestPool(t, 4, 1)
	var cs Caches
	defer cs.Flush()
	m, _ := cs.Alloc(p)
	defer cs.Free(m)
	b, err := m.Append(100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = byte(i)
	}
	h, err := m.Prepend(14)
	if err != nil {
		t.Fatal(err)
	}
	copy(h, "headerheader!!")
	if m.Len() != 114 || m.PktLen() != 114 || m.Headroom() != Headroom-14 {
		t.Fatalf("after prepend: len %d pktlen %d headroom %d", m.Len(), m.PktLen(), m.Headroom())
	}
	if _, err := m.Prepend(Headroom); !errors.Is(err, ErrNoHeadroom) {
		t.Fatalf("prepend past headroom: %v", err)
	}
	if err := m.Adj(14); err != nil || m.Data()[0] != 0 || m.Len() != 100 {
		t.Fatalf("adj: %v, first byte %d len %d", err, m.Data()[0], m.Len())
	}
	if err := m.Trim(10); err != nil || m.Len() != 90 || m.Data()[89] != 89 {
		t.Fatalf("trim: %v len %d", err, m.Len())
	}
	if err := m.Trim(91); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("trim past data: %v", err)
	}
	if err := m.Adj(91); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("adj past data: %v", err)
	}
	if _, err := m.Append(m.Tailroom() + 1); !errors.Is(err, ErrNoTailroom) {
		t.Fatalf("append past tailroom: %v", err)
	}
}

// fillChain builds a packet of n bytes (byte i = i*7) from chained segments.
func fillChain(t testing.TB, cs *Caches, p *Pool, n int) Mbuf {
	t.Helper()
	head, err := cs.Alloc(p)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	seg := head
	for off < n {
		if seg.Tailroom() == 0 {
			s, err := cs.Alloc(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := head.Chain(s); err != nil {
				t.Fatal(err)
			}
			seg = s
		}
		k := min(seg.Tailroom(), n-off)
		b, err := head.Append(k)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = byte((off + i) * 7)
		}
		off += k
	}
	return head
}

func TestChainUpTo64K(t *testing.T) {
	p := newTestPool(t, 64, 8)
	var cs Caches
	defer cs.Flush()
	m := fillChain(t, &cs, p, MaxPacket)
	defer cs.Free(m)
	if m.PktLen() != MaxPacket {
		t.Fatalf("pktlen %d", m.PktLen())
	}
	wantSegs := (MaxPacket + DataRoom - 1) / DataRoom
	if m.Segs() != wantSegs {
		t.Fatalf("segs %d, want %d", m.Segs(), wantSegs)
	}
	buf := make([]byte, MaxPacket)
	if n := m.CopyOut(buf, 0); n != MaxPacket {
		t.Fatalf("CopyOut %d", n)
	}
	for i, b := range buf {
		if b != byte(i*7) {
			t.Fatalf("byte %d = %d", i, b)
		}
	}
	part := make([]byte, 5000)
	m.CopyOut(part, 3000)
	if !bytes.Equal(part, buf[3000:8000]) {
		t.Fatal("CopyOut at an offset across segments is wrong")
	}
	if _, err := m.Append(1); !errors.Is(err, ErrTooLong) {
		t.Fatalf("append past 64 KiB: %v", err)
	}
	extra, _ := cs.Alloc(p)
	extra.Append(1)
	if err := m.Chain(extra); !errors.Is(err, ErrTooLong) {
		t.Fatalf("chain past 64 KiB: %v", err)
	}
	cs.Free(extra)
}

func TestRefAndClone(t *testing.T) {
	p := newTestPool(t, 64, 8)
	var cs Caches
	orig := fillChain(t, &cs, p, 5000)
	// A second holder, as a retransmit queue keeps a segment it sent.
	Ref(orig)
	if orig.Refs() != 2 || orig.Writable() {
		t.Fatalf("after Ref: refs %d writable %v", orig.Refs(), orig.Writable())
	}
	cs.Free(orig)
	if orig.Refs() != 1 {
		t.Fatalf("after one free: refs %d", orig.Refs())
	}

	clone, err := cs.Clone(orig, p)
	if err != nil {
		t.Fatal(err)
	}
	if clone.PktLen() != 5000 || clone.Segs() != orig.Segs() || clone.Writable() || orig.Writable() {
		t.Fatalf("clone: pktlen %d segs %d", clone.PktLen(), clone.Segs())
	}
	a, b := make([]byte, 5000), make([]byte, 5000)
	orig.CopyOut(a, 0)
	clone.CopyOut(b, 0)
	if !bytes.Equal(a, b) {
		t.Fatal("clone data differs")
	}
	// The clone shares bytes: a write through the original shows.
	orig.Data()[0] = 0xee
	if clone.Data()[0] != 0xee {
		t.Fatal("clone does not share the original's buffer")
	}
	// Adjusting the clone leaves the original alone.
	if err := clone.Adj(10); err != nil || orig.Len() == clone.Len() {
		t.Fatalf("adj on clone: %v", err)
	}
	// A clone of a clone refers to the original buffer.
	cc, err := cs.Clone(clone, p)
	if err != nil {
		t.Fatal(err)
	}
	cs.Free(orig)
	if cc.Data()[0] != clone.Data()[0] {
		t.Fatal("clone of clone lost its data when the original was freed")
	}
	cs.Free(clone)
	cs.Free(cc)
	cs.Flush()
	if p.Available() != 64 {
		t.Fatalf("available %d after freeing everything, want 64", p.Available())
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

package engine

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
)

// rangeSource is a random packet for CloneRange: its segments and the
// mbufs whose buffers they use (themselves, or what they clone).
type rangeSource struct {
	m      Mbuf
	segs   []Mbuf
	owners []Mbuf // segs[i]'s buffer owner
	ext    uint64 // cookie of its external buffer, 0 for none
}

// randomSource builds a chain of 1..8 segments of random sizes (some empty)
// at random offsets in their buffers: plain segments, clones of another
// packet (dropped at once, so the clone holds the only outside reference)
// and windows on external memory.
func randomSource(t *testing.T, cs *Caches, p *Pool, rng *rand.Rand, page []byte, cookie uint64) rangeSource {
	t.Helper()
	var src rangeSource
	var e ExtBuf
	for i := range 1 + rng.IntN(8) {
		size := rng.IntN(DataRoom + 1)
		var s, owner Mbuf
		switch rng.IntN(4) {
		case 0: // a window on external memory
			if src.ext == 0 {
				var err error
				if e, err = p.NewExtBuf(addrOf(page), len(page), testExtFree, cookie); err != nil {
					t.Fatal(err)
				}
				src.ext = cookie
			}
			at := rng.IntN(len(page) - size + 1)
			var err error
			if s, err = cs.AttachExternal(p, e, at, size); err != nil {
				t.Fatal(err)
			}
			owner = s
		case 1: // a clone of the middle of another packet
			o, err := cs.Alloc(p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := o.Append(DataRoom)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if s, err = cs.Clone(o, p); err != nil {
				t.Fatal(err)
			}
			cs.Free(o)
			_ = s.Adj(rng.IntN(DataRoom - size + 1))
			_ = s.Trim(s.Len() - size)
			owner = o
		default: // a plain segment, at a random offset in its buffer
			var err error
			if s, err = cs.Alloc(p); err != nil {
				t.Fatal(err)
			}
			b, _ := s.Append(size + 64)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			_ = s.Adj(rng.IntN(65))
			_ = s.Trim(s.Len() - size)
			owner = s
		}
		if i == 0 {
			src.m = s
		} else if err := src.m.Chain(s); err != nil {
			t.Fatal(err)
		}
		src.segs = append(src.segs, s)
		src.owners = append(src.owners, owner)
	}
	if src.ext != 0 {
		e.Release()
	}
	return src
}

type segState struct{ refs, ownerRefs, off, len int }

func (src *rangeSource) state() []segState {
	st := make([]segState, len(src.segs))
	for i, s := range src.segs {
		st[i] = segState{s.Refs(), src.owners[i].Refs(), int(s.meta().dataOff), s.Len()}
	}
	return st
}

func TestCloneRangeOfRandomChainsSharesExactlyTheRangesBytesAndGivesEveryReferenceBack(t *testing.T) {
	p := newTestPool(t, 128, 8)
	var cs Caches
	defer cs.Flush()
	page := make([]byte, 3*DataRoom)
	for i := range page {
		page[i] = byte(i*13 + 5)
	}
	defer runtime.KeepAlive(page)
	rng := rand.New(rand.NewPCG(11, 2026))
	for iter := range 2000 {
		cookie := uint64(70000 + iter)
		src := randomSource(t, &cs, p, rng, page, cookie)
		total := src.m.PktLen()
		if total == 0 {
			cs.Free(src.m)
			continue
		}
		whole := make([]byte, total)
		src.m.CopyOut(whole, 0)
		before := src.state()
		pktLen, nSegs := src.m.PktLen(), src.m.Segs()

		off := rng.IntN(total)
		n := 1 + rng.IntN(total-off)
		r, err := cs.CloneRange(src.m, off, n, p)
		if err != nil {
			t.Fatalf("iter %d: CloneRange(%d, %d) of %d bytes: %v", iter, off, n, total, err)
		}
		got := make([]byte, n+1)
		if k := r.CopyOut(got, 0); k != n || r.PktLen() != n || !bytes.Equal(got[:n], whole[off:off+n]) {
			t.Fatalf("iter %d: range [%d,%d) of %d: copied %d, pktlen %d, bytes differ %v",
				iter, off, off+n, total, k, r.PktLen(), !bytes.Equal(got[:n], whole[off:off+n]))
		}
		// Just the segments holding the range were cloned, once each.
		want := map[Mbuf]int{}
		segs, at := 0, 0
		for i, s := range src.segs {
			if s.Len() > 0 && at < off+n && off < at+s.Len() {
				want[src.owners[i]]++
				segs++
			}
			at += s.Len()
		}
		if r.Segs() != segs {
			t.Fatalf("iter %d: %d segments, want %d", iter, r.Segs(), segs)
		}
		for c := r; c != NoMbuf; c = c.Next() {
			segs--
			if c.Writable() {
				t.Fatalf("iter %d: a range segment is writable", iter)
			}
			if _, err := c.Prepend(1); !errors.Is(err, ErrShared) {
				t.Fatalf("iter %d: Prepend on a range segment: %v, want ErrShared", iter, err)
			}
		}
		if _, err := r.Append(1); !errors.Is(err, ErrShared) {
			t.Fatalf("iter %d: Append on a range: %v, want ErrShared", iter, err)
		}
		if segs != 0 {
			t.Fatalf("iter %d: Segs disagrees with the chain", iter)
		}
		during := src.state()
		for i := range before {
			d := before[i]
			d.ownerRefs += want[src.owners[i]]
			if src.owners[i] == src.segs[i] {
				d.refs = d.ownerRefs
			}
			if during[i] != d {
				t.Fatalf("iter %d: segment %d while the range lives: %+v, want %+v", iter, i, during[i], d)
			}
		}

		cs.Free(r)
		after := make([]byte, total)
		src.m.CopyOut(after, 0)
		if st := src.state(); !equalStates(st, before) || !bytes.Equal(after, whole) ||
			src.m.PktLen() != pktLen || src.m.Segs() != nSegs {
			t.Fatalf("iter %d: the source changed: %+v, was %+v", iter, st, before)
		}
		cs.Free(src.m)
		if src.ext != 0 && freedCount(cookie) != 1 {
			t.Fatalf("iter %d: external buffer released %d times", iter, freedCount(cookie))
		}
	}
	cs.Flush()
	if p.Available() != p.Size() || p.DoubleFrees() != 0 {
		t.Fatalf("available %d of %d, %d double frees", p.Available(), p.Size(), p.DoubleFrees())
	}
}

func equalStates(a, b []segState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCloneRangeRefusesARangeOutsideThePacketWithErrRange(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	m := fillChain(t, &cs, p, 5000)
	defer cs.Free(m)
	for _, r := range [][2]int{{-1, 10}, {0, 0}, {10, -1}, {0, 5001}, {4999, 2}, {5000, 1}, {1, int(^uint(0) >> 1)}} {
		if c, err := cs.CloneRange(m, r[0], r[1], p); !errors.Is(err, ErrRange) || c != NoMbuf {
			t.Fatalf("CloneRange(%d, %d) of 5000 bytes: %v, %v", r[0], r[1], c, err)
		}
	}
	if m.Refs() != 1 {
		t.Fatalf("refs %d after refusals", m.Refs())
	}
}

func TestCloneRangeOnAnEmptyPoolFreesWhatItBuiltAndLeavesTheSourceAlone(t *testing.T) {
	src := newTestPool(t, 16, 4)
	for have := range 4 {
		p := newTestPool(t, 8, 1)
		var cs Caches
		m := fillChain(t, &cs, src, 4*DataRoom) // four segments
		held := make([]Mbuf, 0, 8)
		for len(held) < 8-have {
			h, err := cs.Alloc(p)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, h)
		}
		if c, err := cs.CloneRange(m, 10, 4*DataRoom-20, p); !errors.Is(err, ErrPoolEmpty) || c != NoMbuf {
			t.Fatalf("with %d mbufs free: %v, %v", have, c, err)
		}
		for s := m; s != NoMbuf; s = s.Next() {
			if s.Refs() != 1 || !s.Writable() {
				t.Fatalf("with %d mbufs free: a source segment has %d references", have, s.Refs())
			}
		}
		cs.FreeBulk(held)
		cs.Free(m)
		cs.Flush()
		if p.Available() != p.Size() || src.Available() != src.Size() {
			t.Fatalf("with %d mbufs free: %d of %d and %d of %d available", have, p.Available(), p.Size(), src.Available(), src.Size())
		}
	}
}

func TestCloneRangeAllocatesNothing(t *testing.T) {
	p := newTestPool(t, 32, 8)
	var cs Caches
	defer cs.Flush()
	m := fillChain(t, &cs, p, 5*DataRoom)
	defer cs.Free(m)
	allocs := testing.AllocsPerRun(200, func() {
		c, err := cs.CloneRange(m, 1000, 3*DataRoom, p)
		if err != nil {
			t.Fatal(err)
		}
		cs.Free(c)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per CloneRange", allocs)
	}
}

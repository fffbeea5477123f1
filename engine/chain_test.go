package engine

import (
	"bytes"
	"errors"
	"testing"
)

func TestAChainOf64SegmentsKeepsItsTail(t *testing.T) {
	p := newTestPool(t, 256, 8)
	var cs Caches
	defer cs.Flush()
	head, _ := cs.Alloc(p)
	b, _ := head.Append(1)
	b[0] = 0
	want := []byte{0}
	for i := 1; i < 64; i++ {
		s, _ := cs.Alloc(p)
		b, _ := s.Append(1)
		b[0] = byte(i)
		want = append(want, byte(i))
		if err := head.Chain(s); err != nil {
			t.Fatal(err)
		}
		if head.meta().tail != s || head.last() != s {
			t.Fatalf("after chaining segment %d the head's tail is %v, want %v", i, head.meta().tail, s)
		}
	}
	if head.Segs() != 64 || head.PktLen() != 64 {
		t.Fatalf("%d segments, %d bytes", head.Segs(), head.PktLen())
	}
	// Append fills the last segment.
	last := head.last()
	b, err := head.Append(3)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "xyz")
	want = append(want, "xyz"...)
	if last.Len() != 4 || !bytes.Equal(last.Data(), []byte{63, 'x', 'y', 'z'}) {
		t.Fatalf("Append did not land in the last segment: % x", last.Data())
	}
	// Chaining a chain makes its last segment the tail.
	t2 := fillChain(t, &cs, p, DataRoom+5)
	t2last := t2.Next()
	if err := head.Chain(t2); err != nil {
		t.Fatal(err)
	}
	if head.last() != t2last {
		t.Fatalf("tail %v after chaining a chain, want %v", head.last(), t2last)
	}
	tb := make([]byte, t2.PktLen())
	t2.CopyOut(tb, 0)
	want = append(want, tb...)
	// Trim removes from the last segment only, as before.
	if err := head.Trim(6); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("Trim past the last segment: %v", err)
	}
	if err := head.Trim(5); err != nil || t2last.Len() != 0 || head.last() != t2last {
		t.Fatalf("Trim(5): %v, last segment has %d bytes", err, t2last.Len())
	}
	want = want[:len(want)-5]
	// AppendBytes carries on from the tail and chains new segments.
	extra := bytes.Repeat([]byte{0xee}, DataRoom+100)
	if err := cs.AppendBytes(head, p, extra); err != nil {
		t.Fatal(err)
	}
	want = append(want, extra...)
	if head.last().Next() != NoMbuf || head.Segs() != 64+2+1 {
		t.Fatalf("after AppendBytes: tail %v has a next, %d segments", head.last(), head.Segs())
	}
	got := make([]byte, head.PktLen())
	if n := head.CopyOut(got, 0); n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("the chain reads back %d bytes, want %d, or differs", n, len(want))
	}
	// A clone's tail is the clone's own last segment.
	c, err := cs.Clone(head, p)
	if err != nil {
		t.Fatal(err)
	}
	if c.last() == head.last() || c.last().meta().direct != head.last() || c.Segs() != head.Segs() {
		t.Fatalf("clone tail %v", c.last())
	}
	if err := cs.AppendBytes(c, p, []byte("clone")); err != nil {
		t.Fatal(err)
	}
	if head.PktLen() != len(want) {
		t.Fatal("appending to the clone grew the original")
	}
	cs.Free(c)
	cs.Free(head)
	cs.Flush()
	if p.Available() != 256 {
		t.Fatalf("available %d", p.Available())
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

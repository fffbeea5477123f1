package engine

import (
	"bytes"
	"testing"
)

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

package ofo

import (
	"errors"
	"slices"
	"testing"
)

func TestSACKBlocksPutTheMostRecentFirst(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 8192)
	blocks := func(room int) []Block {
		return r.q.SACKBlocks(make([]Block, 0, 4)[:0:room], 1000)
	}
	want := func(room int, w ...Block) {
		t.Helper()
		if got := blocks(room); !slices.Equal(got, w) {
			t.Fatalf("SACK blocks %v, want %v", got, w)
		}
	}
	r.insert(2000, 100)
	want(4, blk(2000, 2100))
	r.insert(3000, 100)
	want(4, blk(3000, 3100), blk(2000, 2100))
	r.insert(4000, 100)
	want(4, blk(4000, 4100), blk(3000, 3100), blk(2000, 2100))
	// Extending the oldest block makes it the first, whole.
	r.insert(2100, 100)
	want(4, blk(2000, 2200), blk(4000, 4100), blk(3000, 3100))
	// Bridging two blocks reports the merged one once.
	r.insert(2200, 800)
	want(4, blk(2000, 3100), blk(4000, 4100))
	r.insert(5000, 100)
	r.insert(6000, 100)
	r.insert(7000, 100)
	want(4, blk(7000, 7100), blk(6000, 6100), blk(5000, 5100), blk(2000, 3100))
	// With timestamps only three fit: the oldest reported gives way.
	want(3, blk(7000, 7100), blk(6000, 6100), blk(5000, 5100))
	// A fifth distinct block pushes the oldest out of the recent list, but
	// room left is filled from the lowest held.
	r.insert(8000, 100)
	want(4, blk(8000, 8100), blk(7000, 7100), blk(6000, 6100), blk(5000, 5100))
	// Data at or below the acknowledgement is never reported.
	got, next := r.q.Take(1000, make([]Entry, 0, 1))
	if len(got) != 0 || next != 1000 {
		t.Fatal("took across a hole")
	}
	got2 := r.q.SACKBlocks(make([]Block, 0, 4), 5050)
	if w := []Block{blk(8000, 8100), blk(7000, 7100), blk(6000, 6100), blk(5050, 5100)}; !slices.Equal(got2, w) {
		t.Fatalf("blocks %v with 5050 acknowledged, want %v", got2, w)
	}
	r.q.Purge()
	want(4)
}

func TestADuplicateSegmentIsReportedOnceAsDSACKFirst(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 8192)
	r.insert(2000, 100)
	r.insert(2100, 100)
	r.insert(3000, 100)
	if _, ok := r.q.DSACK(); ok {
		t.Fatal("a D-SACK without a duplicate")
	}
	if err := r.insert(2050, 100); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("%v, want ErrDuplicate", err)
	}
	b, ok := r.q.DSACK()
	if !ok || b != blk(2050, 2150) {
		t.Fatalf("D-SACK %v %v, want [2050,2150)", b, ok)
	}
	if _, ok := r.q.DSACK(); ok {
		t.Fatal("the D-SACK block was reported twice")
	}
	// RFC 2883 4.1.2: the next block is the held block holding the duplicate.
	if got := r.q.SACKBlocks(make([]Block, 0, 3), 1000); got[0] != blk(2000, 2200) {
		t.Fatalf("SACK blocks %v, want [2000,2200) first", got)
	}
	// A partial overlap is held and D-SACKs the overlapping bytes.
	if err := r.insert(3050, 100); err != nil {
		t.Fatal(err)
	}
	if b, ok := r.q.DSACK(); !ok || b != blk(3050, 3100) {
		t.Fatalf("D-SACK %v %v, want [3050,3100)", b, ok)
	}
	c := r.q.Counters()
	if c.Duplicates != 1 || c.OFOMerge != 1 || c.OFOQueue != 4 {
		t.Fatalf("counters %+v", c)
	}
	r.q.Purge()
}

func blk(l, r uint32) Block { return Block{Left: l, Right: r} }

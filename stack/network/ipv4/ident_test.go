package ipv4

import (
	"testing"

	"github.com/pollnet/pollnet/stack/siphash"
)

// TestIPIDsIncreasePerFlowFromUnrelatedStarts drives Idents with a clock:
// IDs of one flow go up by one while the flow is busy and jump by less
// than its idle milliseconds after a pause; flows that differ in any of
// source, destination or protocol start far apart; another key gives other
// IDs.
func TestIPIDsIncreasePerFlowFromUnrelatedStarts(t *testing.T) {
	var ids Idents
	ids.key = siphash.Key{K0: 7, K1: 8}
	a, b, us := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 3}, [4]byte{198, 18, 0, 2}
	now := int64(5e12)
	first := ids.Next(us, a, 17, now)
	for i := 1; i < 100; i++ {
		if id := ids.Next(us, a, 17, now); id != first+uint16(i) {
			t.Fatalf("ID %d within one millisecond: %d, want %d", i, id, first+uint16(i))
		}
	}
	last := first + 99
	now += 50e6 // 50 ms idle
	if id := ids.Next(us, a, 17, now); id-last < 1 || id-last > 50 {
		t.Fatalf("after 50 ms idle the ID moved by %d", id-last)
	}
	starts := map[uint16]bool{first: true}
	for _, f := range []struct {
		src, dst [4]byte
		proto    uint8
	}{{us, b, 17}, {us, a, 1}, {b, a, 17}} {
		id := ids.Next(f.src, f.dst, f.proto, now)
		for s := range starts {
			if d := int16(id - s); d > -200 && d < 200 {
				t.Fatalf("flow %+v starts at %d, near another flow's %d", f, id, s)
			}
		}
		starts[id] = true
	}
	var other Idents
	other.Init(siphash.Key{K0: 9, K1: 10})
	if other.Next(us, a, 17, 5e12) == first {
		t.Fatal("another key gave the same first ID")
	}
}

func TestIPIDsAllocateNothing(t *testing.T) {
	var ids Idents
	ids.key = siphash.NewKey()
	now := int64(0)
	if n := testing.AllocsPerRun(100, func() {
		now += 1e6
		ids.Next([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 17, now)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// TestTwoShardsNeverTakeOneIDTwice has two goroutines, as two shards, draw
// IDs for one flow at once: the 2 x 20000 IDs are all different.
func TestTwoShardsNeverTakeOneIDTwice(t *testing.T) {
	var ids Idents
	ids.Init(siphash.NewKey())
	const each = 20000
	got := make([][]uint16, 2)
	done := make(chan int)
	for g := range got {
		go func() {
			for i := 0; i < each; i++ {
				got[g] = append(got[g], ids.Next([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 17, int64(i/4000)*1e6))
			}
			done <- g
		}()
	}
	<-done
	<-done
	seen := map[uint16]int{}
	for g := range got {
		for _, id := range got[g] {
			if other, ok := seen[id]; ok {
				t.Fatalf("ID %d taken by goroutine %d and %d", id, other, g)
			}
			seen[id] = g
		}
	}
}

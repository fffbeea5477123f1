package stack

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTimerHeapFiresInDeadlineOrder: timers fire earliest first, only once
// due; re-arming moves a deadline, cancelling removes it, and a timer may
// re-arm itself from its own fire.
func TestTimerHeapFiresInDeadlineOrder(t *testing.T) {
	var h timerHeap
	var fired []int
	rng := rand.New(rand.NewPCG(1, 2))
	ts := make([]timer, 200)
	want := map[int]int64{}
	for i := range ts {
		i := i
		ts[i].fire = func(now int64) { fired = append(fired, i) }
		h.arm(&ts[i], rng.Int64N(1000))
		want[i] = ts[i].when
	}
	for i := 0; i < len(ts); i += 3 {
		h.cancel(&ts[i])
		h.cancel(&ts[i]) // twice is harmless
		delete(want, i)
	}
	for i := 1; i < len(ts); i += 3 {
		h.arm(&ts[i], rng.Int64N(1000)) // moved
		want[i] = ts[i].when
	}
	if h.len() != len(want) {
		t.Fatalf("%d armed, want %d", h.len(), len(want))
	}
	if n := h.run(-1); n != 0 {
		t.Fatalf("%d fired before any deadline", n)
	}
	h.run(499)
	for _, i := range fired {
		if want[i] > 499 {
			t.Fatalf("timer %d due at %d fired at 499", i, want[i])
		}
	}
	h.run(1000)
	if len(fired) != len(want) || h.len() != 0 {
		t.Fatalf("fired %d of %d, %d left", len(fired), len(want), h.len())
	}
	if !slices.IsSortedFunc(fired, func(a, b int) int { return int(want[a] - want[b]) }) {
		t.Fatal("fired out of deadline order")
	}
	// A timer that re-arms itself runs again at its new deadline.
	var again timer
	count := 0
	again.fire = func(now int64) {
		if count++; count < 3 {
			h.arm(&again, now+10)
		}
	}
	h.arm(&again, 0)
	for now := int64(0); now <= 100; now += 5 {
		h.run(now)
	}
	if count != 3 || again.slot != 0 {
		t.Fatalf("self re-arming timer ran %d times, slot %d", count, again.slot)
	}
}

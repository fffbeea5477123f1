package engine

import (
	"runtime"
	"slices"
	"testing"
)

func TestCoresNamesEveryUsableCoreEvenOnAPinnedThread(t *testing.T) {
	all, err := Cores()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skipf("one usable core (%v): nothing to tell apart", all)
	}
	w, err := NewWorker(all[len(all)-1])
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []int, 1)
	if err := w.Start(func(*Worker) {
		runtime.Gosched()
		c, _ := Cores()
		got <- c
	}); err != nil {
		t.Fatal(err)
	}
	c := <-got
	w.Stop()
	if !slices.Equal(c, all) {
		t.Fatalf("on a thread pinned to core %d, Cores() = %v, want the process's %v", all[len(all)-1], c, all)
	}
}

package engine

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// resetBusy forgets the warnings already given, so a test sees its own.
func resetBusy(t *testing.T) (warned *[]string) {
	var got []string
	prev := SetWarn(func(msg string) { got = append(got, msg) })
	busy.mu.Lock()
	busy.warned = nil
	busy.warnings = nil
	busy.mu.Unlock()
	t.Cleanup(func() { SetWarn(prev) })
	return &got
}

func TestTwoBusyWorkersOnOneCoreAreRefused(t *testing.T) {
	cores, err := Cores()
	if err != nil {
		t.Fatal(err)
	}
	core := cores[0]
	a, _ := NewWorker(core)
	b, _ := NewWorker(core)
	if err := a.ClaimBusy(); err != nil {
		t.Fatal(err)
	}
	err = b.ClaimBusy()
	if err == nil {
		t.Fatal("a second busy worker on the same core was accepted")
	}
	for _, want := range []string{"core " + strconv.Itoa(core), "worker " + strconv.Itoa(a.ID())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// Poll claims the core itself and refuses to start.
	if err := b.Poll(PollConfig{Tick: func(*Worker, int) {}}); err == nil || !strings.Contains(err.Error(), "worker "+strconv.Itoa(a.ID())) {
		t.Fatalf("Poll on a core held by a busy worker: %v", err)
	}
	// A worker that sleeps (a softirq) may share the core; once the busy
	// worker stops, the core is free.
	a.Stop()
	if err := b.ClaimBusy(); err != nil {
		t.Fatalf("core still held after the busy worker stopped: %v", err)
	}
	b.Stop()
	// Unpinned workers hold no core.
	u1, _ := NewWorker(AnyCore)
	u2, _ := NewWorker(AnyCore)
	defer u1.Stop()
	defer u2.Stop()
	if err := u1.ClaimBusy(); err != nil {
		t.Fatal(err)
	}
	if err := u2.ClaimBusy(); err != nil {
		t.Fatalf("two unpinned busy workers refused: %v", err)
	}
}

func TestMoreBusyWorkersThanGOMAXPROCSWarnOnceAndAreRecorded(t *testing.T) {
	warned := resetBusy(t)
	procs := runtime.GOMAXPROCS(0)
	var ws []*Worker
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for i := 0; i < procs+2; i++ {
		w, _ := NewWorker(AnyCore)
		ws = append(ws, w)
		if err := w.ClaimBusy(); err != nil {
			t.Fatal(err)
		}
		if n := len(gomaxWarnings(*warned)); i < procs && n != 0 {
			t.Fatalf("%d busy workers, GOMAXPROCS %d: warned %q", i+1, procs, *warned)
		}
	}
	gomax := gomaxWarnings(*warned)
	if len(gomax) != 1 || !strings.Contains(gomax[0], strconv.Itoa(procs+1)+" busy workers") {
		t.Fatalf("warnings %q: want one about %d busy workers over GOMAXPROCS %d", *warned, procs+1, procs)
	}
	if got := Warnings(); len(got) != len(*warned) || got[0] != (*warned)[0] {
		t.Fatalf("Warnings() = %q, warned %q", got, *warned)
	}
	if PeakBusyWorkers() < procs+2 {
		t.Fatalf("PeakBusyWorkers() = %d, want at least %d", PeakBusyWorkers(), procs+2)
	}
}

func gomaxWarnings(ws []string) []string {
	var out []string
	for _, w := range ws {
		if strings.Contains(w, "GOMAXPROCS") {
			out = append(out, w)
		}
	}
	return out
}

package engine

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

// A busy worker polls its core without ever sleeping (Poll). Two of them
// pinned to one core only take turns at the scheduler's whim, each running
// half the time and adding a time slice of latency to the other: the engine
// refuses that. More busy workers than GOMAXPROCS, or than the cores the
// process may use, leaves some waiting for a processor: allowed (a test may
// want it), but warned about once and recorded for result files.

// busy is the process's record of busy workers.
var busy struct {
	mu       sync.Mutex
	byCore   map[int]*Worker // the busy worker pinned to each core
	workers  int             // busy workers now, pinned or not
	peak     int             // the most busy workers at once
	warned   map[string]bool // warning kinds already given
	warnings []string        // the warnings given, oldest first
	warn     func(string)    // where warnings go; nil: standard error
}

// ClaimBusy records w as a worker that busy-polls its core, until its
// function returns (or, if it never starts, until Stop). It fails, naming the
// holder, if another busy worker is pinned to the same core; an unpinned
// worker (AnyCore) holds no core. Poll claims the core itself: call
// ClaimBusy before Start to be refused before anything runs. It warns, once
// per process, when busy workers outnumber GOMAXPROCS or the cores this
// process may use.
func (w *Worker) ClaimBusy() error {
	_, err := w.claimBusy()
	return err
}

// claimBusy is ClaimBusy, reporting whether this call made the claim.
func (w *Worker) claimBusy() (claimed bool, err error) {
	var msgs []string
	busy.mu.Lock()
	defer func() {
		busy.mu.Unlock()
		for _, m := range msgs {
			warn(m)
		}
	}()
	if w.busy {
		return false, nil
	}
	if w.core != AnyCore {
		if o := busy.byCore[w.core]; o != nil {
			return false, fmt.Errorf("worker %d: core %d is held by busy worker %d, and two busy-polling workers cannot share a core: pin them to different cores",
				w.id, w.core, o.id)
		}
		if busy.byCore == nil {
			busy.byCore = map[int]*Worker{}
		}
		busy.byCore[w.core] = w
	}
	w.busy = true
	busy.workers++
	busy.peak = max(busy.peak, busy.workers)
	if procs := runtime.GOMAXPROCS(0); busy.workers > procs {
		msgs = appendWarning(msgs, "gomaxprocs", fmt.Sprintf(
			"%d busy workers but GOMAXPROCS is %d: some wait for a processor while others poll; raise GOMAXPROCS or run fewer",
			busy.workers, procs))
	}
	if cores, err := Cores(); err == nil && busy.workers > len(cores) {
		msgs = appendWarning(msgs, "cores", fmt.Sprintf(
			"%d busy workers but this process may use %d cores (%s): busy workers share cores and take turns",
			busy.workers, len(cores), FormatCores(cores)))
	}
	return true, nil
}

// appendWarning records a warning of a kind not given before; busy.mu is
// held.
func appendWarning(msgs []string, kind, msg string) []string {
	if busy.warned[kind] {
		return msgs
	}
	if busy.warned == nil {
		busy.warned = map[string]bool{}
	}
	busy.warned[kind] = true
	busy.warnings = append(busy.warnings, msg)
	return append(msgs, msg)
}

// releaseBusy ends w's claim, if it has one.
func (w *Worker) releaseBusy() {
	busy.mu.Lock()
	defer busy.mu.Unlock()
	if !w.busy {
		return
	}
	if busy.byCore[w.core] == w {
		delete(busy.byCore, w.core)
	}
	w.busy = false
	busy.workers--
}

// warn gives a warning to the function SetWarn installed.
func warn(msg string) {
	busy.mu.Lock()
	f := busy.warn
	busy.mu.Unlock()
	if f == nil {
		fmt.Fprintf(os.Stderr, "pollnet: warning: %s\n", msg)
		return
	}
	f(msg)
}

// SetWarn sends the engine's warnings to f (nil: standard error, the
// default) and returns the function it replaces, so that a command or a test
// can capture them.
func SetWarn(f func(msg string)) (prev func(msg string)) {
	busy.mu.Lock()
	defer busy.mu.Unlock()
	prev, busy.warn = busy.warn, f
	return prev
}

// Warnings returns the warnings the engine has given in this process, each
// once, oldest first, for result files to record.
func Warnings() []string {
	busy.mu.Lock()
	defer busy.mu.Unlock()
	return append([]string(nil), busy.warnings...)
}

// PeakBusyWorkers is the most busy workers this process has had at once.
func PeakBusyWorkers() int {
	busy.mu.Lock()
	defer busy.mu.Unlock()
	return busy.peak
}

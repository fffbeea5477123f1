package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
)

// profiler writes CPU profiles of measured windows, one per key (a scenario,
// path and knob set), to a directory: the first window measured under a key
// is profiled, later ones (repeats) are not, so each file covers exactly one
// measured window and no warm-up. The device under test's goroutines carry
// pprof labels scenario, path and role (see startRun), so
// `go tool pprof -tagfocus role=dut` keeps its samples alone.
//
// Go runs one CPU profile at a time: if another is running (--cpuprofile),
// the window is not profiled, and the notes say so once.
type profiler struct {
	dir   string
	notes io.Writer
	mu    sync.Mutex
	done  map[string]bool
	err   error // the first failure, reported once
}

func newProfiler(dir string, notes io.Writer) *profiler {
	if dir == "" {
		return nil
	}
	return &profiler{dir: dir, notes: notes, done: map[string]bool{}}
}

// start begins the CPU profile of key, unless key was profiled already; the
// returned function stops it and writes the file. A nil profiler does
// nothing.
func (p *profiler) start(key string) func() {
	nothing := func() {}
	if p == nil || key == "" {
		return nothing
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[key] {
		return nothing
	}
	p.done[key] = true
	path := filepath.Join(p.dir, profileName(key)+".cpu.pprof")
	fail := func(err error) func() {
		if p.err == nil && p.notes != nil {
			fmt.Fprintf(p.notes, "profile %s: %v (no more such notes)\n", path, err)
		}
		if p.err == nil {
			p.err = err
		}
		return nothing
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fail(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		return fail(fmt.Errorf("%w (is --cpuprofile also set?)", err))
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if p.notes != nil {
			fmt.Fprintf(p.notes, "profile of %s: go tool pprof -http=127.0.0.1:0 %s\n", key, path)
		}
	}
}

// profileName makes a key safe as a file name.
func profileName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, key)
}

// writeHeapProfile writes the heap after a job, beside its CPU profiles.
func writeHeapProfile(dir, name string, notes io.Writer) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	path := filepath.Join(dir, profileName(name)+".heap.pprof")
	h, err := os.Create(path)
	if err != nil {
		return
	}
	runtime.GC()
	pprof.WriteHeapProfile(h)
	h.Close()
	if notes != nil {
		fmt.Fprintf(notes, "heap after %s: go tool pprof %s\n", name, path)
	}
}

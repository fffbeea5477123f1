package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pollnet/pollnet/engine"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// StatDir is where running benchmarks publish their counters, one file per
// process, as the kernel publishes /proc/net/softnet_stat: `pollnet stat`
// reads them from another process while a bench runs, and after it ends.
func StatDir() string { return filepath.Join(os.TempDir(), "pollnet-stat") }

// StatPath is the counters file of process pid.
func StatPath(pid int) string { return filepath.Join(StatDir(), strconv.Itoa(pid)+".stat") }

// StatPublisher rewrites this process's counters file four times a second
// while a scenario runs, and leaves the last figures in it at the end.
//
// It must not disturb what it reports on. Its goroutine is locked to an OS
// thread of its own whose CPU affinity leaves out the cores it was told to
// avoid (the device under test's), so reading, formatting and writing the
// counters never take the device's core; Set hands the new scenario to that
// goroutine rather than publishing on the caller's thread. And a publish
// cycle allocates nothing once its buffers have grown: the counter snapshot
// reuses its slices, the text is rendered into buffers from bytebufferpool,
// and the file is written through system calls on paths converted once.
type StatPublisher struct {
	pid        int
	path, tmp  []byte // NUL-terminated, for openat and renameat2
	pathString string
	cores      []int        // the cores its thread may run on
	tid        atomic.Int32 // its thread, once pinned

	setc   chan *Live    // Set's hand-over to the goroutine
	ack    chan struct{} // the goroutine has published the new scenario
	setMu  sync.Mutex    // one Set at a time
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the goroutine has written its last
	closed sync.Once

	// Owned by the publisher's goroutine (by the caller before start).
	live  *Live
	snap  statSnapshot
	table textTable

	mu   sync.Mutex                 // guards last
	last *bytebufferpool.ByteBuffer // the figures last published
}

// statInterval is how often the counters file is rewritten.
const statInterval = 250 * time.Millisecond

// StartStatPublisher creates this process's counters file and starts
// publishing into it. avoid names the cores the publisher must stay off:
// the device under test's core, and any other core whose figures it would
// disturb (engine.AnyCore entries are ignored). It fails when avoid leaves
// the process no core to run it on.
func StartStatPublisher(avoid ...int) (*StatPublisher, error) {
	if err := os.MkdirAll(StatDir(), 0o755); err != nil {
		return nil, fmt.Errorf("stat directory: %w", err)
	}
	pruneStatFiles()
	p, err := newStatPublisher(StatPath(os.Getpid()))
	if err != nil {
		return nil, err
	}
	if err := p.start(avoid); err != nil {
		return nil, err
	}
	return p, nil
}

// newStatPublisher prepares a publisher of the file at path, without its
// goroutine.
func newStatPublisher(path string) (*StatPublisher, error) {
	p := &StatPublisher{
		pid: os.Getpid(), pathString: path,
		setc: make(chan *Live), ack: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
		last: statBuffers.Get(),
	}
	var err error
	if p.path, err = unix.ByteSliceFromString(path); err != nil {
		return nil, fmt.Errorf("stat file %q: %w", path, err)
	}
	if p.tmp, err = unix.ByteSliceFromString(path + ".tmp"); err != nil {
		return nil, fmt.Errorf("stat file %q: %w", path, err)
	}
	return p, nil
}

// publisherCores is the process's cores less those to avoid.
func publisherCores(avoid []int) ([]int, error) {
	all, err := engine.Cores()
	if err != nil {
		return nil, err
	}
	cores := slices.DeleteFunc(slices.Clone(all), func(c int) bool { return slices.Contains(avoid, c) })
	if len(cores) == 0 {
		return nil, fmt.Errorf("no core left for the live-counter publisher: this process may use cores %s and all of them are to be avoided (%s)",
			engine.FormatCores(all), engine.FormatCores(avoid))
	}
	return cores, nil
}

// start pins the publisher's goroutine off the cores in avoid and starts
// its loop.
func (p *StatPublisher) start(avoid []int) error {
	cores, err := publisherCores(avoid)
	if err != nil {
		return err
	}
	p.cores = cores
	p.write(stateStarting)
	pinned := make(chan error, 1)
	go func() {
		defer close(p.exited)
		if err := lockThreadTo(cores); err != nil {
			pinned <- fmt.Errorf("live-counter publisher: %w", err)
			return
		}
		p.tid.Store(int32(unix.Gettid()))
		pinned <- nil
		p.loop()
	}()
	return <-pinned
}

// loop publishes on a ticker and on Set, until Close.
func (p *StatPublisher) loop() {
	t := time.NewTicker(statInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			p.write(stateFinished)
			return
		case l := <-p.setc:
			p.publish() // the last figures of the scenario that ends
			p.live = l
			p.publish()
			p.ack <- struct{}{}
		case <-t.C:
			p.publish()
		}
	}
}

// Set is PPSConfig.Live: it switches the file to a new scenario, or, with
// nil, freezes the last figures of the one that ended. It returns once the
// publisher's goroutine has published them.
func (p *StatPublisher) Set(l *Live) {
	p.setMu.Lock()
	defer p.setMu.Unlock()
	select {
	case p.setc <- l:
		<-p.ack
	case <-p.exited: // closed: nothing publishes any more
	}
}

// Cores are the cores the publisher's thread may run on.
func (p *StatPublisher) Cores() []int { return slices.Clone(p.cores) }

// publish is one cycle: read the counters, render them, rewrite the file.
func (p *StatPublisher) publish() {
	if p.live == nil {
		return
	}
	p.snap.take(p.live)
	p.mu.Lock()
	p.last.Reset()
	p.snap.render(p.last, &p.table)
	p.mu.Unlock()
	p.write(stateRunning)
}

// The states a counters file's first line gives.
const (
	stateStarting = iota
	stateRunning
	stateFinished
)

// write rewrites the file: a line with the process and its state, then the
// last figures. The file is written beside its place and renamed into it,
// so a reader never sees half of it.
func (p *StatPublisher) write(state int) {
	b := statBuffers.Get()
	defer statBuffers.Put(b)
	b.B = append(b.B, "pollnet pid "...)
	b.B = strconv.AppendInt(b.B, int64(p.pid), 10)
	switch state {
	case stateStarting:
		b.B = append(b.B, ": starting"...)
	case stateRunning:
		b.B = append(b.B, ": running at "...)
		b.B = time.Now().AppendFormat(b.B, time.RFC3339)
	case stateFinished:
		b.B = append(b.B, ": finished at "...)
		b.B = time.Now().AppendFormat(b.B, time.RFC3339)
	}
	b.B = append(b.B, '\n')
	p.mu.Lock()
	b.B = append(b.B, p.last.B...)
	p.mu.Unlock()
	if writeFile(p.tmp, b.B) == nil {
		renameFile(p.tmp, p.path)
	}
}

// Close stops publishing and marks the file finished, keeping the figures
// of the last scenario for `pollnet stat` to show.
func (p *StatPublisher) Close() {
	p.closed.Do(func() { close(p.done) })
	<-p.exited
}

// Last is the text of the last figures published.
func (p *StatPublisher) Last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.last.B)
}

// atFDCWD is AT_FDCWD as a variable: the constant is negative, and a
// system call takes it as a uintptr.
var atFDCWD = unix.AT_FDCWD

// writeFile creates or truncates the file at path (NUL-terminated) and writes
// data into it. It calls openat directly because os.WriteFile converts the
// path and builds an *os.File on every call.
func writeFile(path []byte, data []byte) error {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])),
		uintptr(unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC), 0o644, 0, 0)
	if errno != 0 {
		return errno
	}
	defer unix.Close(int(fd))
	for len(data) > 0 {
		n, err := unix.Write(int(fd), data)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// renameFile renames from over to (both NUL-terminated) with renameat2,
// which every architecture has.
func renameFile(from, to []byte) error {
	_, _, errno := unix.Syscall6(unix.SYS_RENAMEAT2, uintptr(atFDCWD), uintptr(unsafe.Pointer(&from[0])),
		uintptr(atFDCWD), uintptr(unsafe.Pointer(&to[0])), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// pruneStatFiles removes files of processes that no longer exist and that
// are more than a day old.
func pruneStatFiles() {
	ents, _ := os.ReadDir(StatDir())
	for _, e := range ents {
		pid, ok := statPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(filepath.Join(StatDir(), e.Name()))
		}
	}
}

func statPID(name string) (int, bool) {
	s, ok := strings.CutSuffix(name, ".stat")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// StatFile is one process's counters file.
type StatFile struct {
	PID     int
	Running bool
	Path    string
	ModTime time.Time
}

// StatFiles lists the counters files, running processes first, newest first.
func StatFiles() ([]StatFile, error) {
	ents, err := os.ReadDir(StatDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var fs []StatFile
	for _, e := range ents {
		pid, ok := statPID(e.Name())
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		path := filepath.Join(StatDir(), e.Name())
		running := processAlive(pid) && !finished(path)
		fs = append(fs, StatFile{PID: pid, Running: running, Path: path, ModTime: fi.ModTime()})
	}
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Running != fs[j].Running {
			return fs[i].Running
		}
		return fs[i].ModTime.After(fs[j].ModTime)
	})
	return fs, nil
}

// finished reports whether a counters file says its bench has ended.
func finished(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var head [128]byte
	n, _ := f.Read(head[:])
	line, _, _ := strings.Cut(string(head[:n]), "\n")
	return strings.Contains(line, "finished")
}

// lockThreadTo locks the calling goroutine to its OS thread and lets that
// thread run only on cores. The goroutine must never unlock it: the thread
// then ends with the goroutine, so its affinity passes to no other.
func lockThreadTo(cores []int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	for _, c := range cores {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cores %s: %w", engine.FormatCores(cores), err)
	}
	return nil
}

package engine

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// AnyCore asks for a worker that is locked to its own OS thread but not pinned
// to a core, for tests that run more workers than the machine has cores.
const AnyCore = -1

// Worker is a goroutine locked to its OS thread and pinned to one core, the
// counterpart of a DPDK lcore. It owns mempool caches, transmit buffers and
// timers that no other goroutine touches.
type Worker struct {
	_       [64]byte // the worker writes these fields all the time: no sharing
	id      int
	core    int
	Caches  Caches // this worker's mempool caches
	timers  timerHeap
	ext     Timers // advanced by the loop beside timers (SetTimers)
	stop    atomic.Bool
	stopc   chan struct{} // closed by Stop, for goroutines that wait
	stopMu  sync.Once
	done    chan struct{}
	err     error
	stats   PollStats      // owned by the worker goroutine
	pub     publishedStats // snapshot other goroutines may read
	pubAsk  atomic.Bool    // FreshStats asks the poll loop to publish now
	polling atomic.Bool    // the poll loop runs
	txq     []*TxBuffer
	running atomic.Bool
	tid     atomic.Int32 // the OS thread's id, once started
	busy    bool         // holds a busy claim (ClaimBusy); guarded by busy.mu
	_       [64]byte
}

var workerIDs atomic.Int32

// Cores lists the cores this process may run on: the affinity it started
// with. It is read once, at package initialisation, because the calling
// thread's own mask is no answer once workers pin threads: on a worker's
// thread it names that one core.
func Cores() ([]int, error) {
	if processCoresErr != nil {
		return nil, processCoresErr
	}
	return append([]int(nil), processCores...), nil
}

var processCores, processCoresErr = threadCores()

// threadCores lists the cores the calling thread may run on.
func threadCores() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cores []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}

// FormatCores writes a core list the way taskset and lscpu do ("0-3,6").
func FormatCores(cores []int) string {
	cs := append([]int(nil), cores...)
	sort.Ints(cs)
	var b strings.Builder
	for i := 0; i < len(cs); {
		j := i
		for j+1 < len(cs) && cs[j+1] == cs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cs[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cs[j]))
		}
		i = j + 1
	}
	return b.String()
}

// CheckCore refuses a core this process cannot run on, with a message that
// names the cores it can use.
func CheckCore(core int) error {
	if core == AnyCore {
		return nil
	}
	cores, err := Cores()
	if err != nil {
		return err
	}
	for _, c := range cores {
		if c == core {
			return nil
		}
	}
	return fmt.Errorf("core %d does not exist or is not allowed: this process may use cores %s", core, FormatCores(cores))
}

// NewWorker prepares a worker for a core; Start runs it.
func NewWorker(core int) (*Worker, error) {
	if err := CheckCore(core); err != nil {
		return nil, err
	}
	return &Worker{id: int(workerIDs.Add(1)) - 1, core: core, done: make(chan struct{}), stopc: make(chan struct{})}, nil
}

// Start runs fn on the worker's own pinned thread and returns once the thread
// is pinned, or with the error that stopped it. fn should return when Stopped
// reports true.
func (w *Worker) Start(fn func(w *Worker)) error {
	if !w.running.CompareAndSwap(false, true) {
		return fmt.Errorf("worker %d is already running", w.id)
	}
	pinned := make(chan error, 1)
	go func() {
		defer close(w.done)
		defer w.releaseBusy()
		runtime.LockOSThread()
		// The thread is never unlocked: it dies with the goroutine, so its
		// affinity mask never leaks to other goroutines.
		if w.core != AnyCore {
			var set unix.CPUSet
			set.Set(w.core)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				w.err = fmt.Errorf("pin worker %d to core %d: %w", w.id, w.core, err)
				pinned <- w.err
				return
			}
		}
		w.tid.Store(int32(unix.Gettid()))
		pinned <- nil
		defer w.Caches.Flush()
		fn(w)
	}()
	return <-pinned
}

// CPUTime is the CPU time the worker's thread has used, read from the
// kernel's per-thread clock (any goroutine may ask). A busy-polling worker
// accrues a second per second; one that sleeps, almost nothing.
func (w *Worker) CPUTime() time.Duration {
	tid := w.tid.Load()
	if tid == 0 {
		return 0
	}
	// The clock id of a thread's CPU clock: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^uint32(tid)<<3|6), &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// ID is the worker's number, unique in this process.
func (w *Worker) ID() int { return w.id }

// Core is the core the worker is pinned to, or AnyCore.
func (w *Worker) Core() int { return w.core }

// PinnedCores reads back the calling thread's affinity; a worker calls it to
// report the cores the kernel actually gave it.
func PinnedCores() ([]int, error) { return threadCores() }

// Stop asks the worker to return and waits until it has.
func (w *Worker) Stop() error {
	w.requestStop()
	if w.running.Load() {
		<-w.done
	} else {
		w.releaseBusy() // claimed but never started
	}
	return w.err
}

func (w *Worker) requestStop() {
	w.stopMu.Do(func() {
		w.stop.Store(true)
		close(w.stopc)
	})
}

// Stopped reports whether Stop has been called.
func (w *Worker) Stopped() bool { return w.stop.Load() }

// Done is closed when the worker's function has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/internal/futex"
)

// RxInterrupt is a receive queue's interrupt line, for drivers to embed: a
// mask (armed or not), the handler it calls, and coalescing like
// `ethtool -C rx-usecs rx-frames`. A driver calls Landed after it makes
// frames visible on the queue; the stack arms and disarms it.
//
// The handler runs on whichever goroutine made the frames land (the sender,
// for an in-memory port) or on the coalescing timer's goroutine: it plays the
// hard interrupt handler, so it must be short and must not block.
//
// Coalescing follows the NIC: the interrupt is raised once the frames waiting
// reach rx-frames, or rx-usecs after a frame landed on an armed queue,
// whichever comes first. rx-usecs 0 means no time coalescing, an interrupt
// for every landing; rx-frames above 1 is refused without rx-usecs, because
// a count alone would leave the last frames of a burst waiting for ever
// (Linux's ethtool.h allows it, and such a NIC strands them).
type RxInterrupt struct {
	_       [64]byte
	armed   atomic.Bool
	handler atomic.Pointer[func()]
	pending func() int // frames on the queue; any goroutine may call it
	// ready, for a delay line, counts the frames receivable at now and
	// says when the next one will be; only Arm calls it, on the queue's
	// receiving goroutine.
	ready  func(now int64) (n int, next int64)
	raised atomic.Uint64

	usecs      atomic.Int64
	frames     atomic.Int64
	timer      *irqTimer
	timerFires atomic.Uint64
	armRaised  atomic.Uint64 // raised by Arm because frames were already waiting
	// sampledNanos is the CPU time of the sampled interrupts' handlers, in
	// nanoseconds, and samples how many were sampled (see HandlerTime).
	sampledNanos atomic.Uint64
	samples      atomic.Uint64
	_            [64]byte
}

// NewRxInterrupt returns an interrupt line for a queue whose frames pending
// counts. Any goroutine may call pending, so it must not look into the
// queue's ring further than its length (a ring's consumer side belongs to the
// receiver alone).
func NewRxInterrupt(pending func() int) *RxInterrupt {
	ri := &RxInterrupt{pending: pending}
	ri.timer = &irqTimer{fire: ri.timerFired}
	return ri
}

// SetDelayLine makes the line serve a queue whose frames may be received only
// from a time of their own on (a delay line). ready reports how many frames
// may be received at now and when the next of the others may be (0 if none
// wait); Arm calls it, on the goroutine that receives from the queue, which
// alone may look into the ring. The driver reports landings with LandedAt.
// Call it before the line is armed.
func (ri *RxInterrupt) SetDelayLine(ready func(now int64) (n int, next int64)) { ri.ready = ready }

// SetHandler installs the handler; nil removes it.
func (ri *RxInterrupt) SetHandler(h func()) {
	if h == nil {
		ri.handler.Store(nil)
		return
	}
	ri.handler.Store(&h)
}

// ErrCoalesce is returned for coalescing settings out of range.
var ErrCoalesce = errors.New("coalescing: rx-usecs must be 0..1000000 and rx-frames 0..65536, and rx-frames above 1 needs rx-usecs")

// SetCoalesce sets rx-usecs and rx-frames; 0 and 0 (the default) raise an
// interrupt for every landing on an armed queue. rx-frames above 1 with
// rx-usecs 0 is refused: nothing would raise the interrupt for the frames
// short of the count.
func (ri *RxInterrupt) SetCoalesce(usecs, frames int) error {
	if usecs < 0 || usecs > 1e6 || frames < 0 || frames > 65536 {
		return ErrCoalesce
	}
	if usecs == 0 && frames > 1 {
		return fmt.Errorf("%w: rx-frames %d with rx-usecs 0 would leave up to %d frames waiting for ever", ErrCoalesce, frames, frames-1)
	}
	ri.usecs.Store(int64(usecs))
	ri.frames.Store(int64(frames))
	return nil
}

// Coalesce returns rx-usecs and rx-frames.
func (ri *RxInterrupt) Coalesce() (usecs, frames int) {
	return int(ri.usecs.Load()), int(ri.frames.Load())
}

// Raised counts interrupts raised.
func (ri *RxInterrupt) Raised() uint64 { return ri.raised.Load() }

// ArmRaised counts interrupts raised at arming time because frames had landed
// while the queue was masked: each is a frame the re-arm check saved.
func (ri *RxInterrupt) ArmRaised() uint64 { return ri.armRaised.Load() }

// Armed reports whether the interrupt is unmasked.
func (ri *RxInterrupt) Armed() bool { return ri.armed.Load() }

// HandlerTime estimates the CPU time spent in this line's interrupt handler
// (for NAPI: napi_schedule and the wake-up of the softirq), summed over every
// interrupt raised, on whichever thread raised it (the sender's, for an
// in-memory port, or the coalescing timer's). It is the hard interrupt work
// that a NIC's interrupt would make its core do, and a benchmark charges it
// to the interrupt mode's device under test.
//
// One interrupt in irqSampleEvery (the first, then every irqSampleEvery-th)
// is timed with the raising thread's CPU clock, and the estimate is the mean
// of those times over the interrupts raised: the count and a measured
// per-interrupt cost. The CPU clock, unlike the wall clock, does not run while
// the thread is preempted inside the handler, which on a shared machine
// would charge the interrupt for someone else's time. Reading it is a system
// call (about 640 ns on a 2-vCPU EPYC VM, against 25 ns for the vDSO's
// monotonic clock), too dear for every interrupt; sampled, it costs about
// 80 ns per interrupt on the raising thread. The clock reads' own cost,
// measured once per process, is subtracted from each sample. Left out: the
// mask and the count, one compare-and-swap and one atomic add.
func (ri *RxInterrupt) HandlerTime() time.Duration {
	n := ri.samples.Load()
	if n == 0 {
		return 0
	}
	mean := float64(ri.sampledNanos.Load()) / float64(n)
	return time.Duration(mean * float64(ri.raised.Load()))
}

// irqSampleEvery is how often an interrupt's handler is timed (HandlerTime).
const irqSampleEvery = 16

// threadCPU is the calling thread's CPU time in nanoseconds, 0 if unknown.
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

// clockCost is what two back-to-back reads of the thread's CPU clock
// measure with nothing between them: the reads' own cost, subtracted from
// every sample. It is the least of a few tries, measured once.
var clockCost = sync.OnceValue(func() int64 {
	best := int64(math.MaxInt64)
	for i := 0; i < 16; i++ {
		a := threadCPU()
		b := threadCPU()
		if a > 0 && b >= a {
			best = min(best, b-a)
		}
	}
	if best == math.MaxInt64 {
		return 0
	}
	return best
})

// fire masks the interrupt and calls the handler, once per arming.
func (ri *RxInterrupt) fire() bool {
	if !ri.armed.CompareAndSwap(true, false) {
		return false
	}
	n := ri.raised.Add(1)
	h := ri.handler.Load()
	if h == nil {
		return true
	}
	if n%irqSampleEvery != 1 {
		(*h)()
		return true
	}
	cost := clockCost()
	c0 := threadCPU()
	(*h)()
	c1 := threadCPU()
	// The raising goroutine may have moved to another thread between the
	// reads if it is not locked to one: a negative time is dropped.
	if c0 > 0 && c1 >= c0 {
		ri.sampledNanos.Add(uint64(max(c1-c0-cost, 0)))
		ri.samples.Add(1)
	}
	return true
}

// Landed tells the line that frames were made visible on the queue. The
// compare-and-swap that reads the mask is a full barrier: together with the
// one in Arm it closes the window in which a frame lands just as the queue is
// being armed (each side stores, then loads what the other stored).
func (ri *RxInterrupt) Landed() { ri.LandedAt(0) }

// LandedAt tells the line that frames were put on the queue that may be
// received from due (Nanotime) on, for a delay line; 0 means now. The frames
// count as landing at due: coalescing runs from then.
func (ri *RxInterrupt) LandedAt(due int64) {
	if !ri.armed.CompareAndSwap(true, true) {
		return
	}
	n := 0
	if ri.usecs.Load() > 0 && ri.frames.Load() > 0 {
		n = ri.pending()
	}
	ri.coalesce(due, n)
}

// coalesce raises the interrupt, now or by the timer, for frames that may be
// received from due on (0: now) with n frames on the queue; it reports
// whether it raised at once.
func (ri *RxInterrupt) coalesce(due int64, n int) bool {
	usecs, frames := ri.usecs.Load(), ri.frames.Load()
	var wait int64
	if usecs > 0 && (frames == 0 || int64(n) < frames) {
		wait = usecs * int64(time.Microsecond)
	}
	switch {
	case due == 0 && wait == 0:
		return ri.fire()
	case due == 0:
		due = Nanotime()
	case wait == 0 && due <= Nanotime():
		return ri.fire() // due already: no timer
	}
	ri.timer.at(due + wait)
	return false
}

// timerFired raises the interrupt if frames are on the queue. On a delay line
// they may not be due yet (the frames the timer was set for were received by
// a poll already running): the poll then finds nothing and its re-arm sets
// the timer for the next due time, so at worst one poll is wasted.
func (ri *RxInterrupt) timerFired() {
	ri.timerFires.Add(1)
	if ri.pending() > 0 {
		ri.fire()
	}
}

// Arm unmasks the interrupt. If frames are already waiting it raises at once
// (or starts the coalescing timer): a frame that landed while the queue was
// masked is never stranded. On a delay line whose frames are not due yet, it
// sets the timer for when the first one is. Call it on the goroutine that
// receives from the queue.
func (ri *RxInterrupt) Arm() {
	ri.armed.Store(true) // a full barrier on every architecture Go supports
	n := ri.pending()
	if n == 0 {
		return
	}
	var due int64
	if ri.ready != nil {
		ready, next := ri.ready(Nanotime())
		if ready == 0 {
			if next == 0 {
				return // taken since pending looked: nothing waits
			}
			due = next
		}
	}
	if ri.coalesce(due, n) {
		ri.armRaised.Add(1)
	}
}

// Disarm masks the interrupt.
func (ri *RxInterrupt) Disarm() { ri.armed.Store(false) }

// Stop releases the coalescing timer.
func (ri *RxInterrupt) Stop() {
	ri.armed.Store(false)
	ri.timer.stop()
}

// irqTimer is the coalescing timer: a goroutine on a thread of its own that
// sleeps in the kernel (futex waits with a timeout, so hrtimer precision)
// until the due time. A Go timer would be run by the scheduler of a
// processor, and when every processor is held by a busy-polling worker it
// fires a millisecond late or more, which would make rx-usecs meaningless.
//
// It holds one due time: a request earlier than the pending one replaces it,
// a later one is dropped. Dropping is safe because the line's fire raises the
// interrupt whenever frames wait, and the poll that follows re-arms, which
// asks again for whatever still waits.
type irqTimer struct {
	fire    func()
	once    sync.Once
	due     atomic.Int64  // Nanotime when to fire; 0 when idle
	word    atomic.Uint32 // futex word: bumped on every request and on stop
	stopped atomic.Bool
}

// at asks for fire to run at when (Nanotime), unless a request for an
// earlier time is pending. Any goroutine may call it.
func (t *irqTimer) at(when int64) {
	if t.stopped.Load() {
		return
	}
	when = max(when, 1) // 0 means idle
	for {
		cur := t.due.Load()
		if cur != 0 && cur <= when {
			return
		}
		if t.due.CompareAndSwap(cur, when) {
			break
		}
	}
	t.once.Do(func() { go t.loop() })
	t.word.Add(1)
	futex.Wake(&t.word, 1)
}

func (t *irqTimer) loop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !t.stopped.Load() {
		w := t.word.Load()
		due := t.due.Load()
		if due == 0 {
			futex.Wait(&t.word, w, 0) // idle until a request
			continue
		}
		if now := Nanotime(); now < due {
			futex.Wait(&t.word, w, time.Duration(due-now))
			continue
		}
		if t.due.CompareAndSwap(due, 0) { // not replaced by a newer request
			t.fire()
		}
	}
}

func (t *irqTimer) stop() {
	t.stopped.Store(true)
	t.word.Add(1)
	futex.Wake(&t.word, 1)
}

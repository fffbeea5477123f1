package engine

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

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
type RxInterrupt struct {
	_       [64]byte
	armed   atomic.Bool
	handler atomic.Pointer[func()]
	pending func() int // frames waiting on the queue; set by the driver
	raised  atomic.Uint64

	// Coalescing: raise once frames waiting reach frames, or usecs after
	// the first frame landed on an armed queue, whichever comes first.
	usecs      atomic.Int64
	frames     atomic.Int64
	timerSet   atomic.Bool // a timer is pending
	timer      *irqTimer
	timerFires atomic.Uint64
	armRaised  atomic.Uint64 // raised by Arm because frames were already waiting
	_          [64]byte
}

// NewRxInterrupt returns an interrupt line for a queue whose waiting frames
// pending counts (it may be called from any goroutine).
func NewRxInterrupt(pending func() int) *RxInterrupt {
	ri := &RxInterrupt{pending: pending}
	ri.timer = &irqTimer{fire: ri.timerFired}
	return ri
}

// SetHandler installs the handler; nil removes it.
func (ri *RxInterrupt) SetHandler(h func()) {
	if h == nil {
		ri.handler.Store(nil)
		return
	}
	ri.handler.Store(&h)
}

// ErrCoalesce is returned for coalescing settings out of range.
var ErrCoalesce = errors.New("coalescing: rx-usecs must be 0..1000000 and rx-frames 0..65536")

// SetCoalesce sets rx-usecs and rx-frames; 0 and 0 (the default) raise an
// interrupt for every landing on an armed queue.
func (ri *RxInterrupt) SetCoalesce(usecs, frames int) error {
	if usecs < 0 || usecs > 1e6 || frames < 0 || frames > 65536 {
		return ErrCoalesce
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

// fire masks the interrupt and calls the handler, once per arming.
func (ri *RxInterrupt) fire() bool {
	if !ri.armed.CompareAndSwap(true, false) {
		return false
	}
	ri.raised.Add(1)
	if h := ri.handler.Load(); h != nil {
		(*h)()
	}
	return true
}

// Landed tells the line that frames were made visible on the queue. The
// compare-and-swap that reads the mask is a full barrier: together with the
// one in Arm it closes the window in which a frame lands just as the queue is
// being armed (each side stores, then loads what the other stored).
func (ri *RxInterrupt) Landed() {
	if !ri.armed.CompareAndSwap(true, true) {
		return
	}
	usecs, frames := ri.usecs.Load(), ri.frames.Load()
	if usecs == 0 && frames <= 1 {
		ri.fire()
		return
	}
	if frames > 0 && int64(ri.pending()) >= frames {
		ri.fire()
		return
	}
	if usecs == 0 {
		return // rx-frames only: wait for more frames
	}
	if ri.timerSet.CompareAndSwap(false, true) {
		ri.timer.after(time.Duration(usecs) * time.Microsecond)
	}
}

func (ri *RxInterrupt) timerFired() {
	ri.timerFires.Add(1)
	ri.timerSet.Store(false)
	if ri.pending() > 0 {
		ri.fire()
	}
}

// Arm unmasks the interrupt. If frames are already waiting it raises at once
// (or starts the coalescing timer): a frame that landed while the queue was
// masked is never stranded.
func (ri *RxInterrupt) Arm() {
	ri.armed.Store(true) // a full barrier on every architecture Go supports
	if n := ri.pending(); n > 0 {
		usecs, frames := ri.usecs.Load(), ri.frames.Load()
		if usecs == 0 || (frames > 0 && int64(n) >= frames) {
			if ri.fire() {
				ri.armRaised.Add(1)
			}
		} else if ri.timerSet.CompareAndSwap(false, true) {
			ri.timer.after(time.Duration(usecs) * time.Microsecond)
		}
	}
}

// Disarm masks the interrupt.
func (ri *RxInterrupt) Disarm() { ri.armed.Store(false) }

// Stop releases the coalescing timer.
func (ri *RxInterrupt) Stop() {
	ri.armed.Store(false)
	ri.timer.stop()
}

// RaiseAfter raises the interrupt after d if it is still armed and frames are
// waiting then, for drivers whose frames become receivable later (a delay
// line). It shares the coalescing timer.
func (ri *RxInterrupt) RaiseAfter(d time.Duration) {
	if ri.timerSet.CompareAndSwap(false, true) {
		ri.timer.after(max(d, time.Microsecond))
	}
}

// irqTimer is the coalescing timer: a goroutine on a thread of its own that
// sleeps in the kernel (futex waits with a timeout, so hrtimer precision)
// until the due time. A Go timer would be run by the scheduler of a
// processor, and when every processor is held by a busy-polling worker it
// fires a millisecond late or more, which would make rx-usecs meaningless.
type irqTimer struct {
	fire    func()
	once    sync.Once
	due     atomic.Int64  // Nanotime when to fire; 0 when idle
	word    atomic.Uint32 // futex word: bumped on every request and on stop
	stopped atomic.Bool
}

// after asks for fire to run d from now (the caller ensures one request at
// a time is pending).
func (t *irqTimer) after(d time.Duration) {
	if t.stopped.Load() {
		return
	}
	t.once.Do(func() { go t.loop() })
	t.due.Store(Nanotime() + int64(d))
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

// Package socket holds what every socket type shares: wait queues on which
// blocked goroutines park until the stack signals readiness, the notifier
// whose callbacks carry what changed to those queues and to pollers, the
// counters of parks and wake-ups, and a poller in the manner of epoll.
package socket

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/internal/futex"
)

// Errors of blocking calls: the net package's own, which its callers test for.
var (
	ErrClosed  = net.ErrClosed
	ErrTimeout = os.ErrDeadlineExceeded
)

// Counters count how goroutines waited. They are shared by the sockets of one
// stack so that a run can report parks and wake-ups per mode.
type Counters struct {
	// Parks is the number of times a goroutine went to sleep on a wait queue.
	Parks atomic.Uint64
	// Wakeups is the number of those sleeps ended by a wake-up rather than
	// by a deadline.
	Wakeups atomic.Uint64
	// ExclusiveWakeups is the number of Wakeups that chose one exclusive
	// waiter and left the other exclusive waiters asleep (WQ_FLAG_EXCLUSIVE);
	// Wakeups minus these woke every waiter of a queue.
	ExclusiveWakeups atomic.Uint64
	// Handoffs is the number of wake-ups a consumer handed on to the next
	// exclusive waiter because what it waited for was still there (PassOn).
	Handoffs atomic.Uint64
	// Spins is the number of non-blocking attempts that found nothing (poll
	// mode).
	Spins atomic.Uint64
}

// waiter is one parked goroutine. It sleeps in the kernel on word (a futex)
// so that the waker's system call wakes its thread at once: a Go channel
// would leave it queued behind the waker's goroutine, which in a busy
// softirq may not yield its processor for a long time.
type waiter struct {
	word      atomic.Uint32 // 0 while asleep, 1 once woken
	exclusive bool          // written by its goroutine before it is queued
	chosen    bool          // woken alone among the exclusive waiters; written by the waker before word
	// next links the queue, guarded by the queue's mu; once a waker unlinks
	// the waiter it uses next for its own list until it sets word.
	next *waiter
}

var waiterPool = sync.Pool{New: func() any { return new(waiter) }}

// sleep waits until the waiter is woken or the deadline passes (a zero
// deadline never does); it reports whether it was woken.
func (w *waiter) sleep(deadline time.Time) bool {
	for w.word.Load() == 0 {
		left := time.Duration(0)
		if !deadline.IsZero() {
			if left = time.Until(deadline); left <= 0 {
				return false
			}
		}
		futex.Wait(&w.word, 0, left)
	}
	return true
}

// wake marks the waiter woken and wakes its thread. After the store its
// goroutine may reuse the waiter: a late futex wake then lands on a reused
// waiter, and is only a spurious one, which sleep re-checks.
func (w *waiter) wake() {
	w.word.Store(1)
	futex.Wake(&w.word, 1)
}

// WaitQueue is where goroutines sleep until a condition holds, like a
// wait_queue_head_t: the stack calls Wake after it changes what the condition
// reads (the data-ready callback, sk_data_ready), and sleepers re-check it.
//
// Exclusive waiters are woken one per Wake, the others all at once, so that
// one arrival does not rouse a herd of readers of which all but one find
// nothing. An exclusive waiter that a Wake chose owes the queue what it was
// woken for: it consumes it, or hands the wake-up on with PassOn. A consumer
// that leaves something behind does the same, since one callback may stand
// for a burst of arrivals.
//
// Wakers take no lock when nobody sleeps. This is safe because a waiter is
// counted in sleepers before it re-checks its condition, and a waker changes
// the condition before it reads sleepers: either the waiter's re-check sees
// the change or the waker sees the waiter (wq_has_sleeper). The condition
// must therefore be written with an atomic or under a lock that the
// condition's reader also takes.
type WaitQueue struct {
	mu sync.Mutex
	// head and tail hold the non-exclusive waiters first, then the exclusive
	// ones in arrival order, so that a Wake stops at the first exclusive
	// one. Guarded by mu.
	head, tail *waiter
	// closed is written under mu, so that a waiter that checks it under mu
	// before queueing is either refused or woken by Close; Wait reads it
	// without mu before anything else.
	closed   atomic.Bool
	sleepers atomic.Int32 // waiters queued; written under mu, read by wakers without it
	counters *Counters
}

// NewWaitQueue returns a queue whose parks and wake-ups go to c (may be nil).
func NewWaitQueue(c *Counters) *WaitQueue { return &WaitQueue{counters: c} }

// Wait blocks until ready returns true, the deadline passes (a zero deadline
// never does), or the queue is closed. ready is called with no lock held by
// the queue and must be safe to call from the waiting goroutine. An exclusive
// waiter for which Wait returns nil must consume what ready saw or call
// PassOn.
//
// A closed queue fails every Wait with ErrClosed, even one whose condition
// holds: a hang-up makes a socket read as ready for ever, so a caller that
// waits until an error would otherwise spin on nil returns.
func (q *WaitQueue) Wait(ready func() bool, deadline time.Time, exclusive bool) error {
	for {
		if q.closed.Load() {
			return ErrClosed
		}
		if ready() {
			return nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return ErrTimeout
		}
		w := waiterPool.Get().(*waiter)
		w.exclusive, w.chosen, w.next = exclusive, false, nil
		w.word.Store(0)
		q.mu.Lock()
		if q.closed.Load() {
			q.mu.Unlock()
			waiterPool.Put(w)
			return ErrClosed
		}
		q.push(w)
		q.mu.Unlock()
		// Readiness may have come between the check and the enqueue, with
		// its Wake finding nobody: check again now that we are counted.
		if ready() {
			q.leave(w)
			waiterPool.Put(w)
			return nil // a wake-up that chose us meanwhile is ours to consume
		}
		if q.counters != nil {
			q.counters.Parks.Add(1)
		}
		woken := w.sleep(deadline) || q.leave(w)
		if woken && q.counters != nil {
			q.counters.Wakeups.Add(1)
			if w.chosen {
				q.counters.ExclusiveWakeups.Add(1)
			}
		}
		waiterPool.Put(w)
		// Loop: a Close that woke us set closed before our word, so it
		// fails us; else re-check ready, then the deadline. A chosen waiter
		// that finds ready true returns nil and consumes; one that finds it
		// false leaves nothing behind to hand on.
	}
}

// push queues w: a non-exclusive waiter at the head, an exclusive one at the
// tail (add_wait_queue, add_wait_queue_exclusive). Called under mu.
func (q *WaitQueue) push(w *waiter) {
	switch {
	case q.head == nil:
		q.head, q.tail = w, w
	case w.exclusive:
		q.tail.next = w
		q.tail = w
	default:
		w.next = q.head
		q.head = w
	}
	q.sleepers.Add(1)
}

// leave takes w off the queue and reports whether a wake-up took it first;
// then it waits for that waker's store, after which w may be reused.
func (q *WaitQueue) leave(w *waiter) bool {
	q.mu.Lock()
	var prev *waiter
	for c := q.head; c != nil; prev, c = c, c.next {
		if c == w {
			if prev == nil {
				q.head = c.next
			} else {
				prev.next = c.next
			}
			if q.tail == c {
				q.tail = prev
			}
			q.sleepers.Add(-1)
			q.mu.Unlock()
			return false
		}
	}
	q.mu.Unlock()
	w.sleep(time.Time{}) // unlinked by a waker that is about to set word
	return true
}

// wakeMode says whom a wake-up wakes.
type wakeMode uint8

const (
	wakeOne  wakeMode = iota // every non-exclusive waiter and the first exclusive one
	wakeAll                  // every waiter
	wakeNext                 // the first exclusive waiter only
)

// wake unlinks the waiters mode selects under the lock, then wakes them
// outside it, so that a waiter queueing is not held up by the system calls.
func (q *WaitQueue) wake(mode wakeMode) int {
	if q.sleepers.Load() == 0 {
		return 0
	}
	q.mu.Lock()
	var first, last, prev *waiter
	n := 0
	for c := q.head; c != nil; {
		next := c.next
		if mode == wakeNext && !c.exclusive {
			prev, c = c, next
			continue
		}
		if prev == nil {
			q.head = next
		} else {
			prev.next = next
		}
		if q.tail == c {
			q.tail = prev
		}
		c.next = nil
		c.chosen = c.exclusive && mode != wakeAll
		if last == nil {
			first = c
		} else {
			last.next = c
		}
		last = c
		n++
		if c.chosen {
			break // exclusive waiters after it stay asleep
		}
		c = next
	}
	q.sleepers.Add(-int32(n))
	q.mu.Unlock()
	for c := first; c != nil; {
		next := c.next // read before waking: once woken, its goroutine may reuse it
		c.wake()
		c = next
	}
	return n
}

// Wake wakes every non-exclusive waiter and the first exclusive one, and
// reports how many it woke. With nobody asleep it takes no lock.
func (q *WaitQueue) Wake() int { return q.wake(wakeOne) }

// WakeAll wakes every waiter, exclusive or not: for a change every waiter
// must see, such as an end of stream or a new deadline.
func (q *WaitQueue) WakeAll() int { return q.wake(wakeAll) }

// PassOn wakes the next exclusive waiter if more reports that what waiters
// wait for is still there, and reports whether it woke one. A consumer calls
// it after taking one item, and an exclusive waiter that leaves without
// consuming calls it before it goes, so that nothing waits while its readers
// sleep. With nobody asleep it neither calls more nor takes a lock.
func (q *WaitQueue) PassOn(more func() bool) bool {
	if q.sleepers.Load() == 0 || !more() {
		return false
	}
	if q.wake(wakeNext) == 0 {
		return false
	}
	if q.counters != nil {
		q.counters.Handoffs.Add(1)
	}
	return true
}

// Waiters counts the goroutines asleep on the queue.
func (q *WaitQueue) Waiters() int { return int(q.sleepers.Load()) }

// Close wakes everyone and makes every later Wait fail with ErrClosed.
func (q *WaitQueue) Close() {
	q.mu.Lock()
	q.closed.Store(true)
	q.mu.Unlock()
	q.wake(wakeAll)
}

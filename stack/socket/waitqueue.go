// Package socket holds what every socket type shares: wait queues on which
// blocked goroutines park until the stack signals readiness, the counters of
// parks and wake-ups, and a poller in the manner of epoll.
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
	Parks   atomic.Uint64 // goroutines that went to sleep on a wait queue
	Wakeups atomic.Uint64 // goroutines woken by a readiness callback
	Spins   atomic.Uint64 // non-blocking attempts that found nothing (poll mode)
}

// waiter is one parked goroutine. It sleeps in the kernel on word (a futex)
// so that the waker's system call wakes its thread at once: a Go channel
// would leave it queued behind the waker's goroutine, which in a busy
// softirq may not yield its processor for a long time.
type waiter struct {
	word      atomic.Uint32 // 0 while asleep, 1 once woken
	exclusive bool
	woken     bool
	next      *waiter
}

var waiterPool = sync.Pool{New: func() any { return new(waiter) }}

// sleep waits until the waiter is woken or d passes (d <= 0: no limit); it
// reports whether it was woken.
func (w *waiter) sleep(d time.Duration) bool {
	var end time.Time
	if d > 0 {
		end = time.Now().Add(d)
	}
	for w.word.Load() == 0 {
		left := time.Duration(0)
		if d > 0 {
			if left = time.Until(end); left <= 0 {
				return false
			}
		}
		futex.Wait(&w.word, 0, left)
	}
	return true
}

// wake marks the waiter woken and wakes its thread.
func (w *waiter) wake() {
	w.word.Store(1)
	futex.Wake(&w.word, 1)
}

// WaitQueue is where goroutines sleep until a condition holds, like a
// wait_queue_head_t: the stack calls Wake after it changes what the condition
// reads (the data-ready callback, sk_data_ready), and sleepers re-check it.
// Exclusive waiters are woken one per Wake, the others all at once.
type WaitQueue struct {
	mu       sync.Mutex
	head     *waiter
	tail     *waiter
	closed   bool
	counters *Counters
}

// NewWaitQueue returns a queue whose parks and wake-ups go to c (may be nil).
func NewWaitQueue(c *Counters) *WaitQueue { return &WaitQueue{counters: c} }

// Wait blocks until ready returns true, the deadline passes (a zero deadline
// never does), or the queue is closed. ready is called with no lock held by
// the queue and must be safe to call from the waiting goroutine.
func (q *WaitQueue) Wait(ready func() bool, deadline time.Time, exclusive bool) error {
	for {
		if ready() {
			return nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return ErrTimeout
		}
		w := waiterPool.Get().(*waiter)
		w.exclusive, w.woken, w.next = exclusive, false, nil
		w.word.Store(0)
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			waiterPool.Put(w)
			return ErrClosed
		}
		q.push(w)
		q.mu.Unlock()
		// Readiness may have come between the check and the enqueue, with
		// its Wake finding nobody: check again now that we are queued.
		if ready() {
			q.remove(w)
			return nil
		}
		if q.counters != nil {
			q.counters.Parks.Add(1)
		}
		timedOut := false
		if deadline.IsZero() {
			w.sleep(0)
		} else if !w.sleep(time.Until(deadline)) {
			timedOut = q.remove(w) // false: woken just as time ran out
		}
		if !timedOut && q.counters != nil {
			q.counters.Wakeups.Add(1)
		}
		waiterPool.Put(w)
		q.mu.Lock()
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return ErrClosed
		}
	}
}

func (q *WaitQueue) push(w *waiter) {
	if q.tail == nil {
		q.head, q.tail = w, w
		return
	}
	q.tail.next = w
	q.tail = w
}

// remove takes w off the queue; false if a Wake took it first.
func (q *WaitQueue) remove(w *waiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
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
			return true
		}
	}
	return false
}

// Wake wakes every non-exclusive waiter and the first exclusive one, and
// reports how many it woke.
func (q *WaitQueue) Wake() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	exclusiveWoken := false
	var prev *waiter
	for c := q.head; c != nil; {
		next := c.next
		if c.exclusive && exclusiveWoken {
			prev, c = c, next // one exclusive waiter per wake-up
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
		// Read c before waking it: once woken, its goroutine may reuse it
		// (a late futex wake on a reused waiter is only a spurious one).
		exclusiveWoken = exclusiveWoken || c.exclusive
		c.woken = true
		c.wake()
		n++
		c = next
	}
	return n
}

// Waiters counts the goroutines asleep on the queue.
func (q *WaitQueue) Waiters() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for c := q.head; c != nil; c = c.next {
		n++
	}
	return n
}

// Close wakes everyone and makes every later Wait fail with ErrClosed.
func (q *WaitQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	for q.Wake() > 0 {
	}
}

package engine

import "container/heap"

// timer is a function due at a monotonic time, repeating every period if
// period > 0.
type timer struct {
	due    int64
	period int64
	fn     func(now int64)
	seq    uint64 // keeps equal deadlines in the order they were set
}

type timerHeap struct {
	ts  []*timer
	seq uint64
}

func (h *timerHeap) Len() int { return len(h.ts) }
func (h *timerHeap) Less(i, j int) bool {
	a, b := h.ts[i], h.ts[j]
	return a.due < b.due || a.due == b.due && a.seq < b.seq
}
func (h *timerHeap) Swap(i, j int) { h.ts[i], h.ts[j] = h.ts[j], h.ts[i] }
func (h *timerHeap) Push(x any)    { h.ts = append(h.ts, x.(*timer)) }
func (h *timerHeap) Pop() any {
	t := h.ts[len(h.ts)-1]
	h.ts = h.ts[:len(h.ts)-1]
	return t
}

// next is the earliest deadline, or false when no timer is set.
func (h *timerHeap) next() (int64, bool) {
	if len(h.ts) == 0 {
		return 0, false
	}
	return h.ts[0].due, true
}

func (h *timerHeap) add(due, period int64, fn func(int64)) {
	h.seq++
	heap.Push(h, &timer{due: due, period: period, fn: fn, seq: h.seq})
}

// run calls every timer due at now and reschedules periodic ones; a periodic
// timer that fell behind runs once and skips the missed periods.
func (h *timerHeap) run(now int64) int {
	n := 0
	for len(h.ts) > 0 && h.ts[0].due <= now {
		t := h.ts[0]
		if t.period > 0 {
			t.due += t.period
			if t.due <= now {
				t.due = now + t.period
			}
			h.seq++
			t.seq = h.seq
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
		t.fn(now)
		n++
	}
	return n
}

// After runs fn on the worker once, d nanoseconds from now. Only the worker's
// own goroutine may call it.
func (w *Worker) After(d int64, fn func(now int64)) {
	w.timers.add(Nanotime()+d, 0, fn)
}

// Every runs fn on the worker every period nanoseconds. Only the worker's own
// goroutine may call it.
func (w *Worker) Every(period int64, fn func(now int64)) {
	if period <= 0 {
		period = 1
	}
	w.timers.add(Nanotime()+period, period, fn)
}

// Timers is a timer structure a worker's loop advances: a stack shard's timer
// wheel. Next is the earliest deadline, in Nanotime's clock, or false when
// nothing is armed; Advance fires every timer due at now and returns how
// many fired. The loop calls both on the worker's goroutine; a Timers that
// other goroutines arm guards itself, and with a Softirq its armer calls
// Softirq.Kick after arming an earlier deadline.
type Timers interface {
	Next() (when int64, ok bool)
	Advance(now int64) int
}

// SetTimers gives the worker a Timers that its loop (Poll, or the Run of a
// Softirq on it) advances whenever it is due, beside the worker's own After
// and Every timers. Call it before the loop starts.
func (w *Worker) SetTimers(t Timers) { w.ext = t }

// RunTimers fires the worker's timers due at now, its own and its Timers',
// for loops other than Poll and Softirq.Run, and returns how many fired.
func (w *Worker) RunTimers(now int64) int {
	n := w.timers.run(now)
	if w.ext != nil {
		if when, ok := w.ext.Next(); ok && when <= now {
			n += w.ext.Advance(now)
		}
	}
	return n
}

// nextTimer is the earliest deadline of the worker's timers, its own and
// its Timers', or false when none is armed.
func (w *Worker) nextTimer() (int64, bool) {
	due, ok := w.timers.next()
	if w.ext != nil {
		if when, armed := w.ext.Next(); armed && (!ok || when < due) {
			due, ok = when, true
		}
	}
	return due, ok
}

// runDueTimers fires what is due and returns how many fired. It reads the
// clock only when a timer is armed: a loop with none pays a Next call and a
// heap length per round.
func (w *Worker) runDueTimers(clock func() int64) int {
	due, ok := w.nextTimer()
	if !ok {
		return 0
	}
	now := clock()
	if now < due {
		return 0
	}
	return w.RunTimers(now)
}

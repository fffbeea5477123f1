package stack

// timer is a one-shot deadline. Its owner sets fire once, when it makes the
// timer; the timers implementation that arms it keeps the other fields.
type timer struct {
	fire func(now int64) // called once the deadline has passed; may re-arm
	when int64           // the deadline, in nanoseconds of the stack's clock
	slot int             // the implementation's bookkeeping; 0 when not armed
}

// timers arms and cancels timers for the stack's protocol state machines
// (the neighbour table today), so that they never own a goroutine or a
// runtime timer per entry. Arming an armed timer moves its deadline.
// Callers and implementation run under the stack lock.
//
// timerHeap implements it, driven by the stack's tick; a timer wheel per
// shard is meant to replace it without the state machines changing.
type timers interface {
	arm(t *timer, when int64)
	cancel(t *timer)
}

// timerHeap is a binary min-heap of armed timers by deadline. A timer's slot
// is its index in the heap plus one.
type timerHeap struct {
	ts []*timer
}

func (h *timerHeap) arm(t *timer, when int64) {
	t.when = when
	if t.slot == 0 {
		h.ts = append(h.ts, t)
		t.slot = len(h.ts)
		h.up(len(h.ts) - 1)
		return
	}
	i := t.slot - 1
	if !h.up(i) {
		h.down(i)
	}
}

func (h *timerHeap) cancel(t *timer) {
	if t.slot == 0 {
		return
	}
	i := t.slot - 1
	last := len(h.ts) - 1
	if i != last {
		h.swap(i, last)
	}
	h.ts[last] = nil
	h.ts = h.ts[:last]
	t.slot = 0
	if i != last {
		if !h.up(i) {
			h.down(i)
		}
	}
}

// run fires every timer whose deadline is at or before now, earliest first,
// and returns how many fired. A timer that re-arms itself for a time not
// after now fires again in the same run, so fire must move its deadline on.
func (h *timerHeap) run(now int64) int {
	n := 0
	for len(h.ts) > 0 && h.ts[0].when <= now {
		t := h.ts[0]
		h.cancel(t)
		t.fire(now)
		n++
	}
	return n
}

// len is the number of armed timers.
func (h *timerHeap) len() int { return len(h.ts) }

func (h *timerHeap) swap(i, j int) {
	h.ts[i], h.ts[j] = h.ts[j], h.ts[i]
	h.ts[i].slot = i + 1
	h.ts[j].slot = j + 1
}

// up moves the timer at i towards the root while it is due sooner than its
// parent, and reports whether it moved.
func (h *timerHeap) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if h.ts[p].when <= h.ts[i].when {
			break
		}
		h.swap(i, p)
		i = p
		moved = true
	}
	return moved
}

func (h *timerHeap) down(i int) {
	n := len(h.ts)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h.ts[c+1].when < h.ts[c].when {
			c++
		}
		if h.ts[i].when <= h.ts[c].when {
			return
		}
		h.swap(i, c)
		i = c
	}
}

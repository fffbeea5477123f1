// Package timer is the hierarchical timer wheel of one shard of the stack.
// A Timer is embedded in its owner (a neighbour entry, a connection), arming
// and cancelling it are O(1) and allocate nothing, and the shard's loop turns
// the Wheel with Advance; no timer owns a goroutine or a runtime timer.
//
// The wheel is Varghese and Lauck's hierarchical timing wheel with
// cascading, the shape of Linux's wheel before 4.8 (cascade in
// kernel/time/timer.c). Time is counted in ticks of a granularity chosen at
// Init, and a deadline is rounded up to a whole tick. There are 6 levels of
// 64 slots. A timer waits at the level of the highest 6-bit digit in which
// its tick differs from the wheel's current tick, in the slot named by its
// own digit there. When the current tick reaches the start of an occupied
// slot, that slot's timers move down a level (or fire), so a far timer
// keeps full precision: it fires at the first Advance at or after its
// deadline rounded up to the tick, whatever its level. Each timer cascades
// at most 5 times per arming. Deadlines beyond the levels' range (2^36
// ticks, about 795 days at 1 ms) wait in an overflow list, which is scanned
// when time reaches the range of its earliest timer.
//
// One bitmap per level marks the occupied slots. The next slot to visit is
// the lowest set bit of the lowest non-empty level, so Next and an Advance
// over an idle hour cost a few instructions per occupied slot, never one
// per tick passed.
//
// A Wheel and its timers are not safe for concurrent use: one shard's loop
// owns them, and callbacks run on it, inside Advance.
package timer

// Timer is a one-shot deadline embedded in its owner. The zero value is
// unarmed; Init sets the callback once, before the first Arm. A timer is
// armed on one wheel at a time, and only that wheel may cancel it.
type Timer struct {
	fire func(now int64) // called once the deadline has passed; may re-arm
	when int64           // the deadline last armed, ns of the stack's clock
	tick uint64          // the deadline's tick, biased (see Wheel.cur)

	// The list that holds the timer, doubly linked so that a cancel unlinks
	// in O(1). list is the index of that list in Wheel.lists plus one, and
	// 0 when the timer is not armed.
	next, prev *Timer
	list       uint16
}

// Init sets the function that Advance calls, with its time, once the
// deadline has passed. The callback may arm or cancel any timer of the
// wheel, itself included.
func (t *Timer) Init(fire func(now int64)) { t.fire = fire }

// Armed reports whether the timer waits to fire.
func (t *Timer) Armed() bool { return t.list != 0 }

// When is the deadline last armed, in nanoseconds of the stack's clock.
func (t *Timer) When() int64 { return t.when }

// list is a FIFO of timers: timers due in the same tick fire in the order
// they reached the list.
type list struct {
	first, last *Timer
}

func (l *list) push(t *Timer) {
	t.next = nil
	t.prev = l.last
	if l.last == nil {
		l.first = t
	} else {
		l.last.next = t
	}
	l.last = t
}

func (l *list) remove(t *Timer) {
	if t.prev == nil {
		l.first = t.next
	} else {
		t.prev.next = t.next
	}
	if t.next == nil {
		l.last = t.prev
	} else {
		t.next.prev = t.prev
	}
	t.next, t.prev = nil, nil
}

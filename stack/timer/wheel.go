package timer

import (
	"math"
	"math/bits"
)

const (
	slotBits  = 6
	slots     = 1 << slotBits // per level: one uint64 bitmap covers them
	levels    = 6
	rangeBits = slotBits * levels // the levels hold ticks within 2^36 of now

	// Lists after the levels' slots in Wheel.lists.
	dueList    = levels * slots // armed for a time already passed
	firingList = dueList + 1    // taken off the wheel by this Advance
	overList   = dueList + 2    // beyond the levels' range
	numLists   = dueList + 3

	// DefaultTick is the granularity of a wheel initialised with tick 0.
	DefaultTick = int64(1e6)
)

// Wheel holds armed timers and fires them as Advance moves it through time.
// Init it before use. It is not safe for concurrent use: one shard's loop
// owns it (see the package comment).
//
// Order: Advance fires timers in order of their deadlines rounded up to the
// tick, and timers due in the same tick in the order they were last armed.
// A timer armed for a time at or before the wheel's time (the last Advance's
// now, or Init's) goes ahead of all others on the next Advance, such timers
// among themselves in arming order.
type Wheel struct {
	tick int64 // granularity, ns
	now  int64 // the latest time given to Init or Advance

	// cur is the current tick, floor(now/tick), biased by flipping its sign
	// bit so that unsigned order is time order (as is Timer.tick). Every
	// timer at level L has the same digits above L as cur and a larger
	// digit at L; a timer in the overflow list differs from cur above the
	// top level. Advance keeps this by visiting every occupied slot's start
	// in time order and re-placing the slot's timers there.
	cur uint64

	n       int    // armed timers
	overMin uint64 // at or below every overflow timer's tick, when any
	running bool   // inside Advance

	occupied [levels]uint64 // bit s of level L: lists[L*slots+s] is not empty
	lists    [numLists]list
}

// Init readies the wheel at time now (ns of the stack's monotonic clock)
// with granularity tick (ns; 0 means DefaultTick, 1 ms). It panics if
// timers are armed on the wheel.
func (w *Wheel) Init(now int64, tick int64) {
	if tick < 0 {
		panic("timer: negative tick")
	}
	if w.n != 0 {
		panic("timer: Init of a wheel with armed timers")
	}
	if tick == 0 {
		tick = DefaultTick
	}
	*w = Wheel{tick: tick, now: now, cur: bias(floorDiv(now, tick))}
}

// Len is the number of armed timers.
func (w *Wheel) Len() int { return w.n }

// Arm sets t's deadline to when and arms it; arming an armed timer moves
// it. A deadline at or before the wheel's time fires on the next Advance,
// never within the Advance running now (so a callback that re-arms itself
// for a time already passed cannot loop).
func (w *Wheel) Arm(t *Timer, when int64) {
	if w.tick == 0 {
		panic("timer: Arm on a wheel before Init")
	}
	if t.fire == nil {
		panic("timer: Arm of a timer with no callback")
	}
	if t.list != 0 {
		w.unlink(t)
	} else {
		w.n++
	}
	t.when = when
	if when <= w.now {
		w.lists[dueList].push(t)
		t.list = dueList + 1
		return
	}
	// when > now >= cur*tick, so the tick is after cur.
	t.tick = bias(ceilDiv(when, w.tick))
	w.place(t)
}

// Cancel disarms t; it does nothing if t is not armed.
func (w *Wheel) Cancel(t *Timer) {
	if t.list == 0 {
		return
	}
	w.unlink(t)
	w.n--
}

// Advance moves the wheel to now and fires every timer due: those armed for
// a time at or before the wheel's previous time, then every timer whose
// deadline rounded up to the tick is at or before now, in the order the
// Wheel comment states. It returns how many fired. Callbacks get now and
// may arm and cancel any timer; they must not call Advance. Time never runs
// backwards: a now before the wheel's time only fires what is due then.
// It is like __run_timers before Linux 4.8, which cascaded as well.
func (w *Wheel) Advance(now int64) int {
	if w.tick == 0 {
		panic("timer: Advance on a wheel before Init")
	}
	if w.running {
		panic("timer: Advance called from a timer callback")
	}
	w.running = true
	defer func() { w.running = false }()

	if now > w.now {
		w.now = now
	}
	target := bias(floorDiv(w.now, w.tick))
	fired := 0
	if d := &w.lists[dueList]; d.first != nil {
		// Take the whole list, so that what callbacks arm for the past now
		// waits for the next Advance.
		for t := d.first; t != nil; t = t.next {
			t.list = firingList + 1
		}
		w.lists[firingList] = *d
		*d = list{}
		fired += w.run()
	}
	for {
		e, lvl, ok := w.nextEvent()
		if !ok || e > target {
			break
		}
		w.cur = e
		w.expire(lvl)
		fired += w.run()
	}
	// No occupied slot starts in (cur, target], so the wheel's invariant
	// holds at target as well.
	w.cur = target
	return fired
}

// Next returns a time at or before the moment the earliest armed timer
// fires, so that a loop may sleep until then and Advance; ok is false when
// no timer is armed. It is exact when the earliest timer sits at the lowest
// level, and else the start of its slot, after which an Advance moves it
// down and Next is closer. It costs a look at each level's bitmap.
func (w *Wheel) Next() (when int64, ok bool) {
	if w.n == 0 {
		return 0, false
	}
	if w.lists[dueList].first != nil || w.lists[firingList].first != nil {
		return w.now, true
	}
	e, _, ok := w.nextEvent()
	if !ok {
		return 0, false
	}
	return w.timeOf(e), true
}

// place links t, whose tick is after cur, into the slot the invariant on
// cur names, or into the overflow list.
func (w *Wheel) place(t *Timer) {
	lvl := (bits.Len64(t.tick^w.cur) - 1) / slotBits
	if lvl >= levels {
		o := &w.lists[overList]
		if o.first == nil || t.tick < w.overMin {
			w.overMin = t.tick
		}
		o.push(t)
		t.list = overList + 1
		return
	}
	s := int(t.tick>>(lvl*slotBits)) & (slots - 1)
	i := lvl*slots + s
	w.lists[i].push(t)
	t.list = uint16(i + 1)
	w.occupied[lvl] |= 1 << s
}

func (w *Wheel) unlink(t *Timer) {
	i := int(t.list) - 1
	w.lists[i].remove(t)
	if i < dueList && w.lists[i].first == nil {
		w.occupied[i/slots] &^= 1 << (i % slots)
	}
	t.list = 0
}

// nextEvent returns the first tick after cur at which a list must be
// re-placed: the start of the lowest level's first occupied slot (every
// slot of a higher level starts later), or, with the levels empty, the
// start of the range that holds the earliest overflow timer. lvl is the
// level, or levels for the overflow list.
func (w *Wheel) nextEvent() (e uint64, lvl int, ok bool) {
	for lvl = 0; lvl < levels; lvl++ {
		if b := w.occupied[lvl]; b != 0 {
			shift := uint(lvl * slotBits)
			above := shift + slotBits
			s := uint64(bits.TrailingZeros64(b))
			return w.cur>>above<<above | s<<shift, lvl, true
		}
	}
	if w.lists[overList].first != nil {
		return w.overMin >> rangeBits << rangeBits, levels, true
	}
	return 0, 0, false
}

// expire empties the list of level lvl whose start cur has just reached:
// timers due now go to the firing list in their order, the others to lower
// levels (or back to the overflow list).
func (w *Wheel) expire(lvl int) {
	var l list
	if lvl == levels {
		l = w.lists[overList]
		w.lists[overList] = list{}
	} else {
		s := int(w.cur>>(lvl*slotBits)) & (slots - 1)
		i := lvl*slots + s
		l = w.lists[i]
		w.lists[i] = list{}
		w.occupied[lvl] &^= 1 << s
	}
	f := &w.lists[firingList]
	for t := l.first; t != nil; {
		next := t.next
		if t.tick == w.cur {
			f.push(t)
			t.list = firingList + 1
		} else {
			w.place(t)
		}
		t = next
	}
}

// run fires the firing list in order. A callback may cancel or move a timer
// still on it.
func (w *Wheel) run() int {
	n := 0
	f := &w.lists[firingList]
	for f.first != nil {
		t := f.first
		f.remove(t)
		t.list = 0
		w.n--
		n++
		t.fire(w.now)
	}
	return n
}

// timeOf is the start of tick e in ns, clamped to the int64 range.
func (w *Wheel) timeOf(e uint64) int64 {
	k := int64(e ^ 1<<63)
	switch {
	case k > math.MaxInt64/w.tick:
		return math.MaxInt64
	case k < math.MinInt64/w.tick:
		return math.MinInt64
	}
	return k * w.tick
}

// bias maps a signed tick to an unsigned one of the same order.
func bias(k int64) uint64 { return uint64(k) ^ 1<<63 }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

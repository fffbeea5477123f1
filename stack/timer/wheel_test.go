package timer

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is a reference for a wheel: every armed timer with its rounded
// tick and arming sequence, and what the wheel promises to fire next.
type model struct {
	tick  int64
	now   int64
	seq   uint64
	armed map[int]*entry
}

type entry struct {
	id   int
	when int64
	tick int64 // ceil(when/tick)
	seq  uint64
	due  bool // armed at or before the wheel's time: fires on the next Advance
}

func newModel(now, tick int64) *model {
	return &model{tick: tick, now: now, armed: map[int]*entry{}}
}

func (m *model) arm(id int, when int64) {
	m.seq++
	m.armed[id] = &entry{id: id, when: when, tick: ceilDiv(when, m.tick), seq: m.seq, due: when <= m.now}
}

func (m *model) cancel(id int) { delete(m.armed, id) }

// advance returns the ids that Advance(now) must fire, in order.
func (m *model) advance(now int64) []int {
	m.now = max(m.now, now)
	limit := floorDiv(m.now, m.tick)
	var due, wheel []*entry
	for _, e := range m.armed {
		switch {
		case e.due:
			due = append(due, e)
		case e.tick <= limit:
			wheel = append(wheel, e)
		}
	}
	slices.SortFunc(due, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	slices.SortFunc(wheel, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.tick, b.tick), cmp.Compare(a.seq, b.seq))
	})
	var ids []int
	for _, e := range append(due, wheel...) {
		ids = append(ids, e.id)
		delete(m.armed, e.id)
	}
	return ids
}

// firstFiring is the earliest time at which an Advance fires something.
func (m *model) firstFiring() (int64, bool) {
	first, ok := int64(math.MaxInt64), false
	for _, e := range m.armed {
		at := m.now
		if !e.due {
			at = sat(e.tick, m.tick)
		}
		first, ok = min(first, at), true
	}
	return first, ok
}

// sat is k*tick clamped to the int64 range.
func sat(k, tick int64) int64 {
	if k > math.MaxInt64/tick {
		return math.MaxInt64
	}
	return k * tick
}

// rig is a wheel with numbered timers that record the order they fire in.
type rig struct {
	w      Wheel
	ts     []Timer
	fired  []int
	firedA []int64 // the now each fired with
}

func newRig(n int, now, tick int64) *rig {
	r := &rig{ts: make([]Timer, n)}
	r.w.Init(now, tick)
	for i := range r.ts {
		r.ts[i].Init(func(now int64) {
			r.fired = append(r.fired, i)
			r.firedA = append(r.firedA, now)
		})
	}
	return r
}

// advance runs Advance and returns what fired, checking the count.
func (r *rig) advance(t *testing.T, now int64) []int {
	t.Helper()
	r.fired = r.fired[:0]
	r.firedA = r.firedA[:0]
	n := r.w.Advance(now)
	if n != len(r.fired) {
		t.Fatalf("Advance(%d) returned %d, %d callbacks ran", now, n, len(r.fired))
	}
	return slices.Clone(r.fired)
}

// deadline draws a deadline after now: mostly near, some at every level,
// some beyond the levels' range.
func deadline(rng *rand.Rand, now, tick int64) int64 {
	var ticks int64
	switch rng.IntN(8) {
	case 0, 1, 2:
		ticks = rng.Int64N(64)
	case 3, 4:
		ticks = rng.Int64N(64 * 64 * 4)
	case 5:
		ticks = rng.Int64N(1 << 24)
	case 6:
		ticks = rng.Int64N(1 << 34)
	default:
		ticks = rng.Int64N(1 << 40) // past the top level
	}
	return now + ticks*tick + rng.Int64N(tick) + 1
}

// step draws how far to move time: a tick or two, a little, or a long way.
func step(rng *rand.Rand, tick int64) int64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1, 2:
		return rng.Int64N(3 * tick)
	case 3:
		return rng.Int64N(200 * tick)
	case 4:
		return rng.Int64N(1 << 20 * tick)
	default:
		return rng.Int64N(1 << 38 * tick)
	}
}

func TestTimersFireInTheOrderOfASortedReference(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 10))
		tick := []int64{1, 7, 1000, 1e6}[seed%4]
		start := rng.Int64N(1<<50) - 1<<49 // negative starts too
		n := 1 + rng.IntN(300)
		r := newRig(n, start, tick)
		m := newModel(start, tick)
		now := start
		for range 60 {
			if now > 1<<61 {
				break // keep deadlines within the clock
			}
			for range rng.IntN(2 * n) {
				id := rng.IntN(n)
				switch rng.IntN(10) {
				case 0:
					r.w.Cancel(&r.ts[id])
					m.cancel(id)
				case 1: // for the past, or the present
					when := now - rng.Int64N(3*tick)
					r.w.Arm(&r.ts[id], when)
					m.arm(id, when)
				default:
					when := deadline(rng, now, tick)
					r.w.Arm(&r.ts[id], when)
					m.arm(id, when)
				}
			}
			checkNext(t, &r.w, m)
			now += step(rng, tick)
			got := r.advance(t, now)
			want := m.advance(now)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d tick %d: Advance(%d) fired %v, want %v", seed, tick, now, got, want)
			}
			for i, id := range got {
				if r.firedA[i] != now {
					t.Fatalf("seed %d: timer %d fired with now %d, want %d", seed, id, r.firedA[i], now)
				}
			}
			if r.w.Len() != len(m.armed) {
				t.Fatalf("seed %d: Len %d, want %d", seed, r.w.Len(), len(m.armed))
			}
			for id := range r.ts {
				_, armed := m.armed[id]
				if r.ts[id].Armed() != armed {
					t.Fatalf("seed %d: timer %d Armed %v, want %v", seed, id, r.ts[id].Armed(), armed)
				}
			}
		}
	}
}

// checkNext fails unless Next is at or before the model's first firing,
// and after the wheel's time unless a timer is overdue (a loop sleeping
// until Next must not wake for nothing).
func checkNext(t *testing.T, w *Wheel, m *model) {
	t.Helper()
	got, ok := w.Next()
	want, wantOK := m.firstFiring()
	if ok != wantOK {
		t.Fatalf("Next ok %v, want %v", ok, wantOK)
	}
	if ok && got > want {
		t.Fatalf("Next %d is after the first firing at %d", got, want)
	}
	if ok && want > m.now && got <= m.now {
		t.Fatalf("Next %d is not after the wheel's time %d, and nothing is overdue", got, m.now)
	}
}

func TestNextIsNeverLaterThanTheEarliestFiringAndALoopSleepingUntilItMakesProgress(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 11))
		tick := []int64{1, 1000, 1e6}[seed%3]
		start := rng.Int64N(1 << 40)
		r := newRig(100, start, tick)
		m := newModel(start, tick)
		for id := range r.ts {
			when := deadline(rng, start, tick)
			r.w.Arm(&r.ts[id], when)
			m.arm(id, when)
		}
		// Sleep until Next and Advance, as a shard's idle loop does. An
		// Advance at Next that fires nothing moves at least one timer down a
		// level (or out of the overflow list), which each timer can undergo
		// at most levels times.
		idle := 0
		for r.w.Len() > 0 {
			checkNext(t, &r.w, m)
			next, _ := r.w.Next()
			want, _ := m.firstFiring()
			got := r.advance(t, next)
			if !slices.Equal(got, m.advance(next)) {
				t.Fatalf("seed %d: Advance(Next) fired %v out of the reference's order", seed, got)
			}
			if next == want && len(got) == 0 {
				t.Fatalf("seed %d: Advance at the first firing time %d fired nothing", seed, want)
			}
			if len(got) == 0 {
				idle++
			}
		}
		if idle > levels*len(r.ts) {
			t.Fatalf("seed %d: %d wake-ups fired nothing", seed, idle)
		}
	}
	var w Wheel
	w.Init(0, 0)
	if _, ok := w.Next(); ok {
		t.Fatal("Next of an empty wheel reports a time")
	}
}

func TestNextIsNotHeldBackByACancelledTimer(t *testing.T) {
	r := newRig(2, 0, 1)
	r.w.Arm(&r.ts[0], 100)
	r.w.Arm(&r.ts[1], 1<<20)
	r.w.Cancel(&r.ts[0])
	if next, _ := r.w.Next(); next <= 100 {
		t.Fatalf("Next %d, at or before the cancelled deadline", next)
	}
	r.advance(t, 50)
	r.w.Arm(&r.ts[0], 1<<25)
	r.w.Cancel(&r.ts[1])
	if next, _ := r.w.Next(); next <= 1<<20 {
		t.Fatalf("Next %d, at or before the cancelled deadline", next)
	}
}

func TestAnIdleWheelAdvancedAfterTenMinutesFiresEverythingDueInOrderWithoutVisitingEveryTick(t *testing.T) {
	// At a 1 ns tick ten minutes are 6e11 ticks, past the levels' range: a
	// wheel that turned tick by tick would not finish.
	const tick = 1
	start := int64(123456789)
	rng := rand.New(rand.NewPCG(1, 2))
	r := newRig(5000, start, tick)
	m := newModel(start, tick)
	for id := range r.ts {
		when := start + 1 + rng.Int64N(12*60e9) // some beyond ten minutes
		r.w.Arm(&r.ts[id], when)
		m.arm(id, when)
	}
	now := start + 10*60e9
	got := r.advance(t, now)
	want := m.advance(now)
	if !slices.Equal(got, want) {
		t.Fatalf("fired %d timers, want %d in the reference's order", len(got), len(want))
	}
	if len(got) == 0 || r.w.Len() == 0 {
		t.Fatalf("the draw put no timer on one side of ten minutes (%d fired, %d left)", len(got), r.w.Len())
	}
	now += 3 * 60e9
	if got, want := r.advance(t, now), m.advance(now); !slices.Equal(got, want) || r.w.Len() != 0 {
		t.Fatalf("the rest fired %d timers, want %d, %d left", len(got), len(want), r.w.Len())
	}
}

func TestCancel(t *testing.T) {
	t.Run("an armed timer does not fire", func(t *testing.T) {
		r := newRig(2, 0, 1)
		r.w.Arm(&r.ts[0], 10)
		r.w.Arm(&r.ts[1], 10)
		r.w.Cancel(&r.ts[0])
		if r.ts[0].Armed() || r.w.Len() != 1 {
			t.Fatalf("after Cancel: Armed %v, Len %d", r.ts[0].Armed(), r.w.Len())
		}
		if got := r.advance(t, 100); !slices.Equal(got, []int{1}) {
			t.Fatalf("fired %v, want [1]", got)
		}
	})
	t.Run("a timer cancelled at every level and in the overflow list does not fire", func(t *testing.T) {
		r := newRig(levels+2, 0, 1)
		for i := range r.ts {
			r.w.Arm(&r.ts[i], int64(1)<<(i*slotBits)+3)
		}
		for i := range r.ts {
			r.w.Cancel(&r.ts[i])
		}
		if _, ok := r.w.Next(); ok || r.w.Len() != 0 {
			t.Fatalf("after cancelling all: Len %d, Next ok %v", r.w.Len(), ok)
		}
		if got := r.advance(t, math.MaxInt64); len(got) != 0 {
			t.Fatalf("fired %v", got)
		}
	})
	t.Run("an unarmed timer does nothing", func(t *testing.T) {
		r := newRig(2, 0, 1)
		var zero Timer
		r.w.Cancel(&zero)
		r.w.Cancel(&r.ts[0])
		r.w.Arm(&r.ts[1], 5)
		r.advance(t, 5)
		r.w.Cancel(&r.ts[1]) // fired already
		r.w.Cancel(&r.ts[1])
		if r.w.Len() != 0 || zero.Armed() {
			t.Fatalf("Len %d", r.w.Len())
		}
	})
	t.Run("from another timer's callback, before it fires in the same tick", func(t *testing.T) {
		r := newRig(3, 0, 1)
		r.ts[0].Init(func(int64) { r.fired = append(r.fired, 0); r.w.Cancel(&r.ts[1]) })
		r.w.Arm(&r.ts[0], 7)
		r.w.Arm(&r.ts[1], 7)
		r.w.Arm(&r.ts[2], 7)
		if got := r.advance(t, 7); !slices.Equal(got, []int{0, 2}) {
			t.Fatalf("fired %v, want [0 2]", got)
		}
	})
	t.Run("from another timer's callback, due later in the same Advance", func(t *testing.T) {
		// 1<<20 sits three levels up when armed; it is cancelled while
		// Advance is on its way to it.
		r := newRig(3, 0, 1)
		r.ts[0].Init(func(int64) { r.fired = append(r.fired, 0); r.w.Cancel(&r.ts[1]) })
		r.w.Arm(&r.ts[0], 5)
		r.w.Arm(&r.ts[1], 1<<20)
		r.w.Arm(&r.ts[2], 1<<20+1)
		if got := r.advance(t, 1<<21); !slices.Equal(got, []int{0, 2}) {
			t.Fatalf("fired %v, want [0 2]", got)
		}
	})
	t.Run("from another timer's callback, both due for the past", func(t *testing.T) {
		r := newRig(2, 100, 1)
		r.ts[0].Init(func(int64) { r.fired = append(r.fired, 0); r.w.Cancel(&r.ts[1]) })
		r.w.Arm(&r.ts[0], 50)
		r.w.Arm(&r.ts[1], 40)
		if got := r.advance(t, 100); !slices.Equal(got, []int{0}) {
			t.Fatalf("fired %v, want [0]", got)
		}
	})
}

func TestRearm(t *testing.T) {
	t.Run("earlier moves the deadline", func(t *testing.T) {
		r := newRig(1, 0, 1)
		r.w.Arm(&r.ts[0], 1<<30)
		r.w.Arm(&r.ts[0], 100)
		if r.ts[0].When() != 100 || r.w.Len() != 1 {
			t.Fatalf("When %d, Len %d", r.ts[0].When(), r.w.Len())
		}
		if got := r.advance(t, 99); len(got) != 0 {
			t.Fatal("fired before its deadline")
		}
		if got := r.advance(t, 100); len(got) != 1 {
			t.Fatal("did not fire at its deadline")
		}
		if got := r.advance(t, 1<<31); len(got) != 0 {
			t.Fatal("fired again at the old deadline")
		}
	})
	t.Run("later moves the deadline", func(t *testing.T) {
		r := newRig(1, 0, 1)
		r.w.Arm(&r.ts[0], 100)
		r.w.Arm(&r.ts[0], 1<<30)
		if got := r.advance(t, 1<<30-1); len(got) != 0 {
			t.Fatal("fired at the old deadline")
		}
		if got := r.advance(t, 1<<30); len(got) != 1 || r.w.Len() != 0 {
			t.Fatal("did not fire at the new deadline")
		}
	})
	t.Run("re-arming moves it behind timers armed before for the same tick", func(t *testing.T) {
		r := newRig(3, 0, 10)
		r.w.Arm(&r.ts[0], 95)
		r.w.Arm(&r.ts[1], 92)
		r.w.Arm(&r.ts[2], 99)
		r.w.Arm(&r.ts[0], 91)
		if got := r.advance(t, 100); !slices.Equal(got, []int{1, 2, 0}) {
			t.Fatalf("fired %v, want [1 2 0]", got)
		}
	})
	t.Run("from its own callback it fires again later", func(t *testing.T) {
		r := newRig(1, 0, 1)
		var at []int64
		r.ts[0].Init(func(now int64) {
			at = append(at, now)
			if len(at) < 5 {
				r.w.Arm(&r.ts[0], now+1000)
			}
		})
		r.w.Arm(&r.ts[0], 1000)
		for now := int64(0); now <= 10000; now += 250 {
			r.w.Advance(now)
		}
		if !slices.Equal(at, []int64{1000, 2000, 3000, 4000, 5000}) {
			t.Fatalf("fired at %v", at)
		}
	})
	t.Run("from its own callback for the past it fires on the next Advance, not in a loop", func(t *testing.T) {
		r := newRig(1, 0, 1)
		calls := 0
		r.ts[0].Init(func(now int64) { calls++; r.w.Arm(&r.ts[0], now) })
		r.w.Arm(&r.ts[0], 10)
		for i := range 3 {
			if n := r.w.Advance(10); n != 1 || calls != i+1 {
				t.Fatalf("Advance %d fired %d (calls %d), want 1", i, n, calls)
			}
		}
		r.w.Cancel(&r.ts[0])
	})
	t.Run("from its own callback one tick on it fires once per Advance", func(t *testing.T) {
		r := newRig(1, 0, 1)
		r.ts[0].Init(func(now int64) { r.w.Arm(&r.ts[0], r.ts[0].When()+1) })
		r.w.Arm(&r.ts[0], 1)
		if n := r.w.Advance(1000); n != 1 {
			t.Fatalf("fired %d times, want 1 (its next deadline had passed)", n)
		}
		if n := r.w.Advance(1000); n != 1 {
			t.Fatalf("fired %d times on the next Advance, want 1", n)
		}
	})
}

// TestDeadlinesAroundEveryLevelBoundaryFireNeitherEarlyNorLate arms timers
// just below, at and just above each level's span (64^L ticks) and the
// overflow boundary, from starts aligned and not, then moves time tick by
// tick near every deadline and cascade point and in big jumps elsewhere.
func TestDeadlinesAroundEveryLevelBoundaryFireNeitherEarlyNorLate(t *testing.T) {
	for _, tick := range []int64{1, 1000} {
		for _, start := range []int64{0, 1, 63 * tick, -5e9 - 17, 1<<36*tick - 3*tick, 1<<42 + 12345} {
			t.Run(fmt.Sprintf("tick %d start %d", tick, start), func(t *testing.T) {
				var whens []int64
				for lvl := 1; lvl <= levels+1; lvl++ {
					span := int64(1) << (lvl * slotBits) * tick
					for _, d := range []int64{-tick - 1, -tick, -1, 0, 1, tick, tick + 1} {
						whens = append(whens, start+span+d)
						// And at the boundary of an absolute slot.
						whens = append(whens, (start/span+1)*span+d)
					}
				}
				r := newRig(len(whens), start, tick)
				for i, when := range whens {
					if when > start {
						r.w.Arm(&r.ts[i], when)
					}
				}
				// Points around which time goes tick by tick: each deadline
				// and each slot start at every level, where cascades happen.
				var marks []int64
				for _, when := range whens {
					marks = append(marks, when)
					for lvl := 1; lvl <= levels; lvl++ {
						span := int64(1) << (lvl * slotBits) * tick
						marks = append(marks, floorDiv(when, span)*span)
					}
				}
				slices.Sort(marks)
				now := start
				fired := make([]bool, len(whens))
				check := func() {
					t.Helper()
					for k, i := range r.advance(t, now) {
						due := ceilDiv(whens[i], tick) * tick
						if r.firedA[k] < due {
							t.Fatalf("timer for %d (due %d) fired early at %d", whens[i], due, r.firedA[k])
						}
						fired[i] = true
					}
					for i, when := range whens {
						due := ceilDiv(when, tick) * tick
						if when > start && !fired[i] && due <= now {
							t.Fatalf("timer for %d (due %d) has not fired at %d", when, due, now)
						}
					}
				}
				for _, mk := range marks {
					if mk-3*tick > now {
						now = mk - 3*tick
						check()
					}
					for now < mk+3*tick {
						now += max(1, tick/2)
						check()
					}
				}
				if r.w.Len() != 0 {
					t.Fatalf("%d timers left", r.w.Len())
				}
			})
		}
	}
}

func TestAMillionTimersHalfCancelledFireExactlyOnceInOrder(t *testing.T) {
	const n = 1_000_000
	const tick = 100
	rng := rand.New(rand.NewPCG(7, 7))
	type owner struct {
		t     Timer
		tick  int64
		seq   int32
		fired int32
	}
	owners := make([]owner, n)
	var w Wheel
	w.Init(0, tick)
	var lastTick int64
	var lastSeq int32
	count := 0
	for i := range owners {
		o := &owners[i]
		o.t.Init(func(now int64) {
			if o.fired++; o.fired > 1 {
				t.Fatalf("timer %d fired twice", i)
			}
			if o.tick < lastTick || o.tick == lastTick && o.seq < lastSeq {
				t.Fatalf("timer %d (tick %d, seq %d) fired after (tick %d, seq %d)", i, o.tick, o.seq, lastTick, lastSeq)
			}
			lastTick, lastSeq = o.tick, o.seq
			if now < o.t.When() {
				t.Fatalf("timer %d fired early", i)
			}
			count++
		})
	}
	for i := range owners {
		// Up to about 4.9 hours, 1.8e11 ticks: every level and a few
		// overflow ranges.
		when := 1 + rng.Int64N(1<<44)
		owners[i].tick = ceilDiv(when, tick)
		owners[i].seq = int32(i)
		w.Arm(&owners[i].t, when)
	}
	for _, i := range rng.Perm(n)[:n/2] {
		w.Cancel(&owners[i].t)
	}
	if w.Len() != n/2 {
		t.Fatalf("Len %d, want %d", w.Len(), n/2)
	}
	for now := int64(0); w.Len() > 0; {
		now += rng.Int64N(1 << 36)
		w.Advance(now)
	}
	if count != n/2 {
		t.Fatalf("%d fired, want %d", count, n/2)
	}
	for i := range owners {
		if owners[i].t.Armed() {
			t.Fatalf("timer %d still armed", i)
		}
	}
}

func TestArmCancelAndAdvanceAllocateNothing(t *testing.T) {
	var w Wheel
	w.Init(0, 1)
	ts := make([]Timer, 64)
	now := int64(0)
	for i := range ts {
		ts[i].Init(func(now int64) { w.Arm(&ts[i], now+int64(i)<<(i%40)+1) })
	}
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		t := &ts[i%len(ts)]
		i++
		w.Arm(t, now+int64(i%64)<<(i%50)+1)
		w.Cancel(t)
		w.Arm(t, now+int64(i))
	}); a != 0 {
		t.Fatalf("Arm and Cancel: %v allocations", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		now += 1 << (i % 30)
		i++
		w.Advance(now)
		w.Next()
	}); a != 0 {
		t.Fatalf("Advance: %v allocations", a)
	}
}

func TestInit(t *testing.T) {
	t.Run("tick 0 is a millisecond", func(t *testing.T) {
		r := newRig(1, 0, 0)
		r.w.Arm(&r.ts[0], 1)
		if next, _ := r.w.Next(); next != 1e6 {
			t.Fatalf("Next %d, want 1e6", next)
		}
		if len(r.advance(t, 999_999)) != 0 || len(r.advance(t, 1e6)) != 1 {
			t.Fatal("a deadline of 1 ns did not fire at the first millisecond")
		}
	})
	t.Run("with timers armed it panics", func(t *testing.T) {
		r := newRig(1, 0, 1)
		r.w.Arm(&r.ts[0], 10)
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		r.w.Init(0, 1)
	})
}

func TestAdvanceFromACallbackPanicsAndLeavesTheWheelUsable(t *testing.T) {
	r := newRig(2, 0, 1)
	r.ts[0].Init(func(now int64) { r.w.Advance(now) })
	r.w.Arm(&r.ts[0], 1)
	r.w.Arm(&r.ts[1], 2)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		r.w.Advance(5)
	}()
	if got := r.advance(t, 5); !slices.Equal(got, []int{1}) {
		t.Fatalf("then fired %v, want [1]", got)
	}
}

func TestTimeRunningBackwardsFiresOnlyWhatWasDue(t *testing.T) {
	r := newRig(2, 1000, 1)
	r.w.Arm(&r.ts[0], 1001)
	r.w.Arm(&r.ts[1], 900)
	if got := r.advance(t, 500); !slices.Equal(got, []int{1}) {
		t.Fatalf("fired %v, want [1]", got)
	}
	if got := r.advance(t, 1001); !slices.Equal(got, []int{0}) {
		t.Fatalf("fired %v, want [0]", got)
	}
}

func TestTheLastTicksOfTheClockDoNotOverflow(t *testing.T) {
	r := newRig(3, math.MaxInt64-1e6, 1000)
	r.w.Arm(&r.ts[0], math.MaxInt64-1000)
	r.w.Arm(&r.ts[1], math.MaxInt64) // its tick ends past the clock: never fires
	if next, _ := r.w.Next(); next > math.MaxInt64-1000 {
		t.Fatalf("Next %d", next)
	}
	if got := r.advance(t, math.MaxInt64); !slices.Equal(got, []int{0}) {
		t.Fatalf("fired %v, want [0]", got)
	}
	if next, ok := r.w.Next(); !ok || next != math.MaxInt64 {
		t.Fatalf("Next %d %v, want MaxInt64", next, ok)
	}
}

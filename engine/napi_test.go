package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine/ring"
)

// irqPort is a port of n receive queues fed by the test, with real interrupt
// lines, for driving the softirq step by step.
type irqPort struct {
	rings []*ring.SPSC[Mbuf]
	irqs  []*RxInterrupt
}

func newIRQPort(t testing.TB, queues, size int) *irqPort {
	p := &irqPort{}
	for q := 0; q < queues; q++ {
		r, err := ring.NewSPSC[Mbuf](size)
		if err != nil {
			t.Fatal(err)
		}
		p.rings = append(p.rings, r)
		p.irqs = append(p.irqs, NewRxInterrupt(r.Len))
	}
	return p
}

func (p *irqPort) Info() PortInfo {
	return PortInfo{Name: "irq", RxQueues: len(p.rings), TxQueues: 1, Features: Features{Interrupts: true}}
}
func (p *irqPort) RxBurst(q int, pkts []Mbuf) int { return p.rings[q].DequeueBurst(pkts) }
func (p *irqPort) TxBurst(q int, pkts []Mbuf) int { return 0 }
func (p *irqPort) SetTxCaches(int, *Caches)       {}
func (p *irqPort) RxStats(q int) QueueStats       { return QueueStats{Interrupts: p.irqs[q].Raised()} }
func (p *irqPort) TxStats(int) QueueStats         { return QueueStats{} }
func (p *irqPort) SetRxInterrupt(q int, h func()) { p.irqs[q].SetHandler(h) }
func (p *irqPort) ArmRx(q int)                    { p.irqs[q].Arm() }
func (p *irqPort) DisarmRx(q int)                 { p.irqs[q].Disarm() }
func (p *irqPort) Close() error                   { return nil }
func (p *irqPort) land(t testing.TB, q int, ms ...Mbuf) {
	if n := p.rings[q].EnqueueBurst(ms); n != len(ms) {
		t.Fatalf("ring full: %d of %d", n, len(ms))
	}
	p.irqs[q].Landed()
}

// fill lands n fresh mbufs on queue q.
func (p *irqPort) fill(t testing.TB, cs *Caches, pool *Pool, q, n int) {
	for i := 0; i < n; i++ {
		m, err := cs.Alloc(pool)
		if err != nil {
			t.Fatal(err)
		}
		p.land(t, q, m)
	}
}

// stepSoftirq builds a softirq whose rounds the test runs by hand.
func stepSoftirq(t *testing.T, cfg SoftirqConfig, p *irqPort, weight int, handler Handler) (*Softirq, []*NAPI) {
	t.Helper()
	w, err := NewWorker(AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSoftirq(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A clock that stands still: only the frame budget ends a round, however
	// slowly the test runs. Tests of the time limit set their own.
	s.clock = func() int64 { return 0 }
	var ns []*NAPI
	for q := range p.rings {
		n, err := s.Add(NAPIConfig{Port: p, Queue: q, Weight: weight, Handler: handler})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	return s, ns
}

func freeing(count *int) Handler {
	return func(w *Worker, _ QueueRef, pkts []Mbuf) {
		*count += len(pkts)
		w.Caches.FreeBulk(pkts)
	}
}

func TestBudgetAndWeight(t *testing.T) {
	pool := newTestPool(t, 4096, 64)
	var cs Caches
	defer cs.Flush()
	p := newIRQPort(t, 2, 1024)
	got := 0
	s, ns := stepSoftirq(t, SoftirqConfig{}, p, 64, freeing(&got))
	defer s.w.Caches.Flush()
	for q := range ns {
		p.ArmRx(q)
	}
	p.fill(t, &cs, pool, 0, 200) // the first frame raises; the rest find the line masked
	p.fill(t, &cs, pool, 1, 200)
	if r0, r1 := p.irqs[0].Raised(), p.irqs[1].Raised(); r0 != 1 || r1 != 1 {
		t.Fatalf("interrupts raised %d and %d, want one per queue while masked", r0, r1)
	}
	s.collect()
	// Round 1: q0 64, q1 64, q0 64, q1 64, q0 64 = 320 >= budget 300:
	// squeezed with both queues still on the list.
	if !s.rxAction() || got != 320 || s.list.len() != 2 {
		t.Fatalf("round 1: processed %d, list %d, want a squeeze at 320 with 2 left", got, s.list.len())
	}
	// Round 2: q1 64, q0 8 (completes), q1 8 (completes).
	if s.rxAction() || got != 400 || s.list.len() != 0 {
		t.Fatalf("round 2: processed %d, list %d", got, s.list.len())
	}
	st := s.stats
	if st.Rounds != 2 || st.TimeSqueeze != 1 || st.Polls != 8 || st.Completes != 2 || st.Processed != 400 {
		t.Fatalf("softnet stats %+v", st)
	}
	// Completion re-armed both queues.
	if !p.irqs[0].Armed() || !p.irqs[1].Armed() || ns[0].scheduled.Load() {
		t.Fatal("completed queues are not re-armed")
	}
}

func TestBacklogDrainsInExpectedRounds(t *testing.T) {
	for _, c := range []struct{ n, weight, budget, rounds, squeezes int }{
		{1000, 64, 300, 4, 3}, // 5 polls of 64 per round: 320, 320, 320, 40
		{100, 64, 300, 1, 0},  // 64 + 36: done in one round
		{640, 64, 64, 11, 10}, // the budget allows one full poll a round; the 11th finds nothing left
		{63, 64, 300, 1, 0},
	} {
		pool := newTestPool(t, 2048, 64)
		var cs Caches
		p := newIRQPort(t, 1, 2048)
		got := 0
		s, _ := stepSoftirq(t, SoftirqConfig{Budget: c.budget}, p, c.weight, freeing(&got))
		p.ArmRx(0)
		p.fill(t, &cs, pool, 0, c.n)
		cs.Flush()
		s.collect()
		rounds, squeezes := 0, 0
		for s.list.len() > 0 && rounds < 100 {
			if s.rxAction() {
				squeezes++
			}
			rounds++
		}
		s.w.Caches.Flush()
		if got != c.n || rounds != c.rounds || squeezes != c.squeezes || int(s.stats.TimeSqueeze) != squeezes {
			t.Errorf("%+v: processed %d in %d rounds with %d squeezes", c, got, rounds, squeezes)
		}
	}
}

func TestTimeLimitSqueezes(t *testing.T) {
	pool := newTestPool(t, 2048, 64)
	var cs Caches
	defer cs.Flush()
	p := newIRQPort(t, 1, 2048)
	var now int64
	got := 0
	handler := func(w *Worker, q QueueRef, pkts []Mbuf) {
		got += len(pkts)
		now += 700_000 // every burst of work takes 0.7 ms
		w.Caches.FreeBulk(pkts)
	}
	s, _ := stepSoftirq(t, SoftirqConfig{Budget: 100000, BudgetUsecs: 2000}, p, 64, handler)
	defer s.w.Caches.Flush()
	s.clock = func() int64 { return now }
	p.ArmRx(0)
	p.fill(t, &cs, pool, 0, 1000)
	s.collect()
	// Two bursts of 32 per poll: 1.4 ms a poll. The 2 ms limit is passed
	// after the second poll, far below the frame budget.
	if !s.rxAction() || got != 128 || s.stats.TimeSqueeze != 1 {
		t.Fatalf("processed %d, time_squeeze %d: the time limit did not bite", got, s.stats.TimeSqueeze)
	}
	var pkts [Burst]Mbuf
	for n := p.RxBurst(0, pkts[:]); n > 0; n = p.RxBurst(0, pkts[:]) {
		cs.FreeBulk(pkts[:n])
	}
}

func TestCoalescing(t *testing.T) {
	pool := newTestPool(t, 256, 16)
	var cs Caches
	p := newIRQPort(t, 1, 256)
	raised := 0
	p.irqs[0].SetHandler(func() { raised++ })
	defer p.irqs[0].Stop()
	// rx-usecs long enough that only the frame count can raise here.
	if err := p.irqs[0].SetCoalesce(1e6, 8); err != nil {
		t.Fatal(err)
	}
	if p.irqs[0].SetCoalesce(-1, 0) == nil || p.irqs[0].SetCoalesce(1, 1<<20) == nil {
		t.Fatal("coalescing out of range accepted")
	}
	p.ArmRx(0)
	p.fill(t, &cs, pool, 0, 7)
	if raised != 0 {
		t.Fatalf("rx-frames 8: raised after 7 frames")
	}
	p.fill(t, &cs, pool, 0, 1)
	if raised != 1 {
		t.Fatalf("rx-frames 8: %d interrupts after 8 frames, want 1", raised)
	}
	var pkts [Burst]Mbuf
	n := p.RxBurst(0, pkts[:])
	cs.FreeBulk(pkts[:n])
	cs.Flush()
}

// TestCoalescingDelay: with rx-usecs, a lone frame raises the interrupt once
// the delay has passed, not before.
func TestCoalescingDelay(t *testing.T) {
	pool := newTestPool(t, 64, 8)
	var cs Caches
	p := newIRQPort(t, 1, 64)
	defer p.irqs[0].Stop()
	raisedAt := make(chan int64, 1)
	p.irqs[0].SetHandler(func() { raisedAt <- Nanotime() })
	if err := p.irqs[0].SetCoalesce(2000, 64); err != nil {
		t.Fatal(err)
	}
	p.ArmRx(0)
	start := Nanotime()
	p.fill(t, &cs, pool, 0, 1)
	select {
	case at := <-raisedAt:
		if d := at - start; d < 2000_000 {
			t.Fatalf("rx-usecs 2000: raised after %v", time.Duration(d))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("rx-usecs 2000: a lone frame never raised the interrupt")
	}
	var pkts [Burst]Mbuf
	n := p.RxBurst(0, pkts[:])
	cs.FreeBulk(pkts[:n])
	cs.Flush()
}

// One frame at a time, as at light load: it lands, the interrupt schedules
// the NAPI context, the softirq polls it, hands it to the handler and
// re-arms. None of it may allocate.
func TestLandScheduledPollAndRearmAllocateNothing(t *testing.T) {
	pool := newTestPool(t, 256, 16)
	var cs Caches
	defer cs.Flush()
	p := newIRQPort(t, 1, 64)
	got := 0
	s, ns := stepSoftirq(t, SoftirqConfig{}, p, 64, freeing(&got))
	defer s.w.Caches.Flush()
	p.ArmRx(0)
	one := make([]Mbuf, 1)
	allocs := testing.AllocsPerRun(200, func() {
		m, err := cs.Alloc(pool)
		if err != nil {
			panic(err)
		}
		one[0] = m
		p.land(t, 0, one...)
		s.collect()
		s.rxAction()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame from landing to re-arm", allocs)
	}
	if got != 201 || !p.irqs[0].Armed() || ns[0].scheduled.Load() {
		t.Fatalf("handled %d of 201 frames; armed %v, scheduled %v", got, p.irqs[0].Armed(), ns[0].scheduled.Load())
	}
}

// Linux's net_rx_action counts a time squeeze whenever a poll leaves the
// budget spent, even if that poll emptied the list.
func TestTimeSqueezeCountsABudgetSpentByTheLastPoll(t *testing.T) {
	pool := newTestPool(t, 1024, 64)
	var cs Caches
	defer cs.Flush()
	p := newIRQPort(t, 1, 1024)
	got := 0
	s, _ := stepSoftirq(t, SoftirqConfig{Budget: 300}, p, 64, freeing(&got))
	defer s.w.Caches.Flush()
	p.ArmRx(0)
	p.fill(t, &cs, pool, 0, 310) // 64+64+64+64+54: the fifth poll completes past the budget
	s.collect()
	if left := s.rxAction(); left || got != 310 || s.list.len() != 0 {
		t.Fatalf("processed %d, list %d, work left %v; want all 310 in one round", got, s.list.len(), left)
	}
	if s.stats.TimeSqueeze != 1 {
		t.Fatalf("time_squeeze %d after a round that spent its budget, want 1", s.stats.TimeSqueeze)
	}
}

// The time limit counts the same way, and is reached when the clock equals
// it (time_after_eq).
func TestTimeSqueezeCountsATimeLimitReachedByTheLastPoll(t *testing.T) {
	pool := newTestPool(t, 256, 16)
	var cs Caches
	defer cs.Flush()
	p := newIRQPort(t, 1, 256)
	var now int64
	got := 0
	handler := func(w *Worker, q QueueRef, pkts []Mbuf) {
		got += len(pkts)
		now += 2_000_000 // exactly the 2 ms limit
		w.Caches.FreeBulk(pkts)
	}
	s, _ := stepSoftirq(t, SoftirqConfig{BudgetUsecs: 2000}, p, 64, handler)
	defer s.w.Caches.Flush()
	s.clock = func() int64 { return now }
	p.ArmRx(0)
	p.fill(t, &cs, pool, 0, 10)
	s.collect()
	if left := s.rxAction(); left || got != 10 {
		t.Fatalf("processed %d, work left %v", got, left)
	}
	if s.stats.TimeSqueeze != 1 {
		t.Fatalf("time_squeeze %d after a poll that reached the time limit, want 1", s.stats.TimeSqueeze)
	}
}

// backlogPort is a one-queue software backlog (like the stack's loopback):
// frames that do not fit under its limit are dropped and counted.
type backlogPort struct {
	*irqPort
	limit   int
	dropped uint64
}

func (p *backlogPort) send(t testing.TB, ms ...Mbuf) {
	for _, m := range ms {
		if p.rings[0].Len() >= p.limit {
			p.dropped++
			Free(m)
			continue
		}
		p.land(t, 0, m)
	}
}
func (p *backlogPort) Backlog() int    { return p.rings[0].Len() }
func (p *backlogPort) Dropped() uint64 { return p.dropped }

// softnet "dropped" is what Linux's enqueue_to_backlog counts: frames
// refused by a full backlog, on the core that drains that backlog.
func TestSoftnetDroppedCountsBacklogOverflow(t *testing.T) {
	pool := newTestPool(t, 64, 8)
	var cs Caches
	defer cs.Flush()
	p := &backlogPort{irqPort: newIRQPort(t, 1, 64), limit: 10}
	got := 0
	w, _ := NewWorker(AnyCore)
	s, _ := NewSoftirq(w, SoftirqConfig{})
	s.clock = func() int64 { return 0 }
	if _, err := s.Add(NAPIConfig{Port: p, Handler: freeing(&got)}); err != nil {
		t.Fatal(err)
	}
	defer w.Caches.Flush()
	p.ArmRx(0)
	for i := 0; i < 15; i++ {
		m, err := cs.Alloc(pool)
		if err != nil {
			t.Fatal(err)
		}
		p.send(t, m)
	}
	s.collect()
	s.rxAction()
	s.publish()
	if st := s.Stats(); got != 10 || st.Processed != 10 || st.Dropped != 5 {
		t.Fatalf("handled %d; softnet processed %d, dropped %d; want 10 and 5", got, st.Processed, st.Dropped)
	}
}

// Every counter reaches readers under its own name, whatever its position.
func TestPublishedCountersKeepTheirNames(t *testing.T) {
	w, _ := NewWorker(AnyCore)
	s, _ := NewSoftirq(w, SoftirqConfig{})
	want := distinctValues(t, &s.stats).(SoftnetStats)
	s.backlogs = []Backlog{&backlogPort{dropped: want.Dropped}} // dropped is the backlogs' sum
	s.publish()
	if got := s.Stats(); got != want {
		t.Fatalf("softnet counters\n got %+v\nwant %+v", got, want)
	}
	wantPoll := distinctValues(t, &w.stats).(PollStats)
	w.pub.store(&w.stats)
	if got := w.Stats(); got != wantPoll {
		t.Fatalf("poll counters\n got %+v\nwant %+v", got, wantPoll)
	}
}

// distinctValues sets every uint64 of the struct *p (arrays included) to a
// different value and returns the struct.
func distinctValues(t *testing.T, p any) any {
	v := reflect.ValueOf(p).Elem()
	n := uint64(1)
	var set func(f reflect.Value)
	set = func(f reflect.Value) {
		switch f.Kind() {
		case reflect.Uint64:
			f.SetUint(n)
			n++
		case reflect.Array:
			for i := 0; i < f.Len(); i++ {
				set(f.Index(i))
			}
		default:
			t.Fatalf("counter of kind %v", f.Kind())
		}
	}
	for i := 0; i < v.NumField(); i++ {
		set(v.Field(i))
	}
	return v.Interface()
}

// rx-frames alone would leave the last frames of a burst short of the count
// waiting for ever: it needs rx-usecs to bound the wait, and rx-frames 0 or
// 1 with rx-usecs 0 raises for every frame.
func TestRxFramesWithoutRxUsecsIsRefused(t *testing.T) {
	ri := NewRxInterrupt(func() int { return 0 })
	defer ri.Stop()
	if err := ri.SetCoalesce(0, 8); err == nil {
		t.Fatal("rx-frames 8 with rx-usecs 0 accepted: 7 frames would wait for ever")
	}
	for _, c := range [][2]int{{0, 0}, {0, 1}, {50, 8}, {50, 0}} {
		if err := ri.SetCoalesce(c[0], c[1]); err != nil {
			t.Errorf("rx-usecs %d rx-frames %d: %v", c[0], c[1], err)
		}
	}
}

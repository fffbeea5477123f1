package engine

import (
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
	if err := p.irqs[0].SetCoalesce(0, 8); err != nil {
		t.Fatal(err)
	}
	if p.irqs[0].SetCoalesce(-1, 0) == nil || p.irqs[0].SetCoalesce(0, 1<<20) == nil {
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

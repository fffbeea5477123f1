package flow

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

// Every packet leaves exactly once through a separator, a splitter, a
// partitioner and a merger, with clones of the cloneable stages coming and
// going all along (a 1 ms period and low marks), and the drops are the ones
// the functions chose.
func TestEveryPacketLeavesExactlyOnceThroughSeparatorSplitterPartitionerAndMerger(t *testing.T) {
	n := uint64(20000)
	if raceEnabled {
		n = 4000
	}
	pool := testPool(t, 2048)
	port := newFakePort(t, 1, int(n))
	g, err := New(Config{
		RingSize:      128,
		IdleSleep:     20 * time.Microsecond,
		MaxClones:     1,
		Period:        time.Millisecond,
		CloneAbove:    8,
		ClonePeriods:  1,
		RetireBelow:   2,
		RetirePeriods: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := seqGen(n)
	f, err := g.Generator(pool, gen)
	must(t, err)
	must(t, g.Handler(f, func(m engine.Mbuf) bool { return seqOf(m)%7 != 0 }))
	odd, err := g.Separator(f, func(m engine.Mbuf) bool { return seqOf(m)%2 == 0 })
	must(t, err)
	evens, err := g.Splitter(f, func(m engine.Mbuf) int {
		s := seqOf(m)
		if s%11 == 0 {
			return 3 // out of range: dropped
		}
		return int(s % 3)
	}, 3)
	must(t, err)
	odds, err := g.Partitioner(odd, 2, 3)
	must(t, err)
	all, err := g.Merger(append(evens, odds...)...)
	must(t, err)
	must(t, g.Sender(all, port, 0))
	must(t, g.Start())

	want := func(s uint64) bool { return s%7 != 0 && !(s%2 == 0 && s%11 == 0) }
	var wantN uint64
	for s := uint64(0); s < n; s++ {
		if want(s) {
			wantN++
		}
	}
	eventually(t, "every kept packet is sent", func() bool { return stageStats(t, g, "sender1").Out == wantN })
	must(t, g.Stop())

	tq := port.txq[0]
	if tq.bad != 0 {
		t.Fatalf("%d frames without a sequence number", tq.bad)
	}
	for s, c := range tq.seen {
		if want(uint64(s)) && c != 1 || !want(uint64(s)) && c != 0 {
			t.Fatalf("packet %d sent %d times", s, c)
		}
	}
	st := g.Stats()
	h, _ := st.Stage("handler1")
	sp, _ := st.Stage("splitter1")
	if h.Dropped != (n+6)/7 {
		t.Errorf("handler dropped %d, want %d", h.Dropped, (n+6)/7)
	}
	if h.In != n || sp.In+sp.Dropped == 0 || sp.Out+sp.Dropped != sp.In {
		t.Errorf("counters do not add up: handler %+v splitter %+v", h, sp)
	}
	if st.Flushed != 0 {
		t.Errorf("%d packets flushed at stop", st.Flushed)
	}
	for _, s := range st.Stages {
		t.Logf("%s: in %d out %d dropped %d, clones started %d retired %d",
			s.Name, s.In, s.Out, s.Dropped, s.ClonesStarted, s.ClonesRetired)
	}
}

// Without clones a partitioner deals fixed counts in turn, across bursts,
// and each output keeps the order of the input.
func TestPartitionerDealsFixedCountsInTurnAndKeepsOrderWithoutClones(t *testing.T) {
	const n = 100
	pool := testPool(t, 512)
	port := newFakePort(t, 2, n)
	g, err := New(Config{IdleSleep: 20 * time.Microsecond})
	must(t, err)
	gen, _ := seqGen(n)
	f, err := g.Generator(pool, gen)
	must(t, err)
	outs, err := g.Partitioner(f, 2, 3)
	must(t, err)
	must(t, g.Sender(outs[0], port, 0))
	must(t, g.Sender(outs[1], port, 1))
	must(t, g.Start())
	eventually(t, "every packet is sent", func() bool {
		return stageStats(t, g, "sender1").Out+stageStats(t, g, "sender2").Out == n
	})
	must(t, g.Stop())
	var want0, want1 []uint64
	for s := uint64(0); s < n; s++ {
		if s%5 < 2 {
			want0 = append(want0, s)
		} else {
			want1 = append(want1, s)
		}
	}
	if !slices.Equal(port.txq[0].log, want0) || !slices.Equal(port.txq[1].log, want1) {
		t.Fatalf("dealt\n%v\n%v\nwant\n%v\n%v", port.txq[0].log, port.txq[1].log, want0, want1)
	}
}

// A graph whose port takes nothing cannot drain: Stop gives up after the
// drain timeout, frees every packet the graph holds and says how many; the
// port's own frees the rest, and the pool is whole again.
func TestStopFreesEveryPacketAGraphHoldsWhenItCannotDrain(t *testing.T) {
	const n = 300
	pool := testPool(t, 1024)
	port := newFakePort(t, 1, n)
	var cs engine.Caches
	for s := 0; s < n; s++ {
		m, err := cs.Alloc(pool)
		must(t, err)
		b, err := m.Append(8)
		must(t, err)
		b[0] = byte(s)
		port.rx[0].Enqueue(m)
	}
	cs.Close()
	port.limit.Store(0)
	g, err := New(Config{RingSize: 64, IdleSleep: 20 * time.Microsecond, DrainTimeout: 20 * time.Millisecond})
	must(t, err)
	f, err := g.Receiver(port, 0)
	must(t, err)
	must(t, g.Handler(f, func(engine.Mbuf) bool { return true }))
	must(t, g.Sender(f, port, 0))
	must(t, g.Start())
	// Rings of 64 and a burst held by each stage: everything the graph can
	// hold is taken from the port.
	want := uint64(64 + 64 + 3*engine.Burst)
	eventually(t, "the graph is full", func() bool { return stageStats(t, g, "receiver1").In == want })
	err = g.Stop()
	if err == nil {
		t.Fatal("Stop freed undelivered packets without an error")
	}
	if got := g.Stats().Flushed; got != want {
		t.Fatalf("flushed %d, want %d (%v)", got, want, err)
	}
	if left := port.rx[0].Len(); uint64(left) != n-want {
		t.Fatalf("%d packets left in the port, want %d", left, n-want)
	}
	port.Close()
}

// A graph that can drain hands every packet on before Stop returns, with
// nothing flushed, and a second Stop does nothing.
func TestStopDrainsPacketsInFlightBeforeItReturns(t *testing.T) {
	const n = 1000
	pool := testPool(t, 1024)
	port := newFakePort(t, 1, n)
	g, err := New(Config{RingSize: 256, IdleSleep: 20 * time.Microsecond})
	must(t, err)
	gen, _ := seqGen(n)
	f, err := g.Generator(pool, gen)
	must(t, err)
	must(t, g.Handler(f, func(engine.Mbuf) bool { time.Sleep(time.Microsecond); return true }))
	must(t, g.Sender(f, port, 0))
	must(t, g.Start())
	eventually(t, "the generator has made every packet", func() bool { return stageStats(t, g, "generator1").In == n })
	must(t, g.Stop())
	must(t, g.Stop())
	if s := stageStats(t, g, "sender1"); s.Out != n || g.Stats().Flushed != 0 {
		t.Fatalf("sent %d of %d, flushed %d", s.Out, n, g.Stats().Flushed)
	}
}

func TestGraphRefusesFlowsUsedTwiceUnendedForeignOrAfterStart(t *testing.T) {
	pool := testPool(t, 64)
	port := newFakePort(t, 1, 1)
	g, err := New(Config{})
	must(t, err)
	other, err := New(Config{})
	must(t, err)
	keep := func(engine.Mbuf) bool { return true }
	f, err := g.Generator(pool, keep)
	must(t, err)
	must(t, g.Stopper(f))
	if err := g.Handler(f, keep); !errors.Is(err, ErrClosed) {
		t.Errorf("a consumed flow taken again: %v", err)
	}
	if err := other.Stopper(f); !errors.Is(err, ErrForeign) {
		t.Errorf("a flow of another graph: %v", err)
	}
	h, err := g.Generator(pool, keep)
	must(t, err)
	if _, err := g.Merger(h, h); err == nil {
		t.Error("a flow merged with itself")
	}
	if _, err := g.Splitter(h, func(engine.Mbuf) int { return 0 }, 0); !errors.Is(err, ErrNoOutput) {
		t.Errorf("a splitter with no outputs: %v", err)
	}
	if _, err := g.Partitioner(h, 1, 0); err == nil {
		t.Error("a partitioner with a zero count")
	}
	if err := g.Sender(h, port, 1); err == nil {
		t.Error("a sender on a queue the port does not have")
	}
	if err := g.Start(); err == nil {
		t.Error("started with a flow nobody consumes")
	}
	if _, err := New(Config{RingSize: 100}); err == nil {
		t.Error("a ring size that is not a power of two")
	}
	if _, err := New(Config{Cores: []int{1 << 20}}); err == nil {
		t.Error("a core that does not exist")
	}
}

// The steady state of a handler stage allocates nothing per burst.
func TestHandlerBurstAllocatesNothing(t *testing.T) {
	pool := testPool(t, 256)
	g, err := New(Config{MaxClones: 1}) // MPMC rings, as a cloned handler has
	must(t, err)
	f, err := g.Generator(pool, func(engine.Mbuf) bool { return true })
	must(t, err)
	must(t, g.Handler(f, func(m engine.Mbuf) bool { return m.Len() == 0 }))
	must(t, g.Stopper(f))
	must(t, g.build())
	st := g.stages[1]
	in := st.newInstance(false)
	var cs engine.Caches
	ms := make([]engine.Mbuf, engine.Burst)
	must(t, cs.AllocBulk(pool, ms))
	out := make([]engine.Mbuf, engine.Burst)
	allocs := testing.AllocsPerRun(1000, func() {
		st.in.EnqueueBurst(ms)
		if st.burst(in, false) != engine.Burst {
			t.Fatal("the handler moved less than a burst")
		}
		if st.outs[0].DequeueBurst(out) != engine.Burst {
			t.Fatal("the handler handed on less than a burst")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per burst", allocs)
	}
	cs.FreeBulk(ms)
	in.cs.Close()
	cs.Close()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

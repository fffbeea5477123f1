package flow

import (
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

// A handler whose cost is waiting: each packet waits for a token from the
// test. Without tokens its input ring stays full, the scheduler clones it,
// and the work then spreads over both instances; once the tokens flow
// freely and the source runs dry, the ring drains and the clone is retired.
func TestSchedulerClonesABackedUpHandlerAndRetiresTheCloneWhenItDrains(t *testing.T) {
	t.Run("goroutines", func(t *testing.T) { testCloneAndRetire(t, nil) })
	t.Run("workers", func(t *testing.T) {
		testCloneAndRetire(t, []int{engine.AnyCore, engine.AnyCore, engine.AnyCore, engine.AnyCore})
	})
}

func testCloneAndRetire(t *testing.T, cores []int) {
	const n = 2000
	pool := testPool(t, 1024)
	port := newFakePort(t, 1, n)
	clk := &fakeClock{}
	g, err := New(Config{
		RingSize:      64,
		Cores:         cores,
		IdleSleep:     50 * time.Microsecond,
		MaxClones:     1,
		Clock:         clk,
		Period:        10 * time.Millisecond,
		CloneAbove:    48,
		ClonePeriods:  2,
		RetireBelow:   4,
		RetirePeriods: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := seqGen(n)
	f, err := g.Generator(pool, gen)
	if err != nil {
		t.Fatal(err)
	}
	tokens := make(chan struct{})
	if err := g.Handler(f, func(engine.Mbuf) bool { <-tokens; return true }); err != nil {
		t.Fatal(err)
	}
	if err := g.Sender(f, port, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			close(tokens)
			g.Stop()
		}
	}()

	// No tokens: the handler holds one burst and its ring fills up.
	eventually(t, "the handler's input ring is full", func() bool { return stageStats(t, g, "handler1").InputLen == 64 })
	step(t, g, clk)
	if s := stageStats(t, g, "handler1"); s.ClonesStarted != 0 {
		t.Fatalf("a clone after one period above the mark, want %d periods: %+v", 2, s)
	}
	step(t, g, clk)
	s := stageStats(t, g, "handler1")
	if s.ClonesStarted != 1 || s.Clones != 1 || len(s.Instances) != 2 || !s.Instances[1].Clone {
		t.Fatalf("no clone after two periods with the ring full: %+v", s)
	}
	if cores != nil && (s.Instances[0].Worker < 0 || s.Instances[1].Worker < 0 || s.Instances[0].Worker == s.Instances[1].Worker) {
		t.Fatalf("the clone is not on a worker of its own: %+v", s.Instances)
	}
	// The ring stays full while tokens trickle, so nothing more changes.
	step(t, g, clk)
	if s := stageStats(t, g, "handler1"); s.ClonesStarted != 1 {
		t.Fatalf("more than MaxClones clones: %+v", s)
	}

	// Tokens, one at a time: both instances wait on them, and each gets its
	// turn.
	quit := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for {
			select {
			case tokens <- struct{}{}:
			case <-quit:
				return
			}
		}
	}()
	eventually(t, "both instances have handed on packets", func() bool {
		s := stageStats(t, g, "handler1")
		return s.Instances[0].Out > 0 && s.Instances[1].Out > 0
	})
	close(quit)
	<-fed

	// The load drops: tokens cost nothing now and the generator runs dry.
	close(tokens)
	eventually(t, "every packet is sent", func() bool { return stageStats(t, g, "sender1").Out == n })
	for i := 0; i < 2; i++ {
		step(t, g, clk)
		if s := stageStats(t, g, "handler1"); s.ClonesRetired != 0 {
			t.Fatalf("the clone retired after %d periods drained, want 3: %+v", i+1, s)
		}
	}
	step(t, g, clk)
	s = stageStats(t, g, "handler1")
	if s.ClonesRetired != 1 || s.Clones != 0 {
		t.Fatalf("the clone was not retired after three drained periods: %+v", s)
	}
	eventually(t, "the retired clone has exited", func() bool { return !stageStats(t, g, "handler1").Instances[1].Running })
	if !s.Instances[0].Running {
		t.Fatal("the original was retired")
	}
	stopped = true
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	s = stageStats(t, g, "handler1")
	if s.In != n || s.Out != n || s.Instances[0].Out+s.Instances[1].Out != n {
		t.Fatalf("handler counters do not add up to %d: %+v", n, s)
	}
	t.Logf("original handed on %d, clone %d", s.Instances[0].Out, s.Instances[1].Out)
	for seq, c := range port.txq[0].seen {
		if c != 1 {
			t.Fatalf("packet %d sent %d times", seq, c)
		}
	}
}

// A clone needs a core of its own: with every core of Config.Cores taken by
// the graph's stages, a backed-up stage stays alone.
func TestSchedulerStartsNoCloneWithoutAFreeCore(t *testing.T) {
	pool := testPool(t, 512)
	clk := &fakeClock{}
	g, err := New(Config{
		RingSize: 64, Cores: []int{engine.AnyCore, engine.AnyCore, engine.AnyCore},
		IdleSleep: 50 * time.Microsecond, MaxClones: 1, Clock: clk,
		Period: 10 * time.Millisecond, CloneAbove: 48, ClonePeriods: 1,
	})
	must(t, err)
	gen, _ := seqGen(1000)
	f, err := g.Generator(pool, gen)
	must(t, err)
	tokens := make(chan struct{})
	must(t, g.Handler(f, func(engine.Mbuf) bool { <-tokens; return true }))
	must(t, g.Stopper(f))
	must(t, g.Start())
	eventually(t, "the handler's input ring is full", func() bool { return stageStats(t, g, "handler1").InputLen == 64 })
	for i := 0; i < 3; i++ {
		step(t, g, clk)
	}
	s := stageStats(t, g, "handler1")
	close(tokens)
	must(t, g.Stop())
	if s.ClonesStarted != 0 || len(s.Instances) != 1 {
		t.Fatalf("a clone without a free core: %+v", s)
	}
}

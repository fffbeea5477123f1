package bench

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/engine"
)

// Every counter field of the engine's and the sink's structs is covered by
// the window's differences: filled with random values, b-a comes out field
// by field.
func TestCounterDeltasCoverEveryField(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(name string, a, b, got any, skip ...string) {
		t.Helper()
		va, vb, vg := reflect.ValueOf(a), reflect.ValueOf(b), reflect.ValueOf(got)
		var walk func(path string, a, b, g reflect.Value)
		walk = func(path string, a, b, g reflect.Value) {
			switch a.Kind() {
			case reflect.Struct:
				for i := 0; i < a.NumField(); i++ {
					f := a.Type().Field(i).Name
					if slices.Contains(skip, f) {
						continue
					}
					walk(path+"."+f, a.Field(i), b.Field(i), g.Field(i))
				}
			case reflect.Array:
				for i := 0; i < a.Len(); i++ {
					walk(path, a.Index(i), b.Index(i), g.Index(i))
				}
			case reflect.Uint64:
				if g.Uint() != b.Uint()-a.Uint() {
					t.Errorf("%s%s: %d - %d gave %d", name, path, b.Uint(), a.Uint(), g.Uint())
				}
			default:
				t.Errorf("%s%s: kind %v not checked", name, path, a.Kind())
			}
		}
		walk("", va, vb, vg)
	}
	// fill sets every uint64 of v (a pointer) to a random value, and
	// returns a copy with each increased by another.
	fill := func(v any) any {
		var walk func(x reflect.Value)
		walk = func(x reflect.Value) {
			switch x.Kind() {
			case reflect.Struct:
				for i := 0; i < x.NumField(); i++ {
					walk(x.Field(i))
				}
			case reflect.Array:
				for i := 0; i < x.Len(); i++ {
					walk(x.Index(i))
				}
			case reflect.Uint64:
				x.SetUint(rng.Uint64N(1 << 40))
			}
		}
		walk(reflect.ValueOf(v).Elem())
		b := reflect.New(reflect.TypeOf(v).Elem())
		b.Elem().Set(reflect.ValueOf(v).Elem())
		var grow func(x reflect.Value)
		grow = func(x reflect.Value) {
			switch x.Kind() {
			case reflect.Struct:
				for i := 0; i < x.NumField(); i++ {
					grow(x.Field(i))
				}
			case reflect.Array:
				for i := 0; i < x.Len(); i++ {
					grow(x.Index(i))
				}
			case reflect.Uint64:
				x.SetUint(x.Uint() + rng.Uint64N(1<<30))
			}
		}
		grow(b.Elem())
		return b.Interface()
	}
	var q engine.QueueStats
	qb := fill(&q).(*engine.QueueStats)
	check("QueueStats", q, *qb, subQueue(*qb, q))
	var p engine.PollStats
	pb := fill(&p).(*engine.PollStats)
	check("PollStats", p, *pb, subPoll(*pb, p))
	var sn engine.SoftnetStats
	snb := fill(&sn).(*engine.SoftnetStats)
	check("SoftnetStats", sn, *snb, subSoftnet(*snb, sn))
	var sk pktgen.SinkStats
	skb := fill(&sk).(*pktgen.SinkStats)
	check("SinkStats", sk, *skb, subSink(*skb, sk), "Highest") // a position, not a count
}

// The window holds what happened between its two snapshots and nothing of
// the warm-up: here the warm-up overflows the device's receive ring (rx_missed)
// and the sink records latencies, and the window, which forwards every frame,
// shows no drop and only its own frames and latencies.
func TestWindowCountsNothingOfTheWarmup(t *testing.T) {
	cfg := testPPSConfig()
	r, err := newPPSRig(cfg, 64)
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := engine.NewWorker(engine.AnyCore)
	fw, _ := engine.NewWorker(engine.AnyCore)
	r.gen, r.fwd = gw, fw
	wr := &wireRun{cfg: &cfg, mode: ModePMD, size: 64, r: r, a: r.genPair.Ports[1], b: r.sinkPair.Ports[0], s: r.sinkPair.Ports[1]}
	fwd := forwarder(wr.b)
	pkts := make([]engine.Mbuf, engine.Burst)

	// Warm-up: forward 10 bursts, then generate 3 ring-fulls without
	// forwarding, so the ring overflows, then drain what it holds.
	for i := 0; i < 10; i++ {
		r.step(gw, fw, fwd, pkts)
	}
	for i := 0; i < 3*cfg.RingSize/engine.Burst; i++ {
		r.generate(gw, 0)
	}
	for {
		n := wr.a.RxBurst(0, pkts)
		if n == 0 {
			break
		}
		fwd(fw, engine.QueueRef{Port: wr.a}, pkts[:n])
		fw.FlushTx()
		m := wr.s.RxBurst(0, pkts)
		r.receive(gw, engine.QueueRef{Port: wr.s}, pkts[:m])
	}
	warm, _ := engine.PortStats(wr.a)
	if warm.Drops[engine.DropRingFull] == 0 || r.sink.Latency().Count() == 0 {
		t.Fatalf("the warm-up dropped %d frames and recorded %d latencies: the test needs both", warm.Drops[engine.DropRingFull], r.sink.Latency().Count())
	}

	s0 := wr.read(r.mark(markStart))
	const bursts = 25
	got := 0
	for i := 0; i < bursts; i++ {
		got += r.step(gw, fw, fwd, pkts)
	}
	time.Sleep(time.Millisecond) // a wall time that cannot round to 0
	s1 := wr.read(r.mark(markEnd))
	w := s1.sub(&s0, ModePMD)

	want := uint64(bursts * engine.Burst)
	if got != int(want) || w.Offered != want || w.Received != want || w.Forwarded != want || w.Sink.Received != want {
		t.Fatalf("window: offered %d, forwarded %d, received %d (sink %d), want %d each", w.Offered, w.Forwarded, w.Received, w.Sink.Received, want)
	}
	if w.Lost != 0 || w.aRx.Drops[engine.DropRingFull] != 0 || w.LossRatio() != 0 {
		t.Fatalf("window: lost %d, rx_missed %d: the warm-up's drops leaked in", w.Lost, w.aRx.Drops[engine.DropRingFull])
	}
	if w.Latency.Count() != want {
		t.Fatalf("window: %d latencies, want %d (the window's frames alone)", w.Latency.Count(), want)
	}
	c := w.counters()
	for k, v := range map[string]uint64{"generator_frames": want, "rx_missed": 0, "sink_received": want, "latency_samples": want, "lost": 0} {
		if c[k] != v {
			t.Errorf("counter %s = %d, want %d", k, c[k], v)
		}
	}
	if w.Wall <= 0 {
		t.Fatalf("window wall time %v", w.Wall)
	}
	gw.Caches.Flush()
	fw.Caches.Flush()
	if err := r.closePorts(); err != nil {
		t.Fatal(err)
	}
}

func TestDUTBusy(t *testing.T) {
	var fwd engine.PollStats
	if b := dutBusy(ModePMD, fwd, time.Second, time.Second); b != 0 {
		t.Fatalf("pmd with no polls: busy %v", b)
	}
	fwd.Polls, fwd.EmptyPolls = 1000, 250
	if b := dutBusy(ModePMD, fwd, 5*time.Second, time.Second); b != 0.75 {
		t.Fatalf("pmd, 750 of 1000 polls found frames: busy %v, want 0.75 (its CPU time does not count)", b)
	}
	if b := dutBusy(ModeNAPI, fwd, 300*time.Millisecond, time.Second); b != 0.3 {
		t.Fatalf("napi, 0.3 s of CPU in 1 s: busy %v, want 0.3 (its polls do not count)", b)
	}
	if b := dutBusy(ModeNAPI, fwd, 1500*time.Millisecond, time.Second); b != 1 {
		t.Fatalf("napi, softirq and interrupts 1.5 s in 1 s: busy %v, want 1 (capped)", b)
	}
	if b := dutBusy(ModeNAPI, fwd, time.Second, 0); b != 0 {
		t.Fatalf("napi, no wall time: busy %v", b)
	}
	// NAPI's device CPU is the softirq's thread plus the interrupt work.
	a := wireSnap{gen: genMark{At: 0}, fwdCPU: time.Second, irq: 2 * time.Second}
	b := wireSnap{gen: genMark{At: int64(time.Second)}, fwdCPU: 1200 * time.Millisecond, irq: 2100 * time.Millisecond}
	w := b.sub(&a, ModeNAPI)
	if w.DUTCPU != 300*time.Millisecond || w.IRQTime != 100*time.Millisecond || w.Busy < 0.2999 || w.Busy > 0.3001 {
		t.Fatalf("napi window: device CPU %v, interrupts %v, busy %v", w.DUTCPU, w.IRQTime, w.Busy)
	}
	if w := b.sub(&a, ModePMD); w.DUTCPU != 200*time.Millisecond || w.IRQTime != 0 {
		t.Fatalf("pmd window: device CPU %v, interrupts %v (a poller takes no interrupts)", w.DUTCPU, w.IRQTime)
	}
}

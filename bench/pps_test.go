package bench

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

func testPPSConfig() PPSConfig {
	return PPSConfig{
		Sizes: []int{64}, Queues: 1, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		RingSize: 256, GenCore: engine.AnyCore, FwdCore: engine.AnyCore, Idle: engine.IdleSpinYield,
		Modes: []Mode{ModePMD},
	}
}

// step moves one burst through the whole path on the calling goroutine:
// generate, wire, forward, wire, sink.
func (r *ppsRig) step(gw, fw *engine.Worker, fwd engine.Handler, pkts []engine.Mbuf) int {
	a := r.genPair.Ports[1]
	s := r.sinkPair.Ports[1]
	r.tick(gw, 0) // empties the sink (it is empty) and generates
	n := a.RxBurst(0, pkts[:])
	fwd(fw, engine.QueueRef{Port: a, Queue: 0}, pkts[:n])
	fw.FlushTx()
	m := s.RxBurst(0, pkts[:])
	r.receive(gw, engine.QueueRef{Port: s}, pkts[:m])
	return m
}

func TestForwardPathAllocatesNothing(t *testing.T) {
	for _, zc := range []bool{false, true} {
		cfg := testPPSConfig()
		cfg.ZeroCopy = zc
		r, err := newPPSRig(cfg, 64)
		if err != nil {
			t.Fatal(err)
		}
		gw, _ := engine.NewWorker(engine.AnyCore)
		fw, _ := engine.NewWorker(engine.AnyCore)
		fwd := forwarder(r.sinkPair.Ports[0])
		pkts := make([]engine.Mbuf, engine.Burst)
		for i := 0; i < 100; i++ { // warm the caches and buffers
			r.step(gw, fw, fwd, pkts)
		}
		delivered := 0
		allocs := testing.AllocsPerRun(2000, func() { delivered += r.step(gw, fw, fwd, pkts) })
		if allocs != 0 {
			t.Errorf("zero-copy %v: forwarding a burst allocates %v objects, want 0", zc, allocs)
		}
		st := r.sink.Stats()
		if delivered == 0 || st.Lost != 0 || st.Malformed != 0 || st.Duplicates != 0 {
			t.Errorf("zero-copy %v: delivered %d, sink %+v", zc, delivered, st)
		}
		gw.Caches.Flush()
		fw.Caches.Flush()
		if err := r.closePorts(); err != nil {
			t.Errorf("zero-copy %v: leak: %v", zc, err)
		}
	}
}

func TestForwardedFramesHaveSwappedMACs(t *testing.T) {
	r, err := newPPSRig(testPPSConfig(), 128)
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := engine.NewWorker(engine.AnyCore)
	fw, _ := engine.NewWorker(engine.AnyCore)
	a, s := r.genPair.Ports[1], r.sinkPair.Ports[1]
	var pkts [engine.Burst]engine.Mbuf
	r.generate(gw, 0)
	n := a.RxBurst(0, pkts[:])
	forwarder(r.sinkPair.Ports[0])(fw, engine.QueueRef{Port: a}, pkts[:n])
	fw.FlushTx()
	m := s.RxBurst(0, pkts[:])
	if m != n || m == 0 {
		t.Fatalf("sent %d, received %d", n, m)
	}
	gen, dst := r.genPair.Ports[0].Info().MAC, r.genPair.Ports[1].Info().MAC
	d := pkts[0].Data()
	if string(d[0:6]) != string(gen[:]) || string(d[6:12]) != string(dst[:]) || pkts[0].Len() != 128 {
		t.Fatalf("forwarded frame: dst %x src %x len %d", d[0:6], d[6:12], pkts[0].Len())
	}
	gw.Caches.FreeBulk(pkts[:m])
	gw.Caches.Flush()
	fw.Caches.Flush()
	if err := r.closePorts(); err != nil {
		t.Fatal(err)
	}
}

// TestRunPPSReturnsEveryMbuf runs the real workers; RunPPS closes the ports
// and pools at the end and fails if any mbuf is not back. Each result records
// where and how it was measured, and NAPI's device CPU includes the
// interrupts.
func TestRunPPSReturnsEveryMbuf(t *testing.T) {
	for _, c := range []struct {
		queues int
		zc     bool
		sizes  []int
		modes  []Mode
		repeat int
	}{
		{1, false, []int{60, 1518}, []Mode{ModePMD, ModeNAPI}, 1},
		{2, true, []int{64}, []Mode{ModeNAPI, ModePMD}, 2},
		{4, false, []int{9000}, []Mode{ModeNAPI}, 1},
	} {
		cfg := testPPSConfig()
		cfg.Queues, cfg.ZeroCopy, cfg.Sizes, cfg.Modes, cfg.Repeat = c.queues, c.zc, c.sizes, c.modes, c.repeat
		if c.repeat > 1 {
			cfg.Duration = 100 * time.Millisecond
		}
		rs, err := RunPPS(cfg)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		for _, r := range rs {
			sc := r.Scenario
			if len(sc.Samples) != c.repeat || len(r.Runs) != c.repeat || sc.Median <= 0 || r.Sink.Received == 0 || r.Sink.Malformed != 0 {
				t.Fatalf("%+v size %d: samples %v, sink %+v", c, r.Size, sc.Samples, r.Sink)
			}
			if r.Latency.Count() == 0 || r.Latency.Count() > r.Sink.Received {
				t.Fatalf("latency samples %d, received %d", r.Latency.Count(), r.Sink.Received)
			}
			if sc.P99 != nil || sc.Repeat != c.repeat || sc.WarmupS != cfg.Warmup.Seconds() || sc.GOMAXPROCS < 3 ||
				sc.Roles["dut"] != cfg.FwdCore || sc.Roles["generator"] != cfg.GenCore || sc.Roles["sink"] != cfg.GenCore {
				t.Fatalf("provenance: p99 %v, repeat %d, warm-up %v, GOMAXPROCS %d, roles %v", sc.P99, sc.Repeat, sc.WarmupS, sc.GOMAXPROCS, sc.Roles)
			}
			for _, k := range []string{"mtu", "gro", "tso", "csum", "size", "copy"} {
				if _, ok := sc.Knobs[k]; !ok {
					t.Fatalf("knob %s missing: %v", k, sc.Knobs)
				}
			}
			if sc.DUTBusy == nil || *sc.DUTBusy <= 0 || *sc.DUTBusy > 1 {
				t.Fatalf("dut_busy %v", sc.DUTBusy)
			}
			for _, k := range []string{"sink_rx_missed", "sink_rx_nombuf", "rx_missed", "rx_nombuf"} {
				if _, ok := sc.Counters[k]; !ok {
					t.Fatalf("counter %s missing", k)
				}
			}
			// A softirq that never runs out of work stays in its poll and
			// raises no interrupt in the window (a loaded machine does
			// that): interrupts are charged exactly when some were raised.
			if r.Mode == ModeNAPI && (r.Softnet.Processed == 0 || sc.Path != "pollnet-napi" ||
				(r.Interrupts > 0) != (sc.Counters["interrupt_cpu_ns"] > 0)) {
				t.Fatalf("napi run: %d interrupts, %d ns charged, softnet %+v, path %s",
					r.Interrupts, sc.Counters["interrupt_cpu_ns"], r.Softnet, sc.Path)
			}
			for _, w := range r.Runs {
				if w.DUTCPU != w.ThreadCPU+w.IRQTime {
					t.Fatalf("%s: device CPU %v, thread %v + interrupts %v", r.Mode, w.DUTCPU, w.ThreadCPU, w.IRQTime)
				}
				if r.Mode == ModeNAPI && (w.aRx.Interrupts > 0) != (w.IRQTime > 0) {
					t.Fatalf("napi: %d interrupts charged %v", w.aRx.Interrupts, w.IRQTime)
				}
				if r.Mode == ModePMD && w.IRQTime != 0 {
					t.Fatalf("pmd charged %v of interrupts", w.IRQTime)
				}
			}
		}
	}
}

// TestFixedRateIsNeverExceeded checks the generator's ceiling, which holds
// however loaded the machine is; the pacer's accuracy has its own test with a
// simulated clock in pktgen.
func TestFixedRateIsNeverExceeded(t *testing.T) {
	cfg := testPPSConfig()
	cfg.Rate = 20000
	cfg.RingSize = 1024
	start := time.Now()
	rs, err := RunPPS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start).Seconds()
	sent := rs[0].Scenario.Counters["generator_frames"]
	if limit := uint64(cfg.Rate*elapsed) + engine.Burst; sent > limit || sent == 0 {
		t.Fatalf("rate 20000 pps for %.2fs: generator sent %d frames, ceiling %d", elapsed, sent, limit)
	}
	if rs[0].Sink.Received == 0 {
		t.Fatal("nothing reached the sink")
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	cases := []struct {
		mod  func(*PPSConfig)
		flag string
	}{
		{func(c *PPSConfig) { c.Sizes = []int{59} }, "--size"},
		{func(c *PPSConfig) { c.Sizes = []int{9001} }, "--size"},
		{func(c *PPSConfig) { c.Queues = 0 }, "--queues"},
		{func(c *PPSConfig) { c.RingSize = 1000 }, "--ring"},
		{func(c *PPSConfig) { c.FwdCore = 999 }, "--fwd-core"},
		{func(c *PPSConfig) { c.GenCore = -5 }, "--gen-core"},
		{func(c *PPSConfig) { c.Duration = time.Millisecond }, "--duration"},
		{func(c *PPSConfig) { c.Rate = -1 }, "--rate"},
		{func(c *PPSConfig) { c.RxFrames = 8 }, "--rx-frames"},
	}
	for _, c := range cases {
		cfg := testPPSConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		var fe *FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("want a FlagError naming %s, got %v", c.flag, err)
		}
	}
}

// TestIdleNAPISleeps checks the point of interrupts: with no traffic the
// softirq sleeps, while a spinning poll-mode worker burns its core.
func TestIdleNAPISleeps(t *testing.T) {
	cfg := testPPSConfig()
	cfg.NoTraffic, cfg.Idle = true, engine.IdleSpin
	cfg.Modes = []Mode{ModePMD, ModeNAPI}
	rs, err := RunPPS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pmd, napi := rs[0].DUTCPUSeconds, rs[1].DUTCPUSeconds
	if napi > 0.02 || napi >= pmd {
		t.Fatalf("idle %v s: forwarder CPU %.3f s in pmd mode, %.3f s in napi mode", cfg.Duration.Seconds(), pmd, napi)
	}
	if rs[1].Softnet.Processed != 0 || rs[1].Interrupts != 0 || rs[1].Scenario.Metric != "cpu_share" {
		t.Fatalf("idle napi: %+v", rs[1].Softnet)
	}
}

func TestModesParse(t *testing.T) {
	ms, err := ParseModes("pmd,napi,pmd")
	if err != nil || len(ms) != 2 || ms[0] != ModePMD || ms[1] != ModeNAPI {
		t.Fatalf("ParseModes: %v %v", ms, err)
	}
	if _, err := ParseModes("dpdk"); err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Fatalf("bad mode: %v", err)
	}
}

// In pmd mode both workers busy-poll: they may not be pinned to one core. In
// napi mode the forwarder sleeps between interrupts and may share it.
func TestTwoBusyWorkersOnOneCoreAreRefused(t *testing.T) {
	cores, err := engine.Cores()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testPPSConfig()
	cfg.GenCore, cfg.FwdCore = cores[0], cores[0]
	cfg.Modes = []Mode{ModeNAPI, ModePMD}
	var fe *FlagError
	if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--fwd-core") {
		t.Fatalf("pmd mode with both workers on core %d: %v", cores[0], err)
	}
	cfg.Modes = []Mode{ModeNAPI}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("napi mode with both workers on core %d: %v", cores[0], err)
	}
	u := UDPConfig{Sizes: []int{64}, Modes: []Mode{ModePMD}, Duration: time.Second, ClientCore: cores[0], ServerCore: cores[0]}
	if err := u.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--fwd-core") {
		t.Fatalf("udp in pmd mode with both stacks on core %d: %v", cores[0], err)
	}
}

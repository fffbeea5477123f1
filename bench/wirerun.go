package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/bench/progress"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/wire"
)

// wireRun is one independent run of the wire pipeline: fresh ports and
// pools, the generator and sink on one worker, the device under test on
// another, and one or more measured windows, each after a warm-up (the
// first) or a settling time (the others, when a search changes the rate).
type wireRun struct {
	cfg     *PPSConfig
	mode    Mode
	size    int
	r       *ppsRig
	a, b, s *wire.Port
	softirq *engine.Softirq
	wg      sync.WaitGroup
	runErr  [2]error
	windows int
}

// Labels of the goroutines in CPU profiles (see startRun).
const (
	labelScenario = "scenario"
	labelPath     = "path"
	labelRole     = "role"
)

// startRun builds the rig and starts both workers. The device under test's
// goroutine carries pprof labels scenario, path and role=dut; the generator's
// role=generator+sink.
func startRun(cfg *PPSConfig, scenario string, mode Mode, size int) (*wireRun, error) {
	r, err := newPPSRig(*cfg, size)
	if err != nil {
		return nil, err
	}
	r.genStopped = cfg.NoTraffic
	wr := &wireRun{cfg: cfg, mode: mode, size: size, r: r, a: r.genPair.Ports[1], b: r.sinkPair.Ports[0], s: r.sinkPair.Ports[1]}
	if r.fwd, err = engine.NewWorker(cfg.FwdCore); err != nil {
		r.closePorts()
		return nil, err
	}
	if r.gen, err = engine.NewWorker(cfg.GenCore); err != nil {
		r.closePorts()
		return nil, err
	}
	path := "pollnet-" + string(mode)
	start := func(w *engine.Worker, i int, role string, run func() error) error {
		wr.wg.Add(1)
		labels := pprof.Labels(labelScenario, scenario, labelPath, path, labelRole, role)
		err := w.Start(func(w *engine.Worker) {
			defer wr.wg.Done()
			pprof.Do(context.Background(), labels, func(context.Context) { wr.runErr[i] = run() })
		})
		if err != nil {
			wr.wg.Done()
		}
		return err
	}
	// The forwarder is the device under test: a poll-mode worker, or a
	// softirq woken by port A's interrupts.
	fwdRun := func() error {
		return r.fwd.Poll(engine.PollConfig{Rx: queues(wr.a), Handler: forwarder(wr.b), Idle: cfg.Idle})
	}
	if mode == ModeNAPI {
		if wr.softirq, err = engine.NewSoftirq(r.fwd, cfg.Softirq); err != nil {
			r.closePorts()
			return nil, flagErr("%v", err)
		}
		if err := wr.a.SetCoalesce(cfg.RxUsecs, cfg.RxFrames); err != nil {
			r.closePorts()
			return nil, flagErr("--rx-usecs/--rx-frames: %v", err)
		}
		for _, q := range queues(wr.a) {
			if _, err := wr.softirq.Add(engine.NAPIConfig{Port: wr.a, Queue: q.Queue, Weight: cfg.Weight, Handler: forwarder(wr.b)}); err != nil {
				r.closePorts()
				return nil, flagErr("%v", err)
			}
		}
		fwdRun = wr.softirq.Run
	}
	if err := start(r.fwd, 0, "dut", fwdRun); err != nil {
		r.closePorts()
		return nil, err
	}
	if err := start(r.gen, 1, "generator+sink", func() error {
		return r.gen.Poll(engine.PollConfig{Rx: queues(wr.s), Handler: r.receive, Tick: r.tick, Idle: cfg.Idle})
	}); err != nil {
		r.fwd.Stop()
		wr.wg.Wait()
		r.closePorts()
		return nil, err
	}
	if cfg.Live != nil {
		live := &Live{Mode: mode, Size: size, Ports: []engine.Port{wr.a, wr.b}}
		if wr.softirq != nil {
			live.Softirqs = []*engine.Softirq{wr.softirq}
		}
		if mode == ModePMD {
			live.Workers = []*engine.Worker{r.fwd}
		}
		cfg.Live(live)
	}
	return wr, nil
}

// markTimeout bounds the wait for the generator to answer a mark: it answers
// between two rounds of its poll loop, within microseconds, unless it died.
const markTimeout = 5 * time.Second

// snapshot reads every counter of the pipeline: the generator's mark, then
// the rest.
func (wr *wireRun) snapshot(kind int) (wireSnap, error) {
	wr.r.markWant.Store(int32(kind))
	timer := time.NewTimer(markTimeout)
	defer timer.Stop()
	var m genMark
	select {
	case m = <-wr.r.marks:
	case <-wr.r.gen.Done():
		return wireSnap{}, fmt.Errorf("the generator stopped: %v", wr.runErr[1])
	case <-timer.C:
		return wireSnap{}, fmt.Errorf("the generator did not answer within %v", markTimeout)
	}
	return wr.read(m), nil
}

// read completes a snapshot from a generator's mark with the counters any
// goroutine may read.
func (wr *wireRun) read(m genMark) wireSnap {
	s := wireSnap{gen: m}
	s.aRx, _ = engine.PortStats(wr.a)
	s.sRx, _ = engine.PortStats(wr.s)
	_, s.gTx = engine.PortStats(wr.r.genPair.Ports[0])
	_, s.bTx = engine.PortStats(wr.b)
	s.irq = wr.a.InterruptTime()
	s.fwd = wr.r.fwd.FreshStats(statsWait)
	if wr.softirq != nil {
		s.softnet = wr.softirq.Stats()
	}
	s.fwdCPU = wr.r.fwd.CPUTime()
	s.procCPU = CPUTime()
	return s
}

// measure offers rate (0: as fast as the generator can), waits settle, then
// measures a window of d. The first window of a run is profiled under
// profKey when profiles are on (each key once per process).
func (wr *wireRun) measure(label string, rate float64, settle, d time.Duration, profKey string) (window, error) {
	wr.r.setRate(rate)
	var bar *progress.Bar
	if wr.cfg.Progress != nil {
		bar = progress.New(wr.cfg.Progress, label, settle+d)
	}
	t0 := time.Now()
	what := "warm-up"
	if wr.windows > 0 {
		what = "settling"
	}
	wait(bar, t0, settle, what)
	stop := func() {}
	if wr.windows == 0 {
		stop = wr.cfg.prof.start(profKey)
	}
	s0, err := wr.snapshot(markStart)
	if err != nil {
		stop()
		return window{}, err
	}
	wait(bar, t0, settle+d, "measuring")
	s1, err := wr.snapshot(markEnd)
	stop()
	if err != nil {
		return window{}, err
	}
	wr.windows++
	w := s1.sub(&s0, wr.mode)
	w.Rate = rate
	w.GOMAXPROCS = runtime.GOMAXPROCS(0)
	if bar != nil {
		if wr.cfg.NoTraffic {
			bar.Done(fmt.Sprintf("device %.1f%% of a core", 100*w.CPUShare()))
		} else {
			bar.Done(fmt.Sprintf("%.3f Mpps, loss %.4f%%, dut_busy %.2f", w.ReceivedRate()/1e6, 100*w.LossRatio(), w.Busy))
		}
	}
	return w, nil
}

// wait sleeps until t0+until, drawing the bar.
func wait(bar *progress.Bar, t0 time.Time, until time.Duration, status string) {
	for {
		left := until - time.Since(t0)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 100*time.Millisecond))
		if bar != nil {
			bar.Update(time.Since(t0), status)
		}
	}
}

// finish stops the generator, lets the device under test drain what is in
// flight, stops it and closes the ports, which fails if any mbuf is not back
// in its pool.
func (wr *wireRun) finish() error {
	r := wr.r
	r.gen.Stop()
	drainUntil := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(drainUntil) && wr.a.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	r.fwd.Stop()
	wr.wg.Wait()
	if wr.cfg.Live != nil {
		wr.cfg.Live(nil)
	}
	if err := errors.Join(wr.runErr[0], wr.runErr[1]); err != nil {
		r.closePorts()
		return err
	}
	if err := r.closePorts(); err != nil {
		return fmt.Errorf("mbuf leak after the run: %w", err)
	}
	return nil
}

// baseScenario fills what every wire scenario records: names, knobs
// (including MTU and offloads: the forwarder does no GRO, TSO or checksum
// work), roles, warm-up and repeats.
func (c *PPSConfig) baseScenario(name string, mode Mode, size int) result.Scenario {
	sc := result.Scenario{
		Name: name, Path: "pollnet-" + string(mode), Port: "wire",
		Knobs: map[string]any{
			"size": size, "queues": c.Queues, "ring": c.RingSize, "zero_copy": c.ZeroCopy, "copy": !c.ZeroCopy,
			"fwd": "macswap", "idle": c.Idle.String(), "duration_s": c.Duration.Seconds(), "mode": string(mode),
			"mtu": wire.DefaultMTU, "gro": false, "tso": false, "csum": false,
		},
		Roles:   map[string]int{"dut": c.FwdCore, "generator": c.GenCore, "sink": c.GenCore},
		WarmupS: c.Warmup.Seconds(),
		Repeat:  c.repeat(),
	}
	if mode == ModeNAPI {
		sc.Knobs["budget"] = orDefault(c.Softirq.Budget, engine.DefaultBudget)
		sc.Knobs["budget_usecs"] = orDefault(c.Softirq.BudgetUsecs, engine.DefaultBudgetUsecs)
		sc.Knobs["weight"] = c.weight()
		sc.Knobs["rx_usecs"] = c.RxUsecs
		sc.Knobs["rx_frames"] = c.RxFrames
	}
	return sc
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// MinLatencySamples is the fewest latency observations percentiles are
// quoted over.
const MinLatencySamples = result.MinP99Samples

// fillWindows summarises sc's Samples and fills what the windows measured:
// counters (summed), dut_busy (the median over windows), GOMAXPROCS and the
// derived figures in Extra. Latency percentiles are given only over at least
// MinLatencySamples observations.
func fillWindows(sc *result.Scenario, ws []window) error {
	if err := sc.Summarise(); err != nil {
		return err
	}
	sc.Counters = addCounters(ws)
	if sc.Extra == nil {
		sc.Extra = map[string]float64{}
	}
	if len(ws) == 0 {
		return nil
	}
	sc.GOMAXPROCS = ws[0].GOMAXPROCS
	var busy, share []float64
	var dutCPU, procCPU, irq, wall time.Duration
	var fwd, recv, lost, offered, irqs uint64
	lat := new(pktgen.Histogram)
	for i := range ws {
		w := &ws[i]
		busy = append(busy, w.Busy)
		share = append(share, w.CPUShare())
		dutCPU += w.DUTCPU
		procCPU += w.ProcessCPU
		irq += w.IRQTime
		wall += w.Wall
		fwd += w.Forwarded
		recv += w.Received
		lost += w.Lost
		offered += w.Offered
		irqs += w.aRx.Interrupts
		lat.Merge(&w.Latency)
	}
	b, _ := result.Summarise(busy)
	sc.DUTBusy = &b.Median
	sh, _ := result.Summarise(share)
	sc.Extra["dut_busy_min"], sc.Extra["dut_busy_max"] = b.Min, b.Max
	sc.Extra["dut_cpu_share"] = sh.Median
	sc.Extra["dut_cpu_seconds"] = dutCPU.Seconds()
	sc.Extra["interrupt_cpu_seconds"] = irq.Seconds()
	sc.Extra["wall_seconds"] = wall.Seconds()
	sc.CPUSeconds = procCPU.Seconds()
	if wall > 0 {
		sc.Extra["interrupts_per_s"] = float64(irqs) / wall.Seconds()
	}
	if irqs > 0 {
		sc.Extra["interrupt_ns_each"] = float64(irq.Nanoseconds()) / float64(irqs)
	}
	if offered > 0 {
		sc.Extra["loss_ratio"] = float64(lost) / float64(offered)
	}
	if fwd > 0 {
		sc.Extra["dut_cpu_ns_per_packet"] = float64(dutCPU.Nanoseconds()) / float64(fwd)
		sc.Extra["dut_cpu_s_per_mpkt"] = dutCPU.Seconds() * 1e6 / float64(fwd)
	}
	if recv > 0 {
		sc.Extra["cpu_ns_per_packet"] = float64(procCPU.Nanoseconds()) / float64(recv)
	}
	if ws[0].Mode == ModePMD {
		var f engine.PollStats
		for i := range ws {
			f = addPoll(f, ws[i].Fwd)
		}
		sc.Extra["avg_burst"] = avgBurst(f)
	}
	fillLatency(sc.Extra, lat)
	return nil
}

// fillLatency puts h's percentiles in extra, in microseconds, when there are
// enough observations for them.
func fillLatency(extra map[string]float64, h *pktgen.Histogram) {
	if h.Count() < MinLatencySamples {
		return
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	extra["lat_p50_us"] = us(h.Percentile(50))
	extra["lat_p99_us"] = us(h.Percentile(99))
	extra["lat_p999_us"] = us(h.Percentile(99.9))
	extra["lat_max_us"] = us(h.Max())
}

func addPoll(a, b engine.PollStats) engine.PollStats {
	s := engine.PollStats{
		Rounds: a.Rounds + b.Rounds, Polls: a.Polls + b.Polls, EmptyPolls: a.EmptyPolls + b.EmptyPolls,
		Packets: a.Packets + b.Packets, Yields: a.Yields + b.Yields, Timers: a.Timers + b.Timers,
		TxPackets: a.TxPackets + b.TxPackets, TxDropped: a.TxDropped + b.TxDropped,
	}
	for i := range s.BurstHist {
		s.BurstHist[i] = a.BurstHist[i] + b.BurstHist[i]
	}
	return s
}

func avgBurst(s engine.PollStats) float64 {
	var pk, polls uint64
	for n, c := range s.BurstHist {
		pk += uint64(n) * c
		polls += c
	}
	if polls == 0 {
		return 0
	}
	return float64(pk) / float64(polls)
}

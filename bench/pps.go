// Package bench runs benchmark scenarios on pollnet's ports and writes their
// results: the runner, the scenarios, and the glue between engine, drivers
// and the result files.
package bench

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/wire"
)

// PPSConfig is the packet-rate scenario: generator -> port G ~ port A ->
// forwarder (swap MACs) -> port B ~ port S -> sink, where ~ is a wire pair.
type PPSConfig struct {
	Sizes    []int         // frame sizes in bytes, without FCS (60..9000)
	Queues   int           // queues per port; the generator spreads flows over them
	Duration time.Duration // measured time per size
	Warmup   time.Duration // unmeasured time before it
	Repeat   int           // samples the measured time is split into (default 5)
	RingSize int           // descriptors per receive lane
	ZeroCopy bool          // hand mbufs over instead of copying them
	Rate     float64       // generator packets per second; 0 is as fast as it can
	GenCore  int           // core of the generator and sink worker
	FwdCore  int           // core of the forwarder worker
	Idle     engine.Idle
	Progress io.Writer // progress bars go here; nil for none

	Modes     []Mode // how the forwarder is driven; each size runs in each mode
	NoTraffic bool   // the generator stays silent: what does waiting cost?
	Name      string // the scenario's name in result files (default "pps")

	// NAPI mode knobs.
	Softirq  engine.SoftirqConfig // budget and budget-usecs
	Weight   int                  // NAPI weight
	RxUsecs  int                  // interrupt coalescing, as ethtool -C rx-usecs
	RxFrames int                  // and rx-frames

	// Live, if set, is told what to watch while a run goes on, and nil when
	// it ends: the counters `pollnet stat` prints.
	Live func(*Live)
}

// Mode is how the device under test is driven.
type Mode string

// The drive modes.
const (
	ModePMD  Mode = "pmd"  // a pinned worker busy-polls its queues
	ModeNAPI Mode = "napi" // interrupts schedule a softirq that polls under a budget
)

// ParseModes reads a comma-separated list of modes.
func ParseModes(s string) ([]Mode, error) {
	var ms []Mode
	seen := map[Mode]bool{}
	for _, f := range strings.Split(s, ",") {
		m := Mode(strings.TrimSpace(f))
		if m != ModePMD && m != ModeNAPI {
			return nil, flagErr("--mode %q unknown: use pmd, napi, or pmd,napi", f)
		}
		if !seen[m] {
			ms = append(ms, m)
			seen[m] = true
		}
	}
	return ms, nil
}

// Live is what a running scenario exposes to `pollnet stat`.
type Live struct {
	Mode     Mode
	Size     int
	Ports    []engine.Port
	Softirqs []*engine.Softirq // NAPI mode
	Workers  []*engine.Worker  // PMD mode
}

func (c *PPSConfig) name() string {
	if c.Name == "" {
		return "pps"
	}
	return c.Name
}

func (c *PPSConfig) weight() int {
	if c.Weight == 0 {
		return engine.DefaultWeight
	}
	return c.Weight
}

// Ranges that PPSConfig accepts, named after the command-line flags.
const (
	MinQueues = 1
	MaxQueues = 16
)

// FlagError is a configuration value out of range; the command line turns it
// into a usage error (exit status 2).
type FlagError struct{ Msg string }

func (e *FlagError) Error() string { return e.Msg }

func flagErr(format string, a ...any) error { return &FlagError{fmt.Sprintf(format, a...)} }

// Validate refuses values the scenario cannot run with, naming the flag and
// the allowed range.
func (c *PPSConfig) Validate() error {
	if len(c.Sizes) == 0 {
		return flagErr("--size: give at least one frame size (60..9000 bytes)")
	}
	for _, s := range c.Sizes {
		if s < pktgen.MinFrameSize || s > pktgen.MaxFrameSize {
			return flagErr("--size %d is out of range: frame sizes are %d..%d bytes (without FCS)", s, pktgen.MinFrameSize, pktgen.MaxFrameSize)
		}
	}
	if c.Queues < MinQueues || c.Queues > MaxQueues {
		return flagErr("--queues %d is out of range: use %d..%d", c.Queues, MinQueues, MaxQueues)
	}
	if c.RingSize < 32 || c.RingSize > 65536 || c.RingSize&(c.RingSize-1) != 0 {
		return flagErr("--ring %d is not allowed: use a power of two from 32 to 65536", c.RingSize)
	}
	if c.Rate < 0 || c.Rate != c.Rate {
		return flagErr("--rate %v is out of range: packets per second >= 0 (0 is full speed)", c.Rate)
	}
	if len(c.Modes) == 0 {
		return flagErr("--mode: give pmd, napi or pmd,napi")
	}
	if c.Softirq.Budget < 0 || c.Softirq.Budget > 1<<20 {
		return flagErr("--budget %d is out of range: use 1..%d (0 for the default %d)", c.Softirq.Budget, 1<<20, engine.DefaultBudget)
	}
	if c.Softirq.BudgetUsecs < 0 || c.Softirq.BudgetUsecs > 1e6 {
		return flagErr("--budget-usecs %d is out of range: use 1..1000000 (0 for the default %d)", c.Softirq.BudgetUsecs, engine.DefaultBudgetUsecs)
	}
	if c.Weight < 0 || c.Weight > 1<<16 {
		return flagErr("--weight %d is out of range: use 1..65536 (0 for the default %d)", c.Weight, engine.DefaultWeight)
	}
	if c.RxUsecs < 0 || c.RxUsecs > 1e6 {
		return flagErr("--rx-usecs %d is out of range: use 0..1000000", c.RxUsecs)
	}
	if c.RxFrames < 0 || c.RxFrames > 65536 {
		return flagErr("--rx-frames %d is out of range: use 0..65536", c.RxFrames)
	}
	if c.RxFrames > 1 && c.RxUsecs == 0 {
		return flagErr("--rx-frames %d needs --rx-usecs: a frame count alone would leave the last frames of a burst waiting for ever", c.RxFrames)
	}
	return checkRun(c.Duration, c.Warmup, c.GenCore, c.FwdCore, slices.Contains(c.Modes, ModePMD))
}

// checkRun refuses run lengths and cores every scenario shares. When both
// workers busy-poll (bothBusy), they may not be pinned to the same core: the
// engine refuses it, and they would only take turns.
func checkRun(duration, warmup time.Duration, genCore, fwdCore int, bothBusy bool) error {
	if duration < 100*time.Millisecond || duration > time.Hour {
		return flagErr("--duration %v is out of range: use 100ms..1h", duration)
	}
	if warmup < 0 || warmup > time.Minute {
		return flagErr("--warmup %v is out of range: use 0..1m", warmup)
	}
	for _, core := range []struct {
		flag string
		c    int
	}{{"--gen-core", genCore}, {"--fwd-core", fwdCore}} {
		if err := engine.CheckCore(core.c); err != nil {
			return flagErr("%s: %v", core.flag, err)
		}
	}
	if bothBusy && genCore == fwdCore && genCore != engine.AnyCore {
		return flagErr("--gen-core and --fwd-core are both %d: in pmd mode both workers busy-poll, and two busy pollers cannot share a core; give them different cores (or -1 for unpinned)", genCore)
	}
	return nil
}

// DefaultCores picks the generator and forwarder cores: the first and the last
// core this process may use. With one core both are left unpinned, since two
// busy workers may not be pinned to one core; the engine then warns that they
// share it.
func DefaultCores() (gen, fwd int) {
	cores, err := engine.Cores()
	if err != nil || len(cores) < 2 {
		return engine.AnyCore, engine.AnyCore
	}
	return cores[0], cores[len(cores)-1]
}

// ppsRig is one run's topology.
type ppsRig struct {
	cfg      PPSConfig
	size     int
	genPair  *wire.Pair // G (0) ~ A (1)
	sinkPair *wire.Pair // B (0) ~ S (1)
	genPool  *engine.Pool
	tmpl     *pktgen.Template
	pacer    *pktgen.Pacer
	sink     pktgen.Sink
	seq      uint64
	scratch  []byte // a frame too large for one segment is built here
	// latencyReset asks the sink's worker to forget the warm-up latencies.
	latencyReset atomic.Bool
	txQueue      int
	gen, fwd     *engine.Worker
	genStopped   bool
}

func newPPSRig(cfg PPSConfig, size int) (*ppsRig, error) {
	r := &ppsRig{cfg: cfg, size: size, scratch: make([]byte, size)}
	var err error
	wc := wire.Config{Queues: cfg.Queues, RingSize: cfg.RingSize, ZeroCopy: cfg.ZeroCopy}
	wc.Names = [2]string{"gen", "fwd-rx"}
	if r.genPair, err = wire.NewPair(wc); err != nil {
		return nil, err
	}
	wc.Names = [2]string{"fwd-tx", "sink"}
	if r.sinkPair, err = wire.NewPair(wc); err != nil {
		r.closePorts()
		return nil, err
	}
	segs := (size + engine.DataRoom - 1) / engine.DataRoom
	if r.genPool, err = engine.NewPool("pktgen", segs*(4096+2*cfg.RingSize), 0); err != nil {
		r.closePorts()
		return nil, err
	}
	fc := pktgen.DefaultFlowConfig(size)
	fc.SrcMAC = r.genPair.Ports[0].Info().MAC
	fc.DstMAC = r.genPair.Ports[1].Info().MAC
	fc.Flows = 64 * cfg.Queues
	if r.tmpl, err = pktgen.NewTemplate(fc); err != nil {
		r.closePorts()
		return nil, err
	}
	r.pacer = pktgen.NewPacer(cfg.Rate, engine.Burst)
	return r, nil
}

func (r *ppsRig) closePorts() error {
	var errs []error
	// The sink pair first: port B's transmit queue still holds port A's
	// sent buffers until it is closed, and A's pool is checked when the
	// generator pair closes.
	for _, pr := range []*wire.Pair{r.sinkPair, r.genPair} {
		if pr == nil {
			continue
		}
		for _, p := range pr.Ports {
			if err := p.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r.genPool != nil {
		if err := r.genPool.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// generate sends one paced burst of stamped frames from the generator port.
func (r *ppsRig) generate(w *engine.Worker, _ int) {
	if r.genStopped {
		return
	}
	now := engine.Nanotime()
	n := r.pacer.Allow(now)
	if n == 0 {
		return
	}
	var burst [engine.Burst]engine.Mbuf
	pkts := burst[:n]
	if w.Caches.AllocBulk(r.genPool, pkts) != nil {
		return // every buffer is in flight; the pool's counter records it
	}
	for i, m := range pkts {
		if r.size <= m.Tailroom() {
			buf, _ := m.Append(r.size)
			r.tmpl.Fill(buf, r.seq, now)
		} else {
			// A jumbo frame spans segments: stamp it whole, then copy.
			r.tmpl.Fill(r.scratch, r.seq, now)
			if w.Caches.AppendBytes(m, r.genPool, r.scratch) != nil {
				w.Caches.FreeBulk(pkts[i:])
				pkts = pkts[:i]
				break
			}
		}
		r.seq++
	}
	g := r.genPair.Ports[0]
	g.TxBurst(r.txQueue, pkts) // the wire takes every frame
	if r.cfg.Queues > 1 {
		r.txQueue = (r.txQueue + 1) % r.cfg.Queues
	}
}

// receive is the sink: it checks sequence and latency of every frame.
func (r *ppsRig) receive(w *engine.Worker, _ engine.QueueRef, pkts []engine.Mbuf) {
	if r.latencyReset.Load() {
		r.sink.Latency().Reset()
		r.latencyReset.Store(false)
	}
	now := engine.Nanotime()
	for _, m := range pkts {
		r.sink.ObserveHead(m.Data(), m.PktLen(), now)
	}
	w.Caches.FreeBulk(pkts)
}

// forward swaps the MAC addresses of every frame and sends it out of port B
// on the queue it arrived on, as testpmd's macswap mode does.
func forwarder(out engine.Port) engine.Handler {
	return func(w *engine.Worker, from engine.QueueRef, pkts []engine.Mbuf) {
		tx := w.TxBuffer(out, from.Queue)
		for _, m := range pkts {
			d := m.Data()
			if len(d) >= 12 {
				var tmp [6]byte
				copy(tmp[:], d[0:6])
				copy(d[0:6], d[6:12])
				copy(d[6:12], tmp[:])
			}
			tx.Add(m)
		}
	}
}

func queues(p engine.Port) []engine.QueueRef {
	var qs []engine.QueueRef
	for q := 0; q < p.Info().RxQueues; q++ {
		qs = append(qs, engine.QueueRef{Port: p, Queue: q})
	}
	return qs
}

// PPSResult is one frame size's measurement.
type PPSResult struct {
	Mode          Mode
	Size          int
	Scenario      result.Scenario
	Sink          pktgen.SinkStats
	Latency       *pktgen.Histogram
	FwdStats      engine.PollStats    // PMD mode
	Softnet       engine.SoftnetStats // NAPI mode
	RxMissed      uint64
	Interrupts    uint64
	Received      uint64  // frames the sink got while measuring
	CPUSeconds    float64 // the whole process
	DUTCPUSeconds float64 // the forwarder's thread alone
}

// RunPPS runs the packet-rate scenario once per frame size.
func RunPPS(cfg PPSConfig) ([]PPSResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Two workers each hold a P for the whole run; one more keeps the
	// sampler and the progress bar responsive.
	if runtime.GOMAXPROCS(0) < 3 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	}
	// Modes alternate within each size, so that a ratio between them is
	// measured minutes apart at most, not across the whole run.
	var out []PPSResult
	for _, size := range cfg.Sizes {
		for _, mode := range cfg.Modes {
			res, err := runPPSSize(cfg, mode, size)
			if err != nil {
				return out, fmt.Errorf("%s %s %d bytes: %w", cfg.name(), mode, size, err)
			}
			out = append(out, res)
		}
	}
	return out, nil
}

func runPPSSize(cfg PPSConfig, mode Mode, size int) (PPSResult, error) {
	r, err := newPPSRig(cfg, size)
	if err != nil {
		return PPSResult{}, err
	}
	r.genStopped = cfg.NoTraffic
	a := r.genPair.Ports[1]
	b := r.sinkPair.Ports[0]
	s := r.sinkPair.Ports[1]

	if r.fwd, err = engine.NewWorker(cfg.FwdCore); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	if r.gen, err = engine.NewWorker(cfg.GenCore); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	var wg sync.WaitGroup
	var runErr [2]error
	start := func(w *engine.Worker, i int, run func() error) error {
		wg.Add(1)
		err := w.Start(func(w *engine.Worker) {
			defer wg.Done()
			runErr[i] = run()
		})
		if err != nil {
			wg.Done()
		}
		return err
	}
	// The forwarder is the device under test: a poll-mode worker, or a
	// softirq woken by port A's interrupts.
	var softirq *engine.Softirq
	fwdRun := func() error {
		return r.fwd.Poll(engine.PollConfig{Rx: queues(a), Handler: forwarder(b), Idle: cfg.Idle})
	}
	if mode == ModeNAPI {
		if softirq, err = engine.NewSoftirq(r.fwd, cfg.Softirq); err != nil {
			r.closePorts()
			return PPSResult{}, flagErr("%v", err)
		}
		if err := a.SetCoalesce(cfg.RxUsecs, cfg.RxFrames); err != nil {
			r.closePorts()
			return PPSResult{}, flagErr("--rx-usecs/--rx-frames: %v", err)
		}
		for _, q := range queues(a) {
			if _, err := softirq.Add(engine.NAPIConfig{Port: a, Queue: q.Queue, Weight: cfg.Weight, Handler: forwarder(b)}); err != nil {
				r.closePorts()
				return PPSResult{}, flagErr("%v", err)
			}
		}
		fwdRun = softirq.Run
	}
	if err := start(r.fwd, 0, fwdRun); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	if err := start(r.gen, 1, func() error {
		return r.gen.Poll(engine.PollConfig{Rx: queues(s), Handler: r.receive, Tick: r.generate, Idle: cfg.Idle})
	}); err != nil {
		r.fwd.Stop()
		wg.Wait()
		r.closePorts()
		return PPSResult{}, err
	}
	stats := &Live{Mode: mode, Size: size, Ports: []engine.Port{a, b}}
	if softirq != nil {
		stats.Softirqs = []*engine.Softirq{softirq}
	}
	if mode == ModePMD {
		stats.Workers = []*engine.Worker{r.fwd}
	}
	if cfg.Live != nil {
		cfg.Live(stats)
	}

	sinkCount := func() uint64 { rx, _ := engine.PortStats(s); return rx.Packets }
	var cpu0, dut0 time.Duration
	var missed0, irq0 uint64
	sm := sampling{
		Progress: cfg.Progress, Label: fmt.Sprintf("%s %-4s %4dB q%d", cfg.name(), mode, size, cfg.Queues),
		Warmup: cfg.Warmup, Duration: cfg.Duration, Repeat: cfg.Repeat, Count: sinkCount,
		// The forwarder thread's CPU time: its share of a core per sample.
		Extra: func() uint64 { return uint64(r.fwd.CPUTime()) },
		Measuring: func() {
			cpu0, dut0 = CPUTime(), r.fwd.CPUTime()
			missed0, irq0 = rxMissed(a), interrupts(a)
			r.latencyReset.Store(true) // latency from the measured period only
		},
		Status: func(rate, share float64) string {
			return fmt.Sprintf("%.2f Mpps, forwarder %.0f%% of a core", rate/1e6, 100*share)
		},
	}.run()
	samples, dutShare, wall, received, bar := sm.Rates, sm.Extras, sm.Wall, sm.Total, sm.Bar
	cpu := CPUTime() - cpu0
	dutCPU := r.fwd.CPUTime() - dut0
	missed := rxMissed(a) - missed0
	irqs := interrupts(a) - irq0

	// Stop the generator first and let the forwarder drain what is in
	// flight, so the pools can be checked for leaks.
	r.gen.Stop()
	drainUntil := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(drainUntil) && pending(a) > 0 {
		time.Sleep(time.Millisecond)
	}
	r.fwd.Stop()
	wg.Wait()
	if cfg.Live != nil {
		cfg.Live(nil)
	}
	fwdStats := r.fwd.Stats()
	var softnet engine.SoftnetStats
	if softirq != nil {
		softnet = softirq.Stats()
	}
	if err := errors.Join(runErr[0], runErr[1]); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	if err := r.closePorts(); err != nil {
		return PPSResult{}, fmt.Errorf("mbuf leak after the run: %w", err)
	}

	res := PPSResult{Mode: mode, Size: size, Sink: r.sink.Stats(), Latency: r.sink.Latency(), FwdStats: fwdStats,
		Softnet: softnet, RxMissed: missed, CPUSeconds: cpu.Seconds(), DUTCPUSeconds: dutCPU.Seconds(), Interrupts: irqs}
	sc := result.Scenario{
		Name: cfg.name(), Path: "pollnet-" + string(mode), Port: "wire",
		Knobs: map[string]any{
			"size": size, "queues": cfg.Queues, "ring": cfg.RingSize, "zero_copy": cfg.ZeroCopy,
			"rate": cfg.Rate, "idle": cfg.Idle.String(), "duration_s": cfg.Duration.Seconds(), "mode": string(mode),
		},
		Metric: "rx_pps", Unit: "packets/s",
		Samples:    samples,
		CPUSeconds: cpu.Seconds(),
		Counters: map[string]uint64{
			"rx_missed":        missed,
			"interrupts":       irqs,
			"sink_received":    res.Sink.Received,
			"sink_lost":        res.Sink.Lost,
			"sink_duplicates":  res.Sink.Duplicates,
			"sink_reordered":   res.Sink.Reordered,
			"sink_malformed":   res.Sink.Malformed,
			"latency_samples":  res.Latency.Count(),
			"generator_frames": r.seq,
		},
	}
	if mode == ModeNAPI {
		sc.Knobs["budget"] = softirq.Config().Budget
		sc.Knobs["budget_usecs"] = softirq.Config().BudgetUsecs
		sc.Knobs["weight"] = cfg.weight()
		sc.Knobs["rx_usecs"] = cfg.RxUsecs
		sc.Knobs["rx_frames"] = cfg.RxFrames
		sc.Counters["processed"] = softnet.Processed
		sc.Counters["dropped"] = softnet.Dropped
		sc.Counters["time_squeeze"] = softnet.TimeSqueeze
		sc.Counters["softirq_rounds"] = softnet.Rounds
		sc.Counters["napi_polls"] = softnet.Polls
		sc.Counters["wakeups"] = softnet.Wakeups
		sc.Counters["parks"] = softnet.Parks
	} else {
		sc.Counters["fwd_polls"] = fwdStats.Polls
		sc.Counters["fwd_empty_polls"] = fwdStats.EmptyPolls
		sc.Counters["fwd_tx_dropped"] = fwdStats.TxDropped
		sc.Counters["fwd_full_bursts"] = fwdStats.BurstHist[engine.Burst]
	}
	if cfg.NoTraffic {
		// An idle run measures what waiting costs: the forwarder's share
		// of a core, per second.
		sc.Metric, sc.Unit, sc.Samples = "dut_cpu", "cores", dutShare
	}
	if err := sc.Summarise(); err != nil {
		return PPSResult{}, err
	}
	share, _ := result.Summarise(dutShare)
	sc.Extra = map[string]float64{
		"dut_cpu_seconds":  dutCPU.Seconds(),
		"dut_cpu_share":    share.Median,
		"latency_p50_ns":   float64(res.Latency.Percentile(50)),
		"latency_p99_ns":   float64(res.Latency.Percentile(99)),
		"latency_p999_ns":  float64(res.Latency.Percentile(99.9)),
		"latency_max_ns":   float64(res.Latency.Max()),
		"wall_seconds":     wall.Seconds(),
		"interrupts_per_s": float64(irqs) / wall.Seconds(),
	}
	if !cfg.NoTraffic {
		sc.Extra["mpps_median"] = sc.Median / 1e6
		sc.Extra["gbps_median"] = sc.Median * float64(size+24) * 8 / 1e9 // with FCS, preamble and gap
	}
	if mode == ModePMD {
		sc.Extra["avg_burst"] = avgBurst(fwdStats)
	}
	if received > 0 {
		sc.Extra["dut_cpu_ns_per_packet"] = dutCPU.Seconds() * 1e9 / float64(received)
		sc.Extra["dut_cpu_s_per_mpkt"] = dutCPU.Seconds() * 1e6 / float64(received)
		sc.Extra["cpu_ns_per_packet"] = cpu.Seconds() * 1e9 / float64(received)
	}
	res.Received = received
	res.Scenario = sc
	if bar != nil {
		if cfg.NoTraffic {
			bar.Done(fmt.Sprintf("forwarder %.1f%% of a core", 100*share.Median))
		} else {
			bar.Done(fmt.Sprintf("%.2f Mpps", sc.Median/1e6))
		}
	}
	return res, nil
}

func interrupts(p engine.Port) uint64 {
	rx, _ := engine.PortStats(p)
	return rx.Interrupts
}

func rxMissed(p engine.Port) uint64 {
	rx, _ := engine.PortStats(p)
	return rx.Drops[engine.DropRingFull]
}

// pending is how many frames wait on p's receive rings; it reads only
// counters, so any goroutine may call it.
func pending(p engine.Port) uint64 {
	var n uint64
	if wp, ok := p.(*wire.Port); ok {
		n = uint64(wp.Pending())
	}
	return n
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

// FormatPPS prints the results as a table, then the ratios between modes
// for every frame size run in both.
func FormatPPS(w io.Writer, rs []PPSResult) {
	fmt.Fprintf(w, "%-5s %6s %9s %8s %10s %10s %10s %9s %9s %10s %9s\n",
		"mode", "size", "Mpps", "Gbit/s", "lat p50", "lat p99", "rx_missed", "fwd cpu", "fwd ns/p", "irq/s", "squeeze")
	for _, r := range rs {
		sc := r.Scenario
		nsp := "-"
		if v, ok := sc.Extra["dut_cpu_ns_per_packet"]; ok {
			nsp = fmt.Sprintf("%.1f", v)
		}
		mpps := sc.Extra["mpps_median"]
		fmt.Fprintf(w, "%-5s %6d %9.3f %8.2f %10v %10v %10d %8.1f%% %9s %10.0f %9d\n",
			r.Mode, r.Size, mpps, sc.Extra["gbps_median"],
			roundLatency(r.Latency.Percentile(50)), roundLatency(r.Latency.Percentile(99)),
			r.RxMissed, 100*sc.Extra["dut_cpu_share"], nsp, sc.Extra["interrupts_per_s"], r.Softnet.TimeSqueeze)
	}
	for _, p := range pairModes(rs) {
		pm, na := p[0].Scenario, p[1].Scenario
		line := fmt.Sprintf("pmd/napi at %d B:", p[0].Size)
		if na.Median > 0 {
			line += fmt.Sprintf(" throughput %.2fx", pm.Median/na.Median)
		}
		if a, b := pm.Extra["dut_cpu_ns_per_packet"], na.Extra["dut_cpu_ns_per_packet"]; a > 0 && b > 0 {
			line += fmt.Sprintf(", forwarder CPU per packet %.2fx", a/b)
		}
		if a, b := pm.Extra["dut_cpu_share"], na.Extra["dut_cpu_share"]; b > 0 {
			line += fmt.Sprintf(", forwarder CPU share %.0f%% vs %.1f%%", 100*a, 100*b)
		}
		if a, b := p[0].Latency.Percentile(99), p[1].Latency.Percentile(99); a > 0 && b > 0 {
			line += fmt.Sprintf(", p99 latency %v vs %v", roundLatency(a), roundLatency(b))
		}
		fmt.Fprintln(w, line)
	}
}

// pairModes finds, per frame size, the PMD and NAPI results of one run.
func pairModes(rs []PPSResult) [][2]PPSResult {
	var pairs [][2]PPSResult
	for i, a := range rs {
		if a.Mode != ModePMD {
			continue
		}
		for _, b := range rs[i+1:] {
			if b.Mode == ModeNAPI && b.Size == a.Size {
				pairs = append(pairs, [2]PPSResult{a, b})
				break
			}
		}
	}
	return pairs
}

func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d.Round(10 * time.Nanosecond)
}

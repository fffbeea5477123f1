// Package bench runs benchmark scenarios on pollnet's ports and writes their
// results: the runner, the scenarios, and the glue between engine, drivers
// and the result files.
package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
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
	Duration time.Duration // measured time of each run
	Warmup   time.Duration // unmeasured time before it, in every run
	// Repeat is the number of independent runs per mode and size (default
	// 1), interleaved between the modes: pmd, napi, pmd, napi, ... Each
	// builds its own ports and pools and has its own warm-up.
	Repeat   int
	RingSize int     // descriptors per receive lane
	ZeroCopy bool    // hand mbufs over instead of copying them
	Rate     float64 // generator packets per second; 0 is as fast as it can
	GenCore  int     // core of the generator and sink worker
	FwdCore  int     // core of the forwarder worker
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

	// prof, if set, writes a CPU profile of the measured window of the
	// first run of each scenario, path and knob set.
	prof *profiler
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

func (c *PPSConfig) repeat() int { return max(c.Repeat, 1) }

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
	MaxRepeat = 1000
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
	if c.Repeat < 0 || c.Repeat > MaxRepeat {
		return flagErr("--repeat %d is out of range: use 1..%d", c.Repeat, MaxRepeat)
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
	sink     pktgen.Sink
	scratch  []byte // a frame too large for one segment is built here
	txQueue  int
	gen, fwd *engine.Worker

	// Owned by the generator's goroutine.
	drain      [engine.Burst]engine.Mbuf // the sink's extra receive bursts
	pacer      *pktgen.Pacer
	paced      float64 // the rate pacer holds to
	seq        uint64  // frames generated
	allocFails uint64  // bursts not sent: the pool was empty
	genStopped bool

	// rate is the offered rate asked for (math.Float64bits; 0 is as fast as
	// the generator can); the generator picks a change up on its next round.
	rate atomic.Uint64
	// markWant asks the generator's goroutine for a genMark (markStart or
	// markEnd); it answers on marks.
	markWant atomic.Int32
	marks    chan genMark
}

// Kinds of genMark.
const (
	markStart = 1 // the window starts: the sink forgets the latencies before it
	markEnd   = 2 // the window ends: the mark carries its latencies
)

func newPPSRig(cfg PPSConfig, size int) (*ppsRig, error) {
	r := &ppsRig{cfg: cfg, size: size, scratch: make([]byte, size), marks: make(chan genMark, 1)}
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
	r.setRate(cfg.Rate)
	r.paced = cfg.Rate
	r.pacer = pktgen.NewPacer(cfg.Rate, engine.Burst)
	return r, nil
}

// setRate asks the generator for a new offered rate (0: as fast as it can).
func (r *ppsRig) setRate(pps float64) { r.rate.Store(math.Float64bits(pps)) }

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

// tick is the generator worker's work between its receive polls: answer a
// mark request, follow a rate change, empty the sink's rings, send a burst.
func (r *ppsRig) tick(w *engine.Worker, n int) {
	if k := r.markWant.Load(); k != 0 {
		r.markWant.Store(0)
		r.marks <- r.mark(int(k))
	}
	if rate := math.Float64frombits(r.rate.Load()); rate != r.paced {
		r.paced = rate
		r.pacer = pktgen.NewPacer(rate, engine.Burst)
	}
	r.drainSink(w)
	r.generate(w, n)
}

// drainSink receives everything waiting at the sink before the next burst
// is generated. The poll loop takes one burst per queue per round and the
// generator sends one: at the generator's full speed a sink that fell
// behind once would never catch up, and would drop frames for ever, a loss
// that is the harness's and not the device's. Draining first puts the sink
// ahead of the generator, which slows instead: then the offered rate, and
// dut_busy, say that the harness is the limit.
func (r *ppsRig) drainSink(w *engine.Worker) {
	s := r.sinkPair.Ports[1]
	for q := 0; q < r.cfg.Queues; q++ {
		for i := 0; i <= r.cfg.RingSize/engine.Burst; i++ {
			k := s.RxBurst(q, r.drain[:])
			if k == 0 {
				break
			}
			r.receive(w, engine.QueueRef{Port: s, Queue: q}, r.drain[:k])
		}
	}
}

// mark snapshots the generator's and the sink's counters, on their
// goroutine. A start mark empties the latency histogram; an end mark carries
// a copy of it.
func (r *ppsRig) mark(kind int) genMark {
	m := genMark{At: engine.Nanotime(), Seq: r.seq, AllocFails: r.allocFails, Sink: r.sink.Stats()}
	switch kind {
	case markStart:
		r.sink.Latency().Reset()
	case markEnd:
		h := *r.sink.Latency()
		m.Latency = &h
	}
	return m
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
		r.allocFails++ // every buffer is in flight
		return
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

// PPSResult is one mode and frame size: its runs' measured windows and the
// scenario made of them. The counters here are sums over the windows.
type PPSResult struct {
	Mode          Mode
	Size          int
	Scenario      result.Scenario
	Runs          []window
	Sink          pktgen.SinkStats
	Latency       *pktgen.Histogram // every window's latencies
	Softnet       engine.SoftnetStats
	RxMissed      uint64
	Interrupts    uint64
	Received      uint64  // frames the sink got while measuring
	CPUSeconds    float64 // the whole process
	DUTCPUSeconds float64 // the device under test: its thread, and interrupts in NAPI mode
}

// raiseProcs makes sure there are at least n processors: the run's two
// workers each hold one for the whole run, and one more keeps the main
// goroutine, the sampler and the progress bar responsive. It returns the
// function that restores the old setting.
func raiseProcs(n int) func() {
	if old := runtime.GOMAXPROCS(0); old < n {
		runtime.GOMAXPROCS(n)
		return func() { runtime.GOMAXPROCS(old) }
	}
	return func() {}
}

// RunPPS runs the packet-rate scenario: Repeat independent runs per mode and
// frame size, the modes interleaved, each with its warm-up and one measured
// window of Duration at the configured rate (or without traffic).
func RunPPS(cfg PPSConfig) ([]PPSResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer raiseProcs(3)()
	runs := map[slotKey][]window{}
	for _, sl := range runOrder(cfg.Sizes, cfg.Modes, cfg.repeat()) {
		label := fmt.Sprintf("%s %-4s %4dB q%d run %d/%d", cfg.name(), sl.Mode, sl.Size, cfg.Queues, sl.Run+1, cfg.repeat())
		w, err := runOnce(&cfg, cfg.name(), sl, label, cfg.Rate, fmt.Sprintf("%s-%s-%dB", cfg.name(), sl.Mode, sl.Size))
		if err != nil {
			return nil, fmt.Errorf("%s %s %d bytes, run %d of %d: %w", cfg.name(), sl.Mode, sl.Size, sl.Run+1, cfg.repeat(), err)
		}
		runs[sl.key()] = append(runs[sl.key()], w)
	}
	var out []PPSResult
	for _, size := range cfg.Sizes {
		for _, mode := range cfg.Modes {
			ws := runs[slotKey{mode, size}]
			res, err := cfg.ppsResult(mode, size, ws)
			if err != nil {
				return nil, err
			}
			out = append(out, res)
		}
	}
	return out, nil
}

// runOnce is one independent run with one measured window.
func runOnce(cfg *PPSConfig, scenario string, sl slot, label string, rate float64, profKey string) (window, error) {
	wr, err := startRun(cfg, scenario, sl.Mode, sl.Size)
	if err != nil {
		return window{}, err
	}
	w, err := wr.measure(label, rate, cfg.Warmup, cfg.Duration, profKey)
	if ferr := wr.finish(); err == nil {
		err = ferr
	}
	return w, err
}

// ppsResult makes the scenario of one mode and size from its runs.
func (c *PPSConfig) ppsResult(mode Mode, size int, ws []window) (PPSResult, error) {
	sc := c.baseScenario(c.name(), mode, size)
	sc.Knobs["rate"] = c.Rate
	sc.Metric, sc.Unit = "rx_pps", "packets/s"
	for i := range ws {
		sc.Samples = append(sc.Samples, ws[i].ReceivedRate())
	}
	if c.NoTraffic {
		// An idle run measures what waiting costs: the cores the device
		// under test burns with nothing to do.
		sc.Metric, sc.Unit, sc.Samples = "cpu_share", "cores", nil
		for i := range ws {
			sc.Samples = append(sc.Samples, ws[i].CPUShare())
		}
	}
	if err := fillWindows(&sc, ws); err != nil {
		return PPSResult{}, err
	}
	if !c.NoTraffic {
		sc.Extra["mpps_median"] = sc.Median / 1e6
		sc.Extra["gbps_median"] = sc.Median * float64(size+24) * 8 / 1e9 // with FCS, preamble and gap
	}
	res := PPSResult{Mode: mode, Size: size, Scenario: sc, Runs: ws, Latency: &pktgen.Histogram{}}
	for i := range ws {
		w := &ws[i]
		res.Latency.Merge(&w.Latency)
		res.Sink = addSink(res.Sink, w.Sink)
		res.Softnet = addSoftnet(res.Softnet, w.Softnet)
		res.RxMissed += w.aRx.Drops[engine.DropRingFull]
		res.Interrupts += w.aRx.Interrupts
		res.Received += w.Received
		res.CPUSeconds += w.ProcessCPU.Seconds()
		res.DUTCPUSeconds += w.DUTCPU.Seconds()
	}
	return res, nil
}

// addSink adds b to a: the sums over windows that a result reports.
func addSink(a, b pktgen.SinkStats) pktgen.SinkStats {
	return pktgen.SinkStats{
		Received: a.Received + b.Received, Bytes: a.Bytes + b.Bytes, Malformed: a.Malformed + b.Malformed,
		Unique: a.Unique + b.Unique, Duplicates: a.Duplicates + b.Duplicates, Reordered: a.Reordered + b.Reordered,
		TooLate: a.TooLate + b.TooLate, Lost: a.Lost + b.Lost, Highest: max(a.Highest, b.Highest),
	}
}

func addSoftnet(a, b engine.SoftnetStats) engine.SoftnetStats {
	return engine.SoftnetStats{
		Processed: a.Processed + b.Processed, Dropped: a.Dropped + b.Dropped, TimeSqueeze: a.TimeSqueeze + b.TimeSqueeze,
		Rounds: a.Rounds + b.Rounds, Polls: a.Polls + b.Polls, Completes: a.Completes + b.Completes,
		Wakeups: a.Wakeups + b.Wakeups, Parks: a.Parks + b.Parks, Yields: a.Yields + b.Yields, Scheduled: a.Scheduled + b.Scheduled,
	}
}

// FormatPPS prints the results as a table, then per frame size run in both
// modes the PMD/NAPI comparison: a throughput ratio only where both devices
// were saturated (dut_busy at least BusyThreshold). Idle results print the
// cores burnt instead.
func FormatPPS(w io.Writer, rs []PPSResult) {
	if len(rs) > 0 && rs[0].Scenario.Metric == "cpu_share" {
		formatIdle(w, rs)
		return
	}
	fmt.Fprintf(w, "%-5s %6s %9s %19s %6s %9s %10s %10s %10s %11s %10s\n",
		"mode", "size", "Mpps", "min..max", "busy", "fwd ns/p", "lat p50", "lat p99", "rx_missed", "sink drops", "irq/s")
	for _, r := range rs {
		sc := r.Scenario
		nsp := "-"
		if v, ok := sc.Extra["dut_cpu_ns_per_packet"]; ok {
			nsp = fmt.Sprintf("%.1f", v)
		}
		fmt.Fprintf(w, "%-5s %6d %9.3f %9.3f..%-9.3f %6.2f %9s %10s %10s %10d %11d %10.0f\n",
			r.Mode, r.Size, sc.Median/1e6, sc.Min/1e6, sc.Max/1e6, busy(sc), nsp,
			latency(sc, "lat_p50_us"), latency(sc, "lat_p99_us"), sc.Counters["rx_missed"],
			sc.Counters["sink_rx_missed"]+sc.Counters["sink_rx_nombuf"], sc.Extra["interrupts_per_s"])
	}
	for _, p := range pairModes(rs) {
		pm, na := &p[0].Scenario, &p[1].Scenario
		line := throughputRatio("max rate", p[0].Size, pm, na)
		if a, b := pm.Extra["dut_cpu_ns_per_packet"], na.Extra["dut_cpu_ns_per_packet"]; a > 0 && b > 0 {
			line += fmt.Sprintf("; device CPU per packet %.2fx", a/b)
		}
		fmt.Fprintln(w, line)
	}
	for _, r := range rs {
		offCore(w, &r.Scenario, "dut_cpu_share", "")
	}
}

// formatIdle prints what waiting costs each mode.
func formatIdle(w io.Writer, rs []PPSResult) {
	fmt.Fprintf(w, "%-5s %12s %19s %11s %8s\n", "mode", "cpu (cores)", "min..max", "interrupts", "wakeups")
	for _, r := range rs {
		sc := r.Scenario
		fmt.Fprintf(w, "%-5s %12.4f %9.4f..%-9.4f %11d %8d\n", r.Mode, sc.Median, sc.Min, sc.Max, sc.Counters["interrupts"], sc.Counters["wakeups"])
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

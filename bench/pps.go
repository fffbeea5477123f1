// Package bench runs benchmark scenarios on pollnet's ports and writes their
// results: the runner, the scenarios, and the glue between engine, drivers
// and the result files.
package bench

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/bench/progress"
	"github.com/pollnet/pollnet/bench/result"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
)

// PPSConfig is the packet-rate scenario: generator -> port G ~ port A ->
// forwarder (swap MACs) -> port B ~ port S -> sink, where ~ is a wire pair.
type PPSConfig struct {
	Sizes    []int         // frame sizes in bytes, without FCS (60..9000)
	Queues   int           // queues per port; the generator spreads flows over them
	Duration time.Duration // measured time per size
	Warmup   time.Duration // unmeasured time before it
	RingSize int           // descriptors per receive lane
	ZeroCopy bool          // hand mbufs over instead of copying them
	Rate     float64       // generator packets per second; 0 is as fast as it can
	GenCore  int           // core of the generator and sink worker
	FwdCore  int           // core of the forwarder worker
	Idle     engine.Idle
	Progress io.Writer // progress bars go here; nil for none
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
	if c.Duration < 100*time.Millisecond || c.Duration > time.Hour {
		return flagErr("--duration %v is out of range: use 100ms..1h", c.Duration)
	}
	if c.Warmup < 0 || c.Warmup > time.Minute {
		return flagErr("--warmup %v is out of range: use 0..1m", c.Warmup)
	}
	if c.Rate < 0 || c.Rate != c.Rate {
		return flagErr("--rate %v is out of range: packets per second >= 0 (0 is full speed)", c.Rate)
	}
	for _, core := range []struct {
		flag string
		c    int
	}{{"--gen-core", c.GenCore}, {"--fwd-core", c.FwdCore}} {
		if err := engine.CheckCore(core.c); err != nil {
			return flagErr("%s: %v", core.flag, err)
		}
	}
	return nil
}

// DefaultCores picks the generator and forwarder cores: the first and the last
// core this process may use (both the same on a one-core machine).
func DefaultCores() (gen, fwd int) {
	cores, err := engine.Cores()
	if err != nil || len(cores) == 0 {
		return engine.AnyCore, engine.AnyCore
	}
	return cores[0], cores[len(cores)-1]
}

// ppsRig is one run's topology.
type ppsRig struct {
	cfg        PPSConfig
	size       int
	genPair    *wire.Pair // G (0) ~ A (1)
	sinkPair   *wire.Pair // B (0) ~ S (1)
	genPool    *engine.Pool
	tmpl       *pktgen.Template
	pacer      *pktgen.Pacer
	sink       pktgen.Sink
	seq        uint64
	scratch    []byte // a frame too large for one segment is built here
	txQueue    int
	gen, fwd   *engine.Worker
	genStopped bool
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
	for _, pr := range []*wire.Pair{r.genPair, r.sinkPair} {
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
	Size       int
	Scenario   result.Scenario
	Sink       pktgen.SinkStats
	Latency    *pktgen.Histogram
	FwdStats   engine.PollStats
	RxMissed   uint64
	CPUSeconds float64
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
	var out []PPSResult
	for _, size := range cfg.Sizes {
		res, err := runPPSSize(cfg, size)
		if err != nil {
			return out, fmt.Errorf("pps %d bytes: %w", size, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func runPPSSize(cfg PPSConfig, size int) (PPSResult, error) {
	r, err := newPPSRig(cfg, size)
	if err != nil {
		return PPSResult{}, err
	}
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
	var pollErr [2]error
	start := func(w *engine.Worker, i int, pc engine.PollConfig) error {
		wg.Add(1)
		return w.Start(func(w *engine.Worker) {
			defer wg.Done()
			pollErr[i] = w.Poll(pc)
		})
	}
	if err := start(r.fwd, 0, engine.PollConfig{Rx: queues(a), Handler: forwarder(b), Idle: cfg.Idle}); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	if err := start(r.gen, 1, engine.PollConfig{Rx: queues(s), Handler: r.receive, Tick: r.generate, Idle: cfg.Idle}); err != nil {
		r.fwd.Stop()
		r.closePorts()
		return PPSResult{}, err
	}

	sinkCount := func() uint64 { rx, _ := engine.PortStats(s); return rx.Packets }
	label := fmt.Sprintf("pps %4dB q%d", size, cfg.Queues)
	var bar *progress.Bar
	if cfg.Progress != nil {
		bar = progress.New(cfg.Progress, label, cfg.Warmup+cfg.Duration)
	}
	t0 := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(t0) < cfg.Warmup {
		<-tick.C
		if bar != nil {
			bar.Update(time.Since(t0), "warm-up")
		}
	}
	// Measure in one-second samples (shorter if the run is shorter), each
	// the sink's packet count over the sample's own elapsed time.
	sampleEvery := min(time.Second, cfg.Duration)
	cpu0 := CPUTime()
	mstart := time.Now()
	lastT, lastN := mstart, sinkCount()
	missed0 := rxMissed(a)
	var samples []float64
	for time.Since(mstart) < cfg.Duration {
		<-tick.C
		now := time.Now()
		if now.Sub(lastT) >= sampleEvery || now.Sub(mstart) >= cfg.Duration {
			n := sinkCount()
			pps := float64(n-lastN) / now.Sub(lastT).Seconds()
			samples = append(samples, pps)
			lastT, lastN = now, n
		}
		if bar != nil {
			cur := "…"
			if len(samples) > 0 {
				cur = fmt.Sprintf("%.2f Mpps", samples[len(samples)-1]/1e6)
			}
			bar.Update(now.Sub(t0), cur)
		}
	}
	cpu := CPUTime() - cpu0
	missed := rxMissed(a) - missed0

	// Stop the generator first and let the forwarder drain what is in
	// flight, so the pools can be checked for leaks.
	r.gen.Stop()
	drainUntil := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(drainUntil) && pending(a) > 0 {
		time.Sleep(time.Millisecond)
	}
	r.fwd.Stop()
	wg.Wait()
	fwdStats := r.fwd.Stats()
	if err := errors.Join(pollErr[0], pollErr[1]); err != nil {
		r.closePorts()
		return PPSResult{}, err
	}
	if err := r.closePorts(); err != nil {
		return PPSResult{}, fmt.Errorf("mbuf leak after the run: %w", err)
	}

	res := PPSResult{Size: size, Sink: r.sink.Stats(), Latency: r.sink.Latency(), FwdStats: fwdStats, RxMissed: missed, CPUSeconds: cpu.Seconds()}
	sc := result.Scenario{
		Name: "pps", Path: "pollnet-pmd", Port: "wire",
		Knobs: map[string]any{
			"size": size, "queues": cfg.Queues, "ring": cfg.RingSize, "zero_copy": cfg.ZeroCopy,
			"rate": cfg.Rate, "idle": cfg.Idle.String(), "duration_s": cfg.Duration.Seconds(),
		},
		Metric: "rx_pps", Unit: "packets/s",
		Samples:    samples,
		CPUSeconds: cpu.Seconds(),
		Counters: map[string]uint64{
			"rx_missed":        missed,
			"sink_received":    res.Sink.Received,
			"sink_lost":        res.Sink.Lost,
			"sink_duplicates":  res.Sink.Duplicates,
			"sink_reordered":   res.Sink.Reordered,
			"sink_malformed":   res.Sink.Malformed,
			"fwd_polls":        fwdStats.Polls,
			"fwd_empty_polls":  fwdStats.EmptyPolls,
			"fwd_tx_dropped":   fwdStats.TxDropped,
			"fwd_full_bursts":  fwdStats.BurstHist[engine.Burst],
			"latency_samples":  res.Latency.Count(),
			"generator_frames": r.seq,
		},
	}
	if err := sc.Summarise(); err != nil {
		return PPSResult{}, err
	}
	sc.Extra = map[string]float64{
		"mpps_median":    sc.Median / 1e6,
		"gbps_median":    sc.Median * float64(size+24) * 8 / 1e9, // with FCS, preamble and gap
		"latency_p50_ns": float64(res.Latency.Percentile(50)),
		"latency_p99_ns": float64(res.Latency.Percentile(99)),
		"avg_burst":      avgBurst(fwdStats),
	}
	if res.Sink.Received > 0 {
		sc.Extra["cpu_ns_per_packet"] = cpu.Seconds() * 1e9 / float64(res.Sink.Received)
	}
	res.Scenario = sc
	if bar != nil {
		bar.Done(fmt.Sprintf("%.2f Mpps", sc.Median/1e6))
	}
	return res, nil
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

// FormatPPS prints the results as a table.
func FormatPPS(w io.Writer, rs []PPSResult) {
	fmt.Fprintf(w, "%6s %6s %10s %10s %8s %10s %10s %10s %12s\n", "size", "queues", "Mpps", "p99 Mpps", "Gbit/s", "lat p50", "lat p99", "rx_missed", "ns/pkt (cpu)")
	for _, r := range rs {
		sc := r.Scenario
		fmt.Fprintf(w, "%6d %6v %10.2f %10.2f %8.2f %10v %10v %10d %12.1f\n",
			r.Size, sc.Knobs["queues"], sc.Median/1e6, sc.P99/1e6, sc.Extra["gbps_median"],
			r.Latency.Percentile(50).Round(time.Microsecond/10), r.Latency.Percentile(99).Round(time.Microsecond/10),
			r.RxMissed, sc.Extra["cpu_ns_per_packet"])
	}
}

// CommandLine rebuilds the command for a result file.
func CommandLine(args []string) string { return strings.Join(args, " ") }

package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/pollnet/pollnet/bench/progress"
	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/null"
)

// The pps scenario on a null port measures what forwarding costs pollnet on
// one core, with nothing else on the path: one pinned worker polls a null
// port (pmd/null, like DPDK's net_null), swaps each frame's MACs, and sends
// the burst back out of the same port, which frees it. No generator and no
// sink share the machine, so the rate is the device's own. In the same run
// dpdk-testpmd does the same work on net_null (--forward-mode=macswap, one
// forwarding lcore on the same core, the same frame size and copy mode), and
// the two rates are printed side by side with their ratio.
//
// Repeats are independent runs, interleaved: pollnet, testpmd, pollnet,
// testpmd, ... each with its own warm-up. pollnet's rate in a run is the
// port's receive counter over the measured window; testpmd's comes from its
// RX-packets counter over at least three one-second intervals (see
// compare/testpmd).

// Port kinds the pps scenario runs on (--port).
const (
	PortWire = "wire" // generator ~ wire pair ~ forwarder ~ wire pair ~ sink
	PortNull = "null" // one forwarder on a null port; dpdk-testpmd on net_null beside it
)

// ParsePort reads --port.
func ParsePort(s string) (string, error) {
	switch s {
	case "", PortWire:
		return PortWire, nil
	case PortNull, PortAFPacket, PortAFXDP, PortTAP:
		return s, nil
	case PortDPDK:
		return PortDPDK, dpdkBuilt()
	}
	return "", flagErr("--port %q unknown: use wire, null, afpacket, afxdp, tap or dpdk", s)
}

// NullOptions are the command line's choices for the null-port scenario.
type NullOptions struct {
	Copy    bool // net_null's copy=1: frames copied in on receive and out on transmit
	Core    int  // the forwarding core (--fwd-core), when CoreSet
	CoreSet bool // otherwise DefaultNullCore
}

// DefaultNullCore is the forwarding core when none is given: core 1, as in
// testpmd's usual `-l 0,1` (core 0 keeps the main lcore, the harness and
// the kernel's housekeeping); the last core this process may use when it may
// not use core 1; AnyCore when it may not tell.
func DefaultNullCore() int {
	cores, err := engine.Cores()
	if err != nil || len(cores) == 0 {
		return engine.AnyCore
	}
	if slices.Contains(cores, 1) {
		return 1
	}
	return cores[len(cores)-1]
}

// NullConfig is the pps scenario on a null port.
type NullConfig struct {
	Sizes    []int         // frame sizes without FCS, null.MinSize..null.MaxSize
	Copy     bool          // net_null's copy mode, for both paths
	Duration time.Duration // measured time of one run
	Warmup   time.Duration // unmeasured forwarding before each run's measurement
	Repeat   int           // independent runs per path, interleaved between the paths
	Core     int           // the forwarding core of both paths
	Modes    []Mode        // pmd runs; napi is reported skipped (a null port raises no interrupts)
	Progress io.Writer     // progress bars; nil for none
	Live     func(*Live)   // as PPSConfig.Live
	// Testpmd is the peer; nil runs dpdk-testpmd from PATH with its main
	// lcore on another core than Core.
	Testpmd *testpmd.Peer
	// Port is the port pollnet forwards on: PortNull ("" too), or PortDPDK
	// for a pmd/dpdk port on a net_null vdev (dpdk.go).
	Port string
}

// port is the scenario's port kind.
func (c *NullConfig) port() string {
	if c.Port == "" {
		return PortNull
	}
	return c.Port
}

// Validate refuses values the scenario cannot run with, naming the flag.
func (c *NullConfig) Validate() error {
	if len(c.Sizes) == 0 {
		return flagErr("--size: give at least one frame size (%d..%d bytes)", null.MinSize, null.MaxSize)
	}
	for _, s := range c.Sizes {
		if s < null.MinSize || s > null.MaxSize {
			return flagErr("--size %d is out of range for a null port: frame sizes are %d..%d bytes (without FCS; one mbuf)", s, null.MinSize, null.MaxSize)
		}
	}
	if c.Repeat < 1 || c.Repeat > 1000 {
		return flagErr("--repeat %d is out of range: use 1..1000", c.Repeat)
	}
	if len(c.Modes) == 0 {
		return flagErr("--mode: give pmd, napi or pmd,napi")
	}
	if c.Duration < 100*time.Millisecond || c.Duration > time.Hour {
		return flagErr("--duration %v is out of range: use 100ms..1h", c.Duration)
	}
	if c.Warmup < 0 || c.Warmup > time.Minute {
		return flagErr("--warmup %v is out of range: use 0..1m", c.Warmup)
	}
	if err := engine.CheckCore(c.Core); err != nil {
		return flagErr("--fwd-core: %v", err)
	}
	switch c.port() {
	case PortNull:
	case PortDPDK:
		return dpdkBuilt()
	default:
		return flagErr("--port %q: the null-port scenario runs on null or dpdk", c.Port)
	}
	return nil
}

// NullResult is one frame size's measurement on both paths.
type NullResult struct {
	Size    int
	Copy    bool
	Pollnet result.Scenario  // pollnet-pmd
	Testpmd result.Scenario  // dpdk-testpmd; Skipped when it could not run
	NAPI    *result.Scenario // pollnet-napi, skipped, when asked for
}

// nullRun is one pollnet run's measurement.
type nullRun struct {
	rx, tx, nombuf uint64        // port counters over the measured window
	wall, cpu      time.Duration // the window, and the worker's CPU time in it
	polls, empty   uint64        // the worker's polls and empty polls in it
}

// RunNull runs the scenario once per frame size.
func RunNull(cfg NullConfig) ([]NullResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The worker holds one P for the whole run; another keeps the timer
	// and the progress bar going.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	var out []NullResult
	for _, size := range cfg.Sizes {
		r, err := runNullSize(cfg, size)
		if err != nil {
			return out, fmt.Errorf("pps %s %d bytes copy=%v: %w", cfg.port(), size, cfg.Copy, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runNullSize(cfg NullConfig, size int) (NullResult, error) {
	res := NullResult{Size: size, Copy: cfg.Copy}
	peer, whyNot := cfg.peer()
	f := testpmd.NullForward{Size: size, Copy: cfg.Copy, Mode: testpmd.ModeMacswap, Warmup: cfg.Warmup, Duration: cfg.Duration}

	var runs []nullRun
	var tpRates []float64
	var tp testpmd.NullRate // summed over the launches
	var tpVersion string
	tpCPU := true // every launch read its forwarding lcore's CPU time
	for i := 0; i < cfg.Repeat; i++ {
		if slices.Contains(cfg.Modes, ModePMD) {
			r, err := runNullOnce(cfg, size, i)
			if err != nil {
				return res, err
			}
			runs = append(runs, r)
		}
		if whyNot != "" {
			continue
		}
		r, err := cfg.runTestpmd(peer, f, i)
		if err != nil {
			whyNot = err.Error()
			continue
		}
		tpRates = append(tpRates, r.Rate())
		tp.Packets += r.Packets
		tp.Seconds += r.Seconds
		tp.Intervals += r.Intervals
		tp.RxMissed += r.RxMissed
		tp.CPUSeconds += r.CPUSeconds
		tp.ProcessSeconds += r.ProcessSeconds
		tp.FwdCPUSeconds += r.FwdCPUSeconds
		tpCPU = tpCPU && r.FwdCPUSeconds > 0
		tpVersion = r.Version
	}

	procs := runtime.GOMAXPROCS(0)
	knobs := func() map[string]any {
		return map[string]any{"size": size, "fwd": testpmd.ModeMacswap, "copy": cfg.Copy, "queues": 1,
			"burst": engine.Burst, "duration_s": cfg.Duration.Seconds()}
	}
	base := func(path string) result.Scenario {
		return result.Scenario{Name: "pps", Path: path, Port: cfg.port(), Knobs: knobs(), Metric: "rx_pps", Unit: "packets/s",
			Roles: map[string]int{"dut": cfg.Core}, GOMAXPROCS: procs, WarmupS: cfg.Warmup.Seconds()}
	}

	pn := base("pollnet-pmd")
	if len(runs) == 0 {
		pn.Skipped = "--mode has no pmd"
	} else {
		if cfg.port() == PortDPDK {
			dpdkKnobs(pn.Knobs)
		} else {
			pn.Knobs["pool"] = null.DefaultPoolPerQueue
			pn.Knobs["shared_cache"] = true
		}
		pn.Repeat = len(runs)
		var sum nullRun
		var shares []float64
		for _, r := range runs {
			pn.Samples = append(pn.Samples, float64(r.rx)/r.wall.Seconds())
			shares = append(shares, r.cpu.Seconds()/r.wall.Seconds())
			sum.rx += r.rx
			sum.tx += r.tx
			sum.nombuf += r.nombuf
			sum.cpu += r.cpu
			sum.wall += r.wall
			sum.polls += r.polls
			sum.empty += r.empty
		}
		if err := pn.Summarise(); err != nil {
			return res, err
		}
		pn.CPUSeconds = sum.cpu.Seconds()
		pn.Counters = map[string]uint64{"rx_packets": sum.rx, "tx_packets": sum.tx, "rx_nombuf": sum.nombuf,
			"fwd_polls": sum.polls, "fwd_empty_polls": sum.empty}
		if sum.polls > 0 {
			busy := 1 - float64(sum.empty)/float64(sum.polls)
			pn.DUTBusy = &busy
		}
		share, _ := result.Summarise(shares)
		pn.Extra = map[string]float64{"mpps_median": pn.Median / 1e6, "dut_cpu_share": share.Median,
			"wall_seconds": sum.wall.Seconds()}
		if pn.Median > 0 {
			pn.Extra["ns_per_packet"] = 1e9 / pn.Median
		}
		if sum.rx > 0 {
			// The worker's own CPU time per packet: what a packet costs
			// even when the machine's other work took the core now and
			// then (ns_per_packet counts those gaps too).
			pn.Extra["dut_cpu_ns_per_packet"] = float64(sum.cpu.Nanoseconds()) / float64(sum.rx)
		}
	}
	res.Pollnet = pn

	tps := base(testpmd.Path)
	for k, v := range peer.NullKnobs(f) {
		if _, ours := tps.Knobs[k]; !ours {
			tps.Knobs[k] = v
		}
	}
	switch {
	case whyNot != "":
		tps.Skipped = whyNot
	default:
		tps.Samples = tpRates
		tps.Repeat = len(tpRates)
		if tpVersion != "" {
			tps.Knobs["dpdk"] = tpVersion
		}
		if err := tps.Summarise(); err != nil {
			return res, err
		}
		tps.CPUSeconds = tp.CPUSeconds
		tps.Counters = map[string]uint64{"rx_packets": tp.Packets, "rx_missed": tp.RxMissed, "intervals": uint64(tp.Intervals)}
		tps.Extra = map[string]float64{"mpps_median": tps.Median / 1e6, "measured_seconds": tp.Seconds,
			"process_seconds": tp.ProcessSeconds}
		if tps.Median > 0 {
			tps.Extra["ns_per_packet"] = 1e9 / tps.Median
		}
		if tpCPU && tp.Packets > 0 {
			// The forwarding lcore's CPU time per packet, read as
			// pollnet's worker's is, from the kernel's account of the
			// thread.
			tps.Extra["dut_cpu_ns_per_packet"] = tp.FwdCPUSeconds * 1e9 / float64(tp.Packets)
			tps.Extra["dut_cpu_share"] = tp.FwdCPUSeconds / tp.Seconds
		}
	}
	res.Testpmd = tps

	if slices.Contains(cfg.Modes, ModeNAPI) {
		n := base("pollnet-napi")
		n.Skipped = "a null port raises no receive interrupts (nor does net_null), and NAPI polls only when one schedules it"
		if cfg.port() == PortDPDK {
			n.Skipped = "a DPDK port is polled and raises no receive interrupts (nor does net_null), and NAPI polls only when one schedules it"
		}
		res.NAPI = &n
	}
	return res, nil
}

// peer is the testpmd to run, or why none can: not installed, or no core
// for its main lcore apart from the forwarding one.
func (c *NullConfig) peer() (*testpmd.Peer, string) {
	if c.Testpmd != nil {
		return c.Testpmd, c.Testpmd.Missing()
	}
	p := &testpmd.Peer{}
	if m := p.Missing(); m != "" {
		return p, m
	}
	if c.Core == engine.AnyCore {
		return p, "the forwarding core is unpinned (--fwd-core -1); testpmd's forwarding lcore needs a core"
	}
	cores, err := engine.Cores()
	if err != nil {
		return p, err.Error()
	}
	for _, m := range cores {
		if m != c.Core {
			p.Lcores = fmt.Sprintf("%d,%d", m, c.Core)
			return p, ""
		}
	}
	return p, fmt.Sprintf("testpmd needs a core for its main lcore besides forwarding core %d; this process may use only %s",
		c.Core, engine.FormatCores(cores))
}

// runTestpmd launches testpmd once, with a progress bar.
func (c *NullConfig) runTestpmd(peer *testpmd.Peer, f testpmd.NullForward, i int) (testpmd.NullRate, error) {
	var bar *progress.Bar
	if c.Progress != nil {
		measured := max(f.Duration, testpmd.MinIntervals*testpmd.Interval)
		bar = progress.New(c.Progress, fmt.Sprintf("pps %s dpdk-testpmd %4dB copy=%d run %d/%d", c.port(), f.Size, b2i(f.Copy), i+1, c.Repeat),
			f.Warmup+measured)
		bar.Update(0, "starting")
	}
	limit := 2*time.Minute + 2*(f.Warmup+f.Duration)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	r, err := peer.ForwardNull(ctx, f)
	if bar != nil {
		if err != nil {
			bar.Done("failed")
		} else {
			bar.Done(fmt.Sprintf("%.2f Mpps", r.Rate()/1e6))
		}
	}
	return r, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// macswap swaps each frame's destination and source MAC in place, as
// testpmd's macswap engine does: two loads and two stores per frame. A
// frame shorter than the two addresses is left alone.
func macswap(pkts []engine.Mbuf) {
	for _, m := range pkts {
		d := m.Data()
		if len(d) < 12 {
			continue
		}
		// Bytes 0..5 are the destination, 6..11 the source. Read as a
		// little-endian 64-bit word (bytes 0..7) and a 32-bit one (8..11),
		// the swapped header is: bytes 6..11, then bytes 0..5.
		lo := binary.LittleEndian.Uint64(d[0:8])
		hi := binary.LittleEndian.Uint32(d[8:12])
		binary.LittleEndian.PutUint64(d[0:8], lo>>48|uint64(hi)<<16|lo<<48)
		binary.LittleEndian.PutUint32(d[8:12], uint32(lo>>16))
	}
}

// nullForward is the device under test's handler: swap MACs, send the
// burst back out of the queue it came from, free what the port did not
// take (the null port takes everything).
func nullForward(w *engine.Worker, from engine.QueueRef, pkts []engine.Mbuf) {
	macswap(pkts)
	if n := from.Port.TxBurst(from.Queue, pkts); n < len(pkts) {
		w.Caches.FreeBulk(pkts[n:])
	}
}

// runNullOnce is one pollnet run: a fresh port and worker, a warm-up, the
// measured window, and a check that every mbuf came back.
func runNullOnce(cfg NullConfig, size, i int) (nullRun, error) {
	// One goroutine drives the queue pair, so it shares one mbuf cache, as
	// testpmd's lcore allocates and frees through one mempool cache.
	var p engine.Port
	var err error
	if cfg.port() == PortDPDK {
		p, err = openDPDKNull(size, cfg.Copy)
	} else {
		p, err = null.New(null.Config{Size: size, Copy: cfg.Copy, SharedCache: true})
	}
	if err != nil {
		return nullRun{}, err
	}
	w, err := engine.NewWorker(cfg.Core)
	if err != nil {
		p.Close()
		return nullRun{}, flagErr("--fwd-core: %v", err)
	}
	pollErr := make(chan error, 1)
	labels := pprof.Labels("scenario", "pps", "port", cfg.port(), "path", "pollnet-pmd", "size", fmt.Sprint(size))
	err = w.Start(func(w *engine.Worker) {
		pprof.Do(context.Background(), labels, func(context.Context) {
			pollErr <- w.Poll(engine.PollConfig{Rx: queues(p), Handler: nullForward, Idle: engine.IdleSpin})
		})
	})
	if err != nil {
		p.Close()
		return nullRun{}, err
	}
	if cfg.Live != nil {
		cfg.Live(&Live{Mode: ModePMD, Size: size, Ports: []engine.Port{p}, Workers: []*engine.Worker{w}})
	}
	var bar *progress.Bar
	if cfg.Progress != nil {
		bar = progress.New(cfg.Progress, fmt.Sprintf("pps %s pollnet-pmd   %4dB copy=%d run %d/%d", cfg.port(), size, b2i(cfg.Copy), i+1, cfg.Repeat),
			cfg.Warmup+cfg.Duration)
	}
	sleepBar(bar, 0, cfg.Warmup, func() string { return "warm-up" })
	// The measured window: counters read at both ends, by another
	// goroutine than the worker's, which never stops for it.
	rx0, tx0, st0, cpu0 := p.RxStats(0), p.TxStats(0), w.FreshStats(statsWait), w.CPUTime()
	start := time.Now()
	rate := func() string {
		rx := p.RxStats(0).Packets - rx0.Packets
		return fmt.Sprintf("%.2f Mpps", float64(rx)/time.Since(start).Seconds()/1e6)
	}
	sleepBar(bar, cfg.Warmup, cfg.Duration, rate)
	rx1, tx1, st1, cpu1 := p.RxStats(0), p.TxStats(0), w.FreshStats(statsWait), w.CPUTime()
	wall := time.Since(start)
	stopErr := w.Stop()
	if cfg.Live != nil {
		cfg.Live(nil)
	}
	closeErr := p.Close()
	if err := errors.Join(<-pollErr, stopErr); err != nil {
		return nullRun{}, err
	}
	if closeErr != nil {
		return nullRun{}, fmt.Errorf("mbuf leak after the run: %w", closeErr)
	}
	r := nullRun{
		rx: rx1.Packets - rx0.Packets, tx: tx1.Packets - tx0.Packets,
		nombuf: rx1.Drops[engine.DropNoMbuf] - rx0.Drops[engine.DropNoMbuf],
		wall:   wall, cpu: cpu1 - cpu0, polls: st1.Polls - st0.Polls, empty: st1.EmptyPolls - st0.EmptyPolls,
	}
	if bar != nil {
		bar.Done(fmt.Sprintf("%.2f Mpps", float64(r.rx)/wall.Seconds()/1e6))
	}
	return r, nil
}

// FormatNull prints both paths per frame size, with ns per packet and the
// ratio pollnet/testpmd.
func FormatNull(w io.Writer, rs []NullResult) {
	fmt.Fprintf(w, "%-13s %6s %5s %9s %19s %9s %9s %6s\n", "path", "size", "copy", "Mpps", "min..max", "ns/pkt", "cpu ns/p", "runs")
	row := func(sc result.Scenario, size int, copy bool) {
		if sc.Skipped != "" {
			fmt.Fprintf(w, "%-13s %6d %5v skipped: %s\n", sc.Path, size, copy, sc.Skipped)
			return
		}
		cpu := "-"
		if v, ok := sc.Extra["dut_cpu_ns_per_packet"]; ok {
			cpu = fmt.Sprintf("%.1f", v)
		}
		fmt.Fprintf(w, "%-13s %6d %5v %9.3f %8.3f..%-9.3f %9.1f %9s %6d\n", sc.Path, size, copy, sc.Median/1e6,
			sc.Min/1e6, sc.Max/1e6, sc.Extra["ns_per_packet"], cpu, sc.Repeat)
	}
	for _, r := range rs {
		row(r.Pollnet, r.Size, r.Copy)
		row(r.Testpmd, r.Size, r.Copy)
		if r.NAPI != nil {
			row(*r.NAPI, r.Size, r.Copy)
		}
	}
	for _, r := range rs {
		a, b := r.Pollnet, r.Testpmd
		if a.Skipped != "" || b.Skipped != "" || b.Median <= 0 {
			continue
		}
		line := fmt.Sprintf("pollnet/testpmd at %d B copy=%v, macswap on one core: %.2fx (%.2f vs %.2f Mpps; %.1f vs %.1f ns per packet)",
			r.Size, r.Copy, a.Median/b.Median, a.Median/1e6, b.Median/1e6, a.Extra["ns_per_packet"], b.Extra["ns_per_packet"])
		if x, y := a.Extra["dut_cpu_ns_per_packet"], b.Extra["dut_cpu_ns_per_packet"]; x > 0 && y > 0 {
			line += fmt.Sprintf("; CPU per packet %.1f vs %.1f ns, %.2fx", x, y, x/y)
		}
		fmt.Fprintln(w, line)
	}
}

// nullJobs is the null-port scenario with the suite's presets: 64-byte
// frames with the copy mode asked for in the quick suite, 64 and 1518 bytes
// without and with copy in the full one, the sizes given on the command line
// when run alone.
// testpmdStartup is about how long dpdk-testpmd takes to start on this kind
// of machine (EAL, --no-huge memory, the null port).
const testpmdStartup = 1500 * time.Millisecond

func (o Options) nullJobs(port string, full, single bool) ([]Job, error) {
	c := NullConfig{Sizes: []int{64}, Copy: o.Null.Copy, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat,
		Core: DefaultNullCore(), Modes: o.Modes, Progress: o.Progress, Live: o.Live, Port: port}
	if o.Null.CoreSet {
		c.Core = o.Null.Core
	}
	if single && o.SizesSet {
		c.Sizes = o.Sizes
	}
	cfgs := []NullConfig{c}
	if full {
		c.Sizes = []int{64, 1518}
		c.Copy = false
		on := c
		on.Copy = true
		cfgs = []NullConfig{c, on}
	}
	for i := range cfgs {
		if err := cfgs[i].Validate(); err != nil {
			return nil, err
		}
	}
	var est Estimate
	for _, c := range cfgs {
		n := len(c.Sizes) * c.Repeat
		ours := c.Warmup + c.Duration + runOverhead
		// testpmd: its start-up, a warm-up, then at least MinIntervals
		// one-second intervals.
		theirs := testpmdStartup + c.Warmup + max(c.Duration, testpmd.MinIntervals*testpmd.Interval)
		est = est.add(Estimate{Runs: 2 * n, Time: time.Duration(n) * (ours + theirs), Max: time.Duration(n) * (ours + 2*theirs)})
	}
	return []Job{{Name: "pps-" + port, Estimate: est, run: func() ([]result.Scenario, func(io.Writer), error) {
		var all []NullResult
		for _, c := range cfgs {
			rs, err := RunNull(c)
			all = append(all, rs...)
			if err != nil {
				return nil, nil, err
			}
		}
		var scs []result.Scenario
		for _, r := range all {
			scs = append(scs, r.Pollnet, r.Testpmd)
			if r.NAPI != nil {
				scs = append(scs, *r.NAPI)
			}
		}
		return scs, func(w io.Writer) { FormatNull(w, all) }, nil
	}}}, nil
}

// Package peer runs gVisor's netstack as a comparison peer for pollnet: two
// gVisor stacks joined by an in-memory link inside this one process, driven
// by the same workloads as pollnet's own suites, with results in the JSON
// form of pollnet's result.Scenario. Nothing here touches a real network.
package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names shared with the main module's result files.
const (
	Path = "gvisor"  // the scenario path
	Port = "channel" // the port kind: gVisor's channel link endpoints

	UDPRR     = "udp_rr"
	UDPStream = "udp_stream"
	TCPStream = "tcp_stream"
	TCPCRR    = "tcp_crr"
)

// Bounds on the flags: every load loop stops by itself.
const (
	maxDuration   = 10 * time.Minute
	maxRepeat     = 1000
	maxUDPPayload = 65507
	tcpWriteSize  = 64 << 10
	minMTU        = 576
	maxMTU        = 65535
	maxStreams    = 64
)

// DefaultMTU is the link MTU: pollnet's wire port default, so an
// 8000-byte payload crosses in one packet here as it does there.
const DefaultMTU = 9000

// Config is what to run.
type Config struct {
	Workloads []string
	Sizes     []int // UDP payload bytes
	Duration  time.Duration
	// Repeat is the number of independent runs of each scenario: each
	// builds its own pair of stacks and has its own warm-up, and gives
	// one sample.
	Repeat int
	Warmup time.Duration
	CC     string // TCP congestion control: reno or cubic
	MTU    int    // link MTU
	// Streams are the parallel connections of tcp_stream, one scenario
	// per entry; empty means one.
	Streams []int
}

// streams is cfg.Streams, or one stream when it names none.
func (c Config) streams() []int {
	if len(c.Streams) > 0 {
		return c.Streams
	}
	return []int{1}
}

// ErrUsage marks a bad command line; the message names the flag.
var ErrUsage = errors.New("usage")

// ParseArgs reads the command line. Errors wrap ErrUsage and name the flag.
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("gvisorpeer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workloads := fs.String("workload", UDPStream, "comma list of workloads: udp_rr, udp_stream, tcp_stream, tcp_crr")
	sizes := fs.String("sizes", "16,64,1400,8000", "comma list of UDP payload sizes in bytes (tcp_stream writes 64 KiB and ignores them)")
	duration := fs.Duration("duration", 3*time.Second, "measured time of each run")
	repeat := fs.Int("repeat", 5, "independent runs of each scenario, each with its own stacks and warm-up")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured time at the start of each run")
	cc := fs.String("cc", "cubic", "TCP congestion control of both stacks: reno or cubic")
	mtu := fs.Int("mtu", DefaultMTU, "link MTU in bytes")
	streams := fs.String("streams", "1", "comma list of parallel connection counts for tcp_stream, one scenario each")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	bad := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Duration: *duration, Repeat: *repeat, Warmup: *warmup, CC: *cc, MTU: *mtu}
	for _, w := range strings.Split(*workloads, ",") {
		switch w = strings.TrimSpace(w); w {
		case UDPRR, UDPStream, TCPStream, TCPCRR:
			cfg.Workloads = append(cfg.Workloads, w)
		default:
			return bad("-workload: unknown workload %q (want udp_rr, udp_stream, tcp_stream or tcp_crr)", w)
		}
	}
	for _, s := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxStreams {
			return bad("-streams: %q is not a stream count from 1 to %d", s, maxStreams)
		}
		cfg.Streams = append(cfg.Streams, n)
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxUDPPayload {
			return bad("-sizes: %q is not a UDP payload size from 1 to %d", s, maxUDPPayload)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	switch {
	case cfg.Duration <= 0 || cfg.Duration > maxDuration:
		return bad("-duration: %v must be positive and at most %v", cfg.Duration, maxDuration)
	case cfg.Warmup < 0 || cfg.Warmup > maxDuration:
		return bad("-warmup: %v must be from 0 to %v", cfg.Warmup, maxDuration)
	case cfg.Repeat < 1 || cfg.Repeat > maxRepeat:
		return bad("-repeat: %d must be from 1 to %d", cfg.Repeat, maxRepeat)
	case cfg.CC != "reno" && cfg.CC != "cubic":
		return bad("-cc: %q is not reno or cubic", cfg.CC)
	case cfg.MTU < minMTU || cfg.MTU > maxMTU:
		return bad("-mtu: %d must be from %d to %d", cfg.MTU, minMTU, maxMTU)
	}
	return cfg, nil
}

// RunLimit is the longest one run may take, warm-up and set-up included:
// its hard deadline. Loops stop at the measured time; this only catches a
// stall.
func (c Config) RunLimit() time.Duration {
	return c.Warmup + 3*c.Duration + 5*time.Second
}

// Limit is the longest one scenario (all its runs) may take.
func (c Config) Limit() time.Duration {
	return time.Duration(c.Repeat) * c.RunLimit()
}

// Scenarios is the number of scenarios Run produces.
func (c Config) Scenarios() int {
	n := 0
	for _, w := range c.Workloads {
		switch w {
		case TCPStream:
			n += len(c.streams())
		case TCPCRR:
			n++
		default:
			n += len(c.Sizes)
		}
	}
	return n
}

// Run runs every scenario in turn. A scenario that fails is returned with
// Skipped saying why; the others still run.
func Run(cfg Config) []Scenario {
	var out []Scenario
	for _, w := range cfg.Workloads {
		switch w {
		case UDPRR, UDPStream:
			for _, size := range cfg.Sizes {
				out = append(out, runScenario(cfg, w, size))
			}
		case TCPStream:
			for _, n := range cfg.streams() {
				out = append(out, runScenario(cfg, w, n))
			}
		case TCPCRR:
			out = append(out, runScenario(cfg, w, 0))
		}
	}
	return out
}

// onceFunc is one independent run of a workload: it builds its stacks,
// warms up, measures one window and tears the stacks down. It may add the
// knobs that describe it to knobs. arg is the UDP payload bytes, or
// tcp_stream's number of connections.
type onceFunc func(ctx context.Context, cfg Config, arg int, knobs map[string]any) (window, error)

// runScenario runs cfg.Repeat independent runs of one workload and pools
// them into a scenario, one sample per run. arg is as for onceFunc.
func runScenario(cfg Config, workload string, arg int) Scenario {
	sc := Scenario{
		Name: workload, Path: Path, Port: Port,
		Knobs: map[string]any{
			"link": linkKind, "mtu": cfg.MTU, "link_queue": linkQueue,
			"duration_s": cfg.Duration.Seconds(),
			"api":        "gonet", "cpu_scope": "process: both stacks, link and application goroutines",
		},
		// The applications and the link are goroutines Go schedules on
		// any core.
		Roles:      map[string]int{"client": -1, "server": -1},
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		WarmupS:    cfg.Warmup.Seconds(),
		Repeat:     cfg.Repeat,
		Counters:   map[string]uint64{},
		Extra:      map[string]float64{},
	}
	var once onceFunc
	scale := 1.0
	switch workload {
	case UDPRR:
		sc.Metric, sc.Unit = "transactions_per_s", "transactions/s"
		udpKnobs(sc.Knobs, arg)
		once = udpRROnce
	case UDPStream:
		sc.Metric, sc.Unit = "rx_pps", "datagrams/s"
		udpKnobs(sc.Knobs, arg)
		once = udpStreamOnce
	case TCPStream:
		sc.Metric, sc.Unit = "rx_bps", "bits/s"
		once, scale = tcpStreamOnce, 8 // bytes read, reported as bits
		tcpKnobs(sc.Knobs, cfg.CC)
	case TCPCRR:
		sc.Metric, sc.Unit = "conn_per_s", "connections/s"
		once = tcpCRROnce
		tcpKnobs(sc.Knobs, cfg.CC)
	}
	var rs runs
	for range cfg.Repeat {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.RunLimit())
		w, err := once(ctx, cfg, arg, sc.Knobs)
		cancel()
		if err != nil {
			sc.Skipped = err.Error()
			sc.Counters, sc.Extra = map[string]uint64{}, nil
			return sc
		}
		rs.add(w, scale)
	}
	sc.Samples, sc.CPUSeconds = rs.samples, rs.cpu.Seconds()
	for k, v := range rs.counters {
		sc.Counters[k] = v
	}
	sc.Extra["measured_seconds"] = rs.span.Seconds()
	sc.summarise()
	rs.extras(workload, &sc)
	return sc
}

// window is what one run measured over its measured span, the warm-up
// left out.
type window struct {
	events   uint64            // events counted over the span
	cpu      time.Duration     // the process's CPU time over the span
	span     time.Duration     // the measured span
	counters map[string]uint64 // the run's counters, over the span only
	lat      []time.Duration   // round-trip times, for udp_rr
}

// probe is what measure reads of a run.
type probe struct {
	count     func() uint64            // the events the metric counts
	snap      func() map[string]uint64 // the run's counters, count's among them
	event     string                   // the name of count's counter in snap
	measuring func(bool)               // told when the window opens and closes; may be nil
}

// measure waits out the warm-up, then reads the probe at the start and at
// the end of cfg.Duration: one run's measured window. A workload that has
// moved nothing by the end of the warm-up gets a moment more, within the
// run's deadline.
func measure(ctx context.Context, cfg Config, pr probe) (window, error) {
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("hard deadline %v passed", cfg.RunLimit())
		}
	}
	if err := sleep(cfg.Warmup); err != nil {
		return window{}, err
	}
	for pr.count() == 0 {
		if err := sleep(time.Millisecond); err != nil {
			return window{}, fmt.Errorf("no traffic: %w", err)
		}
	}
	// The metric's events come from the same snapshots as the counters, so
	// that they cover the same window: a goroutine preempted between two
	// separate reads on a busy machine would otherwise count more in one.
	before := pr.snap()
	if pr.measuring != nil {
		pr.measuring(true)
	}
	cpu0, t0 := cpuTime(), time.Now()
	err := sleep(cfg.Duration)
	after := pr.snap()
	cpu1, t1 := cpuTime(), time.Now()
	if pr.measuring != nil {
		pr.measuring(false)
	}
	if err != nil {
		return window{}, err
	}
	w := window{cpu: cpu1 - cpu0, span: t1.Sub(t0), counters: make(map[string]uint64, len(after))}
	for k, v := range after {
		w.counters[k] = v - min(v, before[k])
	}
	ev, ok := w.counters[pr.event]
	if !ok {
		return window{}, fmt.Errorf("probe: no counter %q among the snapshot's", pr.event)
	}
	w.events = ev
	return w, nil
}

// maxLatencies bounds the round-trip times one scenario keeps over all its
// runs (8 MiB of them); the percentiles then cover the first this many.
const maxLatencies = 1 << 20

// runs pools a scenario's runs.
type runs struct {
	samples  []float64
	events   uint64
	cpu      time.Duration
	span     time.Duration
	counters map[string]uint64
	lat      []time.Duration
}

// add pools one run: its sample is its events over its span, times scale.
func (r *runs) add(w window, scale float64) {
	r.samples = append(r.samples, float64(w.events)*scale/w.span.Seconds())
	r.events += w.events
	r.cpu += w.cpu
	r.span += w.span
	if r.counters == nil {
		r.counters = map[string]uint64{}
	}
	for k, v := range w.counters {
		r.counters[k] += v
	}
	if room := maxLatencies - len(r.lat); room > 0 {
		r.lat = append(r.lat, w.lat[:min(room, len(w.lat))]...)
	}
}

// extras are the figures derived from the pooled runs: CPU per event, loss,
// latency percentiles.
func (r *runs) extras(workload string, sc *Scenario) {
	cpuNs := float64(r.cpu.Nanoseconds())
	switch workload {
	case UDPStream:
		sc.Extra["mpps_median"] = sc.Median / 1e6
		if r.events > 0 {
			sc.Extra["cpu_ns_per_packet"] = cpuNs / float64(r.events)
		}
		if s := sc.Counters["sent"]; s > 0 {
			lost := sc.Counters["link_drops"] + sc.Counters["rcvbuf_drops"]
			sc.Extra["loss_ratio"] = float64(lost) / float64(s)
		}
	case UDPRR:
		if r.events > 0 {
			sc.Extra["cpu_ns_per_transaction"] = cpuNs / float64(r.events)
			sc.Extra["cpu_ns_per_packet"] = cpuNs / float64(2*r.events)
		}
		if len(r.lat) > 0 {
			lat := slices.Clone(r.lat)
			slices.Sort(lat)
			f := make([]float64, len(lat))
			for i, l := range lat {
				f[i] = float64(l.Nanoseconds())
			}
			sc.Extra["latency_p50_ns"] = nearestRank(f, 50)
			sc.Extra["latency_p99_ns"] = nearestRank(f, 99)
			sc.Extra["latency_p999_ns"] = nearestRank(f, 99.9)
			sc.Extra["latency_max_ns"] = f[len(f)-1]
			sc.Extra["latency_samples"] = float64(len(f))
		}
	case TCPStream:
		sc.Extra["gbps_median"] = sc.Median / 1e9
		if r.events > 0 { // bytes read
			sc.Extra["cpu_ns_per_byte"] = cpuNs / float64(r.events)
			sc.Extra["cpu_ns_per_kib"] = cpuNs / (float64(r.events) / 1024)
		}
	case TCPCRR:
		if r.events > 0 { // transactions
			sc.Extra["cpu_us_per_conn"] = cpuNs / 1e3 / float64(r.events)
		}
	}
}

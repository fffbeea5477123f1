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
	"strconv"
	"strings"
	"time"
)

// Names shared with the main module's result files.
const (
	Path = "gvisor"  // the scenario path
	Port = "channel" // the port kind: gVisor's channel link endpoints

	UDPPPS    = "udp_pps"
	UDPRR     = "udp_rr"
	TCPStream = "tcp_stream"
)

// Bounds on the flags: every load loop stops by itself.
const (
	maxDuration   = 10 * time.Minute
	maxUDPPayload = 65507
	tcpWriteSize  = 64 << 10
)

// Config is what to run.
type Config struct {
	Workloads []string
	Sizes     []int // UDP payload bytes
	Duration  time.Duration
	Repeat    int // samples the duration is split into
	Warmup    time.Duration
	CC        string // TCP congestion control: reno or cubic
}

// ErrUsage marks a bad command line; the message names the flag.
var ErrUsage = errors.New("usage")

// ParseArgs reads the command line. Errors wrap ErrUsage and name the flag.
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("gvisorpeer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workloads := fs.String("workload", UDPPPS, "comma list of workloads: udp_pps, udp_rr, tcp_stream")
	sizes := fs.String("sizes", "64,1400", "comma list of UDP payload sizes in bytes (tcp_stream writes 64 KiB and ignores them)")
	duration := fs.Duration("duration", 3*time.Second, "measured time of each scenario")
	repeat := fs.Int("repeat", 5, "number of samples the duration is split into")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured time before each scenario's samples")
	cc := fs.String("cc", "cubic", "TCP congestion control of both stacks: reno or cubic")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	bad := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Duration: *duration, Repeat: *repeat, Warmup: *warmup, CC: *cc}
	for _, w := range strings.Split(*workloads, ",") {
		switch w = strings.TrimSpace(w); w {
		case UDPPPS, UDPRR, TCPStream:
			cfg.Workloads = append(cfg.Workloads, w)
		default:
			return bad("-workload: unknown workload %q (want udp_pps, udp_rr or tcp_stream)", w)
		}
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
	case cfg.Repeat < 1 || cfg.Repeat > 10000:
		return bad("-repeat: %d must be from 1 to 10000", cfg.Repeat)
	case cfg.Duration/time.Duration(cfg.Repeat) < time.Millisecond:
		return bad("-repeat: %d samples leave under 1ms each of -duration %v", cfg.Repeat, cfg.Duration)
	case cfg.CC != "reno" && cfg.CC != "cubic":
		return bad("-cc: %q is not reno or cubic", cfg.CC)
	}
	return cfg, nil
}

// Limit is the longest one scenario may take, warm-up and set-up included:
// its hard deadline. Loops stop at the measured time; this only catches a
// stall.
func (c Config) Limit() time.Duration {
	return c.Warmup + 3*c.Duration + 5*time.Second
}

// Scenarios is the number of scenarios Run produces.
func (c Config) Scenarios() int {
	n := 0
	for _, w := range c.Workloads {
		if w == TCPStream {
			n++
		} else {
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
		case UDPPPS, UDPRR:
			for _, size := range cfg.Sizes {
				out = append(out, runOne(cfg, w, size))
			}
		case TCPStream:
			out = append(out, runOne(cfg, w, 0))
		}
	}
	return out
}

func runOne(cfg Config, workload string, payload int) Scenario {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Limit())
	defer cancel()
	sc := Scenario{
		Name: workload, Path: Path, Port: Port,
		Knobs: map[string]any{
			"link": linkKind, "mtu": linkMTU, "link_queue": linkQueue,
			"duration_s": cfg.Duration.Seconds(), "warmup_s": cfg.Warmup.Seconds(),
			"repeat": cfg.Repeat, "gomaxprocs": runtime.GOMAXPROCS(0),
			"api": "gonet", "cpu_scope": "process: both stacks, link and application goroutines",
		},
		Counters: map[string]uint64{},
		Extra:    map[string]float64{},
	}
	var err error
	switch workload {
	case UDPPPS:
		sc.Metric, sc.Unit = "rx_pps", "packets/s"
		err = udpPPS(ctx, cfg, payload, &sc)
	case UDPRR:
		sc.Metric, sc.Unit = "transactions_per_s", "transactions/s"
		err = udpRR(ctx, cfg, payload, &sc)
	case TCPStream:
		sc.Metric, sc.Unit = "tx_bps", "bits/s"
		err = tcpStream(ctx, cfg, &sc)
	}
	if err != nil {
		sc.Samples, sc.Extra, sc.CPUSeconds = nil, nil, 0
		sc.Skipped = err.Error()
		return sc
	}
	sc.summarise()
	return sc
}

// window is what measure saw: the samples, and the events and CPU time over
// the whole measured span.
type window struct {
	samples []float64
	events  uint64
	cpu     time.Duration
	span    time.Duration
}

// measure waits out the warm-up, then takes cfg.Repeat samples of equal
// length of the rate of count (events per second, times scale), and the
// process's CPU time over them. measuring, when not nil, is called with
// true as the measured span starts and false as it ends.
func measure(ctx context.Context, cfg Config, count func() uint64, scale float64, measuring func(bool)) (window, error) {
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("hard deadline %v passed", cfg.Limit())
		}
	}
	if err := sleep(cfg.Warmup); err != nil {
		return window{}, err
	}
	if count() == 0 {
		// Nothing crossed during the warm-up (or no warm-up): give the
		// workload a moment to start, within the deadline.
		for count() == 0 {
			if err := sleep(time.Millisecond); err != nil {
				return window{}, fmt.Errorf("no traffic: %w", err)
			}
		}
	}
	period := cfg.Duration / time.Duration(cfg.Repeat)
	if measuring != nil {
		measuring(true)
	}
	cpu0, c0, t0 := cpuTime(), count(), time.Now()
	prevC, prevT := c0, t0
	var w window
	for range cfg.Repeat {
		if err := sleep(period); err != nil {
			return window{}, err
		}
		c, t := count(), time.Now()
		w.samples = append(w.samples, float64(c-prevC)*scale/t.Sub(prevT).Seconds())
		prevC, prevT = c, t
	}
	w.cpu, w.events, w.span = cpuTime()-cpu0, prevC-c0, prevT.Sub(t0)
	if measuring != nil {
		measuring(false)
	}
	return w, nil
}

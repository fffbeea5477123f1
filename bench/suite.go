package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pollnet/pollnet/compare"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
)

// Options are the command line's choices, shared by every scenario of a
// suite; a field left zero takes the suite's preset.
type Options struct {
	Sizes        []int // frame sizes for pps; payload sizes for udp
	SizesSet     bool  // the user gave sizes (otherwise each scenario has its own)
	Modes        []Mode
	Queues       int
	Duration     time.Duration
	DurationSet  bool
	Warmup       time.Duration
	Repeat       int
	RingSize     int
	ZeroCopy     bool
	Rate         float64
	RateSet      bool
	Idle         engine.Idle
	GenCore      int
	FwdCore      int
	Softirq      engine.SoftirqConfig
	Weight       int
	RxUsecs      int
	RxFrames     int
	Progress     io.Writer
	Live         func(*Live)
	ProfileDir   string    // CPU and heap profiles per scenario, when set
	ProfileNotes io.Writer // where the pprof commands are printed
}

// Job is one scenario of a suite, ready to run.
type Job struct {
	Name string
	run  func() ([]result.Scenario, func(io.Writer), error)
}

// Suites are the named suites: quick is `make bench`'s default (about a
// minute and a half here), full adds sizes, queues, zero-copy, coalescing
// and the peers: the Linux kernel, gVisor and dpdk-testpmd (about eleven
// minutes).
var Suites = []string{"quick", "full"}

// Scenarios are the scenarios that can run on their own.
var Scenarios = []string{"pps", "lowrate", "idle", "coalesce", "udp", "peers"}

// Plan validates the options and lists the jobs of a suite or of a single
// scenario.
func Plan(name string, o Options) ([]Job, error) {
	if o.Repeat == 0 {
		o.Repeat = 5
	}
	if o.Repeat < 1 || o.Repeat > 1000 {
		return nil, flagErr("--repeat %d is out of range: use 1..1000", o.Repeat)
	}
	full := name == "full"
	if full && !o.DurationSet {
		o.Duration = 5 * time.Second
	}
	var names []string
	switch {
	case name == "quick":
		names = []string{"pps", "lowrate", "idle", "udp"}
	case full:
		names = []string{"pps", "lowrate", "idle", "coalesce", "udp", "peers"}
	case slices.Contains(Scenarios, name):
		names = []string{name}
	default:
		return nil, flagErr("unknown suite or scenario %q: the suites are %s; the scenarios %s",
			name, strings.Join(Suites, ", "), strings.Join(Scenarios, ", "))
	}
	single := len(names) == 1
	var jobs []Job
	for _, n := range names {
		js, err := o.jobs(n, full, single)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, nil
}

// ppsConfig is the packet-rate configuration the options describe.
func (o Options) ppsConfig(name string) PPSConfig {
	return PPSConfig{
		Name: name, Sizes: o.Sizes, Queues: o.Queues, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat,
		RingSize: o.RingSize, ZeroCopy: o.ZeroCopy, Rate: o.Rate, GenCore: o.GenCore, FwdCore: o.FwdCore,
		Idle: o.Idle, Modes: o.Modes, Softirq: o.Softirq, Weight: o.Weight, RxUsecs: o.RxUsecs,
		RxFrames: o.RxFrames, Progress: o.Progress, Live: o.Live,
	}
}

func ppsJob(label string, cfgs ...PPSConfig) (Job, error) {
	for i := range cfgs {
		if err := cfgs[i].Validate(); err != nil {
			return Job{}, err
		}
	}
	return Job{Name: label, run: func() ([]result.Scenario, func(io.Writer), error) {
		var all []PPSResult
		for _, c := range cfgs {
			rs, err := RunPPS(c)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, rs...)
		}
		var scs []result.Scenario
		for _, r := range all {
			scs = append(scs, r.Scenario)
		}
		return scs, func(w io.Writer) { FormatPPS(w, all) }, nil
	}}, nil
}

// jobs expands one scenario name into jobs with the suite's presets.
func (o Options) jobs(name string, full, single bool) ([]Job, error) {
	switch name {
	case "pps":
		c := o.ppsConfig("pps")
		if full && !o.SizesSet {
			c.Sizes = []int{60, 64, 128, 256, 512, 1024, 1518, 4096, 9000}
		}
		cfgs := []PPSConfig{c}
		if full {
			zc := c
			zc.ZeroCopy = true
			two := c
			two.Queues = 2
			cfgs = append(cfgs, zc, two)
		}
		j, err := ppsJob("pps", cfgs...)
		return []Job{j}, err
	case "lowrate":
		c := o.ppsConfig("lowrate")
		if !o.RateSet {
			c.Rate = 10000
		}
		if !(single && o.SizesSet) {
			c.Sizes = []int{64}
		}
		cfgs := []PPSConfig{c}
		if full && !o.RateSet {
			hundred := c
			hundred.Rate = 100000
			cfgs = append(cfgs, hundred)
		}
		j, err := ppsJob("lowrate", cfgs...)
		return []Job{j}, err
	case "idle":
		c := o.ppsConfig("idle")
		c.NoTraffic, c.Sizes = true, []int{64}
		j, err := ppsJob("idle", c)
		return []Job{j}, err
	case "coalesce":
		// Interrupt coalescing only changes the NAPI mode: sweep rx-usecs.
		var cfgs []PPSConfig
		for _, us := range []int{0, 50, 200} {
			c := o.ppsConfig("coalesce")
			c.Modes, c.RxUsecs, c.Rate = []Mode{ModeNAPI}, us, 1e6
			if !(single && o.SizesSet) {
				c.Sizes = []int{64}
			}
			cfgs = append(cfgs, c)
		}
		j, err := ppsJob("coalesce", cfgs...)
		return []Job{j}, err
	case "udp":
		u := UDPConfig{Sizes: []int{64, 1400}, Modes: o.Modes, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat,
			ClientCore: o.GenCore, ServerCore: o.FwdCore, Softirq: o.Softirq, Progress: o.Progress, Live: o.Live}
		if full {
			u.Sizes = []int{16, 64, 1400, 8000}
		}
		if single && o.SizesSet {
			u.Sizes = o.Sizes
		}
		if err := u.Validate(); err != nil {
			return nil, err
		}
		return []Job{{Name: "udp", run: func() ([]result.Scenario, func(io.Writer), error) {
			rs, err := RunUDP(u)
			if err != nil {
				return nil, nil, err
			}
			var scs []result.Scenario
			for _, r := range rs {
				scs = append(scs, r.Scenario)
			}
			return scs, func(w io.Writer) { FormatUDP(w, rs) }, nil
		}}}, nil
	case "peers":
		return []Job{o.peersJob()}, nil
	}
	return nil, fmt.Errorf("bench: no scenario %q", name)
}

// peerWorkloads are what the peers run beside pollnet's own scenarios:
// UDP stream and request/response at the full suite's udp payloads, TCP
// stream and connection rate through the kernel and gVisor, and layer-2
// forwarding through testpmd; --repeat independent runs of each.
func (o Options) peerWorkloads() []compare.Workload {
	w := func(name string, sizes ...int) compare.Workload {
		return compare.Workload{Name: name, Sizes: sizes, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat}
	}
	return []compare.Workload{
		w("udp_stream", 16, 64, 1400, 8000),
		w("udp_rr", 16, 64, 1400, 8000),
		w("tcp_stream"),
		w("connect_rate"),
		w("l2_fwd", 64, 1514),
	}
}

func (o Options) peersJob() Job {
	return Job{Name: "peers", run: func() ([]result.Scenario, func(io.Writer), error) {
		var all []result.Scenario
		for _, w := range o.peerWorkloads() {
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "peers: %s\n", w.Name)
			}
			limit := 10*time.Minute + 10*(w.Duration+w.Warmup)
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			scs, err := compare.Run(ctx, compare.Peers(), w)
			cancel()
			all = append(all, scs...)
			if err != nil {
				return nil, nil, err
			}
		}
		return all, func(out io.Writer) { FormatScenarios(out, all) }, nil
	}}
}

// FormatScenarios prints any scenarios as a plain table, skipped ones with
// their reason.
func FormatScenarios(w io.Writer, scs []result.Scenario) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tscenario\tknobs\tmetric\tmedian\tmin..max\tcpu s\t")
	for _, s := range scs {
		knobs := briefKnobs(s.Knobs)
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tskipped: %s\t\t\t\t\n", s.Path, s.Name, knobs, s.Metric, s.Skipped)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.4g %s\t%.4g..%.4g\t%.2f\t\n", s.Path, s.Name, knobs, s.Metric,
			s.Median, s.Unit, s.Min, s.Max, s.CPUSeconds)
	}
	tw.Flush()
}

// Run runs the job, profiling it into dir when dir is set, and prints its
// table to out.
func (j Job) Run(out io.Writer, o Options) ([]result.Scenario, error) {
	var stop func()
	if o.ProfileDir != "" {
		var err error
		if stop, err = startProfile(o.ProfileDir, j.Name, o.ProfileNotes); err != nil {
			return nil, err
		}
	}
	scs, table, err := j.run()
	if stop != nil {
		stop()
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n%s:\n", j.Name)
	table(out)
	return scs, nil
}

// startProfile starts a CPU profile of one scenario; the returned function
// stops it and writes a heap profile beside it.
func startProfile(dir, name string, notes io.Writer) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	cpuPath := filepath.Join(dir, name+".cpu.pprof")
	f, err := os.Create(cpuPath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w (is --cpuprofile also set?)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		heapPath := filepath.Join(dir, name+".heap.pprof")
		if h, err := os.Create(heapPath); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(h)
			h.Close()
		}
		if notes != nil {
			fmt.Fprintf(notes, "profiles of %s: go tool pprof -http=127.0.0.1:0 %s  (heap: %s)\n", name, cpuPath, heapPath)
		}
	}, nil
}

// briefKnobs names the knobs that tell scenarios of one peer apart; the rest
// are in the result file.
func briefKnobs(k map[string]any) string {
	var parts []string
	for _, name := range []string{"topology", "size", "payload", "cc", "tool", "vdev"} {
		if v, ok := k[name]; ok {
			s := fmt.Sprint(v)
			if name == "vdev" {
				s, _, _ = strings.Cut(s, ",")
			}
			parts = append(parts, name+"="+s)
		}
	}
	return strings.Join(parts, " ")
}

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	Sizes       []int // frame sizes for pps; payload sizes for udp
	SizesSet    bool  // the user gave sizes (otherwise each scenario has its own)
	Modes       []Mode
	Queues      int
	Duration    time.Duration
	DurationSet bool
	Warmup      time.Duration
	Repeat      int // independent runs per path (0: DefaultRepeat)
	RingSize    int
	ZeroCopy    bool
	// NoCsumOffload turns off the wire's checksum offload in `bench tcp`
	// and `bench udp` (--csum-offload=false); see TCPConfig.
	NoCsumOffload bool
	Rate          float64
	RateSet       bool
	Idle          engine.Idle
	GenCore       int
	FwdCore       int
	Softirq       engine.SoftirqConfig
	Weight        int
	RxUsecs       int
	RxFrames      int
	Progress      io.Writer
	Live          func(*Live)
	ProfileDir    string    // CPU and heap profiles per scenario, when set
	ProfileNotes  io.Writer // where the pprof commands are printed
	Port          string    // pps: PortWire (default), PortNull (null.go), PortAFPacket or PortAFXDP (pps_veth.go), PortTAP (pps_tap.go), PortDPDK (dpdk.go); udp, tcp: wire, afpacket or afxdp (stackport.go)
	Null          NullOptions
	// NoRxSteer leaves a veth end's receive processing on the core that
	// sent to it (--rx-steer=false); see VethConfig.NoSteer.
	NoRxSteer bool
	// MaxLoss is zero_loss's loss bound, a ratio (--max-loss, in percent),
	// when MaxLossSet; otherwise DefaultMaxLoss. 0 is no loss at all.
	MaxLoss    float64
	MaxLossSet bool
	// tcp: the wire MTUs, tcp_stream's connection counts and the peers run
	// beside pollnet (kernel, iperf3, gvisor; "none"), each with the
	// scenario's defaults when not set.
	MTUs       []int
	MTUsSet    bool
	Streams    []int
	StreamsSet bool
	Peers      string
	PeersSet   bool

	prof      *profiler // set by Plan from ProfileDir
	suiteFull bool      // set by Plan: the full suite's presets apply
}

// Job is one scenario of a suite, ready to run.
type Job struct {
	Name string
	run  func() ([]result.Scenario, func(io.Writer), error)
	// Estimate is how long the job should take, from its count of runs
	// and trials.
	Estimate Estimate
	// windows is whether the job profiles its measured windows itself
	// (one CPU profile per scenario and path); the others are profiled
	// whole.
	windows bool
}

// Estimate is the expected length of a job, counted from its runs and
// trials: every run costs its warm-up and its measured time, and a
// zero-loss search its trials.
type Estimate struct {
	Runs   int           // independent runs, each with a warm-up
	Trials int           // zero-loss trials, at most
	Time   time.Duration // expected, with searches of typicalTrials trials
	Max    time.Duration // with searches that spend every trial
	// Unknown is set when the job's length cannot be counted (the peers
	// depend on what is installed).
	Unknown bool
}

func (e Estimate) add(o Estimate) Estimate {
	return Estimate{Runs: e.Runs + o.Runs, Trials: e.Trials + o.Trials, Time: e.Time + o.Time, Max: e.Max + o.Max,
		Unknown: e.Unknown || o.Unknown}
}

// runOverhead is what building and tearing down one run's ports, pools and
// workers costs, beside its warm-up and measured time.
const runOverhead = 50 * time.Millisecond

// Expect describes a plan's length, counted from its runs and trials, for
// printing before it starts.
func Expect(name string, jobs []Job) string {
	var total Estimate
	var parts []string
	for _, j := range jobs {
		e := j.Estimate
		total = total.add(e)
		switch {
		case e.Unknown:
			parts = append(parts, j.Name+" (not counted)")
		case e.Trials > 0:
			parts = append(parts, fmt.Sprintf("%s %d runs, at most %d trials", j.Name, e.Runs, e.Trials))
		default:
			parts = append(parts, fmt.Sprintf("%s %d runs", j.Name, e.Runs))
		}
	}
	s := fmt.Sprintf("%s: %s; expected about %v (at most %v)", name, strings.Join(parts, ", "),
		total.Time.Round(time.Second), total.Max.Round(time.Second))
	if total.Unknown {
		s += " plus what is not counted"
	}
	return s
}

// Suites are the named suites: quick is `make bench`'s default (about two
// and a half minutes here; Expect counts it), full sweeps sizes, adds
// zero-copy, two queues, light load, coalescing, and the peers: the Linux
// kernel, gVisor and dpdk-testpmd.
var Suites = []string{"quick", "full"}

// Scenarios are the scenarios that can run on their own.
var Scenarios = []string{"pps", "zero_loss", "load", "lowrate", "idle", "coalesce", "udp", "tcp", "tcp_stream", "tcp_crr", "peers"}

// Suite presets.
const (
	// DefaultRepeat is the independent runs per path when --repeat is
	// not given.
	DefaultRepeat = 3
	quickDuration = time.Second
	fullDuration  = 2 * time.Second
)

// Frame sizes of the zero-loss search and the equal-load runs: the quick
// suite at 64 B only, the full suite sweeps.
var (
	quickWireSizes = []int{64}
	fullWireSizes  = []int{64, 512, 1518}
)

// Plan validates the options and lists the jobs of a suite or of a single
// scenario.
func Plan(name string, o Options) ([]Job, error) {
	if o.Repeat == 0 {
		o.Repeat = DefaultRepeat
	}
	if o.Repeat < 1 || o.Repeat > MaxRepeat {
		return nil, flagErr("--repeat %d is out of range: use 1..%d", o.Repeat, MaxRepeat)
	}
	if o.MaxLossSet && !(o.MaxLoss >= 0 && o.MaxLoss < 1) {
		return nil, flagErr("--max-loss %v%% is out of range: use 0 (no loss at all) up to below 100", 100*o.MaxLoss)
	}
	full := name == "full"
	if !o.DurationSet {
		switch name {
		case "quick":
			o.Duration = quickDuration
		case "full":
			o.Duration = fullDuration
		}
	}
	var names []string
	switch {
	case name == "quick":
		names = []string{"zero_loss", "load", "idle", "udp"}
	case full:
		names = []string{"pps", "zero_loss", "load", "lowrate", "idle", "coalesce", "udp", "tcp", "peers"}
	case name == "load":
		names = []string{"zero_loss", "load"} // load needs the zero-loss rates
	case slices.Contains(Scenarios, name):
		names = []string{name}
	default:
		return nil, flagErr("unknown suite or scenario %q: the suites are %s; the scenarios %s",
			name, strings.Join(Suites, ", "), strings.Join(Scenarios, ", "))
	}
	if (name == "quick" || full) && o.Port != PortNull {
		names = slices.Insert(names, 1, "pps-null") // the device's own cost, beside testpmd (null.go)
	}
	names = dpdkSuiteNames(name, o.Port, names)
	o.prof = newProfiler(o.ProfileDir, o.ProfileNotes)
	o.suiteFull = full
	p := &planner{o: o, full: full, single: !full && name != "quick", names: names, shared: &wireShared{}}
	var jobs []Job
	for _, n := range names {
		js, err := p.jobs(n)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, nil
}

// planner holds what the jobs of one plan share.
type planner struct {
	o            Options
	full, single bool
	names        []string
	shared       *wireShared
}

// wireShared carries the zero-loss rates from the zero_loss job to the load
// job that follows it.
type wireShared struct {
	zeroLoss []ZeroLossResult
	done     bool
}

// ppsConfig is the packet-rate configuration the options describe.
func (o Options) ppsConfig(name string) PPSConfig {
	return PPSConfig{
		Name: name, Sizes: o.Sizes, Queues: o.Queues, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat,
		RingSize: o.RingSize, ZeroCopy: o.ZeroCopy, Rate: o.Rate, GenCore: o.GenCore, FwdCore: o.FwdCore,
		Idle: o.Idle, Modes: o.Modes, Softirq: o.Softirq, Weight: o.Weight, RxUsecs: o.RxUsecs,
		RxFrames: o.RxFrames, Progress: o.Progress, Live: o.Live, prof: o.prof,
	}
}

// runTime is one run's expected length.
func runTime(c *PPSConfig) time.Duration { return c.Warmup + c.Duration + runOverhead }

func ppsJob(label string, cfgs ...PPSConfig) (Job, error) {
	var e Estimate
	for i := range cfgs {
		if err := cfgs[i].Validate(); err != nil {
			return Job{}, err
		}
		n := len(cfgs[i].Sizes) * len(cfgs[i].Modes) * cfgs[i].repeat()
		e = e.add(Estimate{Runs: n, Time: time.Duration(n) * runTime(&cfgs[i]), Max: time.Duration(n) * runTime(&cfgs[i])})
	}
	return Job{Name: label, Estimate: e, windows: true, run: func() ([]result.Scenario, func(io.Writer), error) {
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

// wireSizes are the frame sizes of the zero-loss and load scenarios: the
// ones given with --size, or the suite's.
func (p *planner) wireSizes() []int {
	switch {
	case p.o.SizesSet:
		return p.o.Sizes
	case p.full:
		return fullWireSizes
	}
	return quickWireSizes
}

// jobs expands one scenario name into jobs with the suite's presets.
func (p *planner) jobs(name string) ([]Job, error) {
	o, full, single := p.o, p.full, p.single
	switch name {
	case "pps", "pps-null":
		if name == "pps" && o.Port == PortDPDK {
			return o.nullJobs(PortDPDK, full, single)
		}
		if o.Port == PortNull || name == "pps-null" {
			return o.nullJobs(PortNull, full, single)
		}
		if o.Port == PortAFPacket || o.Port == PortAFXDP || o.Port == PortTAP {
			return o.vethJobs(single)
		}
		c := o.ppsConfig("pps")
		if full && !o.SizesSet {
			c.Sizes = []int{60, 64, 128, 256, 512, 1024, 1518, 4096, 9000}
		}
		cfgs := []PPSConfig{c}
		if full {
			// Zero-copy and two queues at a few sizes: small, Ethernet's
			// largest, jumbo.
			zc := c
			zc.ZeroCopy = true
			two := c
			two.Queues = 2
			if !o.SizesSet {
				zc.Sizes, two.Sizes = []int{64, 1518, 9000}, []int{64, 1518, 9000}
			}
			cfgs = append(cfgs, zc, two)
		}
		j, err := ppsJob("pps", cfgs...)
		return []Job{j}, err
	case "zero_loss":
		// Alone, zero_loss runs on the port asked for; in a suite, and
		// before load (which takes its rates), on the wire pair.
		if alone := p.single && !slices.Contains(p.names, "load"); alone {
			switch o.Port {
			case PortAFPacket, PortAFXDP, PortTAP:
				return o.vethZeroLossJobs()
			case PortNull, PortDPDK:
				return nil, flagErr("zero_loss --port %s: the search paces a generator and counts at a sink, which a %s port has not (it makes and frees its frames itself); use wire, afpacket, afxdp or tap", o.Port, o.Port)
			}
		}
		c := ZeroLossConfig{PPSConfig: o.ppsConfig("zero_loss")}
		c.Sizes = p.wireSizes()
		if o.MaxLossSet {
			c.MaxLoss = o.MaxLoss
			if c.MaxLoss == 0 {
				c.MaxLoss = -1 // none at all; 0 would take the default
			}
		}
		c.EmitPPS = !slices.Contains(p.names, "pps")
		c.fill()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		n := len(c.Sizes) * len(c.Modes) * c.repeat()
		search := func(trials int) time.Duration {
			return c.Warmup + runOverhead + c.Trial + time.Duration(trials-1)*(c.Settle+c.Trial)
		}
		e := Estimate{Runs: n, Trials: n * c.MaxTrials, Time: time.Duration(n) * search(min(typicalTrials, c.MaxTrials)),
			Max: time.Duration(n) * search(c.MaxTrials)}
		shared := p.shared
		return []Job{{Name: "zero_loss", Estimate: e, windows: true, run: func() ([]result.Scenario, func(io.Writer), error) {
			rs, err := RunZeroLoss(c)
			if err != nil {
				return nil, nil, err
			}
			shared.zeroLoss, shared.done = rs, true
			var scs []result.Scenario
			for _, r := range rs {
				scs = append(scs, r.Scenario)
			}
			for _, r := range rs {
				if r.PPS != nil {
					scs = append(scs, *r.PPS)
				}
			}
			return scs, func(w io.Writer) { FormatZeroLoss(w, rs) }, nil
		}}}, nil
	case "load":
		c := LoadConfig{PPSConfig: o.ppsConfig("load"), Shares: DefaultLoadShares}
		c.Sizes = p.wireSizes()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		n := len(c.Sizes) * len(c.Shares) * len(c.Modes) * c.repeat()
		e := Estimate{Runs: n, Time: time.Duration(n) * runTime(&c.PPSConfig), Max: time.Duration(n) * runTime(&c.PPSConfig)}
		shared := p.shared
		return []Job{{Name: "load", Estimate: e, windows: true, run: func() ([]result.Scenario, func(io.Writer), error) {
			if !shared.done {
				return nil, nil, fmt.Errorf("load: no zero-loss rates to take the loads from")
			}
			c.Reference = ReferenceRates(shared.zeroLoss)
			rs, err := RunLoad(c)
			if err != nil {
				return nil, nil, err
			}
			var scs []result.Scenario
			for _, r := range rs {
				scs = append(scs, r.Scenario)
			}
			for _, size := range c.Sizes {
				if _, ok := c.Reference[size]; !ok {
					for _, m := range c.Modes {
						sc := c.baseScenario("load", m, size)
						sc.Metric, sc.Unit = "cpu_ns_per_packet", "ns/packet"
						sc.Skipped = "no zero-loss rate at this size in both modes to take the loads from"
						scs = append(scs, sc)
					}
				}
			}
			return scs, func(w io.Writer) { FormatLoad(w, rs) }, nil
		}}}, nil
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
		// quick: 64 B only, to stay within three minutes with
		// independent repeats; full sweeps the payloads.
		port, note := o.stackPort("udp", !single)
		u := UDPConfig{Sizes: []int{64}, Modes: o.Modes, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat,
			Queues: o.Queues, ClientCore: o.GenCore, ServerCore: o.FwdCore, Softirq: o.Softirq, Progress: o.Progress, Live: o.Live,
			NoCsumOffload: o.NoCsumOffload, Port: port}
		if full {
			u.Sizes = []int{16, 64, 1400, 8000}
		}
		if single && o.SizesSet {
			u.Sizes = o.Sizes
		}
		if err := u.Validate(); err != nil {
			return nil, err
		}
		n := udpRunCount(&u)
		t := time.Duration(n) * (u.Warmup + u.Duration + runOverhead)
		return []Job{{Name: "udp", Estimate: Estimate{Runs: n, Time: t, Max: t}, run: func() ([]result.Scenario, func(io.Writer), error) {
			rs, err := RunUDP(u)
			if err != nil {
				return nil, nil, err
			}
			var scs []result.Scenario
			for _, r := range rs {
				scs = append(scs, r.Scenario)
			}
			return scs, withNote(note, func(w io.Writer) { FormatUDP(w, rs) }), nil
		}}}, nil
	case "tcp", "tcp_stream", "tcp_crr":
		return o.tcpJobs(name)
	case "peers":
		return []Job{o.peersJob(slices.Contains(p.names, "tcp"))}, nil
	}
	return nil, fmt.Errorf("bench: no scenario %q", name)
}

// tcpJobs is the TCP scenario: tcp runs tcp_stream and tcp_crr,
// tcp_stream and tcp_crr one of them; at MTU 1500 and 9000, 1 and 4
// streams, the kernel and gVisor beside pollnet (the full suite adds
// iperf3), unless the flags say otherwise.
func (o Options) tcpJobs(name string) ([]Job, error) {
	port, note := o.stackPort(name, o.suiteFull)
	c := TCPConfig{Port: port, Workloads: []string{TCPStream, TCPCRR}, MTUs: DefaultTCPMTUs, Streams: DefaultTCPStreams, Modes: o.Modes,
		Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat, ClientCore: o.GenCore, ServerCore: o.FwdCore,
		Softirq: o.Softirq, Progress: o.Progress, Live: o.Live, prof: o.prof, NoCsumOffload: o.NoCsumOffload}
	if name != "tcp" {
		c.Workloads = []string{name}
	}
	if o.MTUsSet {
		c.MTUs = o.MTUs
	}
	if o.StreamsSet {
		c.Streams = o.Streams
	}
	peers := "kernel,gvisor"
	if name == "tcp" && !o.PeersSet && o.suiteFull {
		peers = "kernel,iperf3,gvisor"
	}
	if o.PeersSet {
		peers = o.Peers
	}
	var err error
	if c.Peers, err = TCPPeers(ParsePeers(peers)); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := c.runs()
	t := time.Duration(n) * (c.Warmup + c.Duration + runOverhead)
	e := Estimate{Runs: n, Time: t, Max: t, Unknown: len(c.Peers) > 0}
	return []Job{{Name: name, Estimate: e, windows: true, run: func() ([]result.Scenario, func(io.Writer), error) {
		scs, err := RunTCP(c)
		if err != nil {
			return nil, nil, err
		}
		return scs, withNote(note, func(w io.Writer) { FormatTCP(w, scs) }), nil
	}}}, nil
}

// udpRunCount counts the UDP scenario's runs: both workloads at every size
// in every mode, Repeat independent runs of each (RunUDP).
func udpRunCount(u *UDPConfig) int { return 2 * len(u.Sizes) * len(u.Modes) * max(1, u.Repeat) }

// peerWorkloads are what the peers run beside pollnet's own scenarios:
// UDP stream and request/response at the full suite's udp payloads, TCP
// stream and connection rate through the kernel and gVisor; --repeat
// independent runs of each. testpmd runs beside pollnet in pps-null, on the
// same work (macswap on net_null); its io forwarding (l2_fwd) is not run,
// since no pollnet path does that work.
// With the tcp job in the same plan, tcp_stream is left to it: it runs the
// kernel, iperf3 and gVisor beside pollnet's TCP.
func (o Options) peerWorkloads(tcpJob bool) []compare.Workload {
	w := func(name string, sizes ...int) compare.Workload {
		return compare.Workload{Name: name, Sizes: sizes, Duration: o.Duration, Warmup: o.Warmup, Repeat: o.Repeat}
	}
	ws := []compare.Workload{
		w("udp_stream", 16, 64, 1400, 8000),
		w("udp_rr", 16, 64, 1400, 8000),
		w("tcp_stream"),
		w("connect_rate"),
	}
	if tcpJob {
		ws = slices.DeleteFunc(ws, func(w compare.Workload) bool { return w.Name == "tcp_stream" })
	}
	return ws
}

func (o Options) peersJob(tcpJob bool) Job {
	return Job{Name: "peers", Estimate: Estimate{Unknown: true}, run: func() ([]result.Scenario, func(io.Writer), error) {
		var all []result.Scenario
		for _, w := range o.peerWorkloads(tcpJob) {
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

// Run runs the job and prints its table to out. With a profile directory,
// a job that profiles its measured windows writes one CPU profile per
// scenario and path (see profiler); any other is profiled whole. Every job
// leaves a heap profile.
func (j Job) Run(out io.Writer, o Options) ([]result.Scenario, error) {
	stop := func() {}
	if o.ProfileDir != "" && !j.windows {
		var err error
		if stop, err = startProfile(o.ProfileDir, j.Name, o.ProfileNotes); err != nil {
			return nil, err
		}
	}
	scs, table, err := j.run()
	stop()
	if o.ProfileDir != "" {
		writeHeapProfile(o.ProfileDir, j.Name, o.ProfileNotes)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n%s:\n", j.Name)
	table(out)
	return scs, nil
}

// startProfile starts a CPU profile of a whole job; the returned function
// stops it.
func startProfile(dir, name string, notes io.Writer) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	cpuPath := filepath.Join(dir, profileName(name)+".cpu.pprof")
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
		if notes != nil {
			fmt.Fprintf(notes, "profile of %s: go tool pprof -http=127.0.0.1:0 %s\n", name, cpuPath)
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

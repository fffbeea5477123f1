// Command pollnet runs pollnet's benchmarks and tools. It only turns flags
// into calls to the bench, engine and serve packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/bench"
	"github.com/pollnet/pollnet/bench/chart"
	"github.com/pollnet/pollnet/bench/runcmp"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/serve"
	"github.com/pollnet/pollnet/stack"
)

const usage = `pollnet: a packet engine that measures kernel bypass against the Linux path

usage:
  pollnet bench [suite|scenario] [flags]   run benchmarks on in-memory ports
    suites:
      quick     (default; make bench) zero_loss, load and idle at 64 B, and udp,
                in both modes, 3 runs each; prints its expected length first
      full      sizes swept, max-rate pps, zero-copy, two queues, light load,
                coalescing, and the peers
    scenarios:
      pps       forward generated frames as fast as they come; Mpps per frame size
                (--port null: one core forwarding on a null port, beside dpdk-testpmd
                on net_null doing the same work; ns per packet and their ratio)
                (--port dpdk: the same forwarder on a pmd/dpdk port on DPDK's net_null,
                beside testpmd; needs go build -tags dpdk ./cmd/pollnet or make build-dpdk)
      zero_loss the fastest rate forwarded without loss (binary search, RFC 2544);
                --max-loss sets the loss a trial may have (default 0.001%)
                (--port afpacket|afxdp|tap: pollnet's forwarder and dpdk-testpmd on a
                veth or TAP, one search each per run, a paced generator; root)
      load      CPU per packet and latency at 10%, 50% and 90% of the lower
                zero-loss rate of the two modes (runs zero_loss first)
      lowrate   the same at a fixed 10 kpps: CPU and latency when load is light
      idle      no traffic: what waiting costs each mode
      coalesce  napi at 1 Mpps with rx-usecs 0, 50, 200
      udp       two stacks over a wire pair: UDP request/response (with round-trip
                times) and one-way stream through sockets (--queues N: N shards
                per stack, a flow on each, per-shard counters in result.json)
      tcp       two stacks over a wire pair: tcp_stream (goodput, --streams, --mtu)
                and tcp_crr (connections/s), beside the kernel over veth and
                gVisor (--peers) in the same rounds
      tcp_stream, tcp_crr   one of the two alone
  pollnet stat [--pid N] [--watch 1s] [--count N]
                                     counters of a running (or the last) bench
  pollnet compare [--alpha 0.05] A B
                                     two result directories side by side: both machines,
                                     each row's ratio B/A with an interval, and the rows
                                     that changed (Mann-Whitney, Benjamini-Hochberg); it
                                     says when there are too few runs to flag anything
  pollnet report [--readme FILE] DIR
                                     redraw a run's charts and index.html, and write a
                                     Markdown page about it (make results uses it)
  pollnet serve [flags] DIR          serve DIR over HTTP (net/http) on our TCP, on a TAP
                                     port: --addr 198.18.0.2/24 (ours), --http-port 8080,
                                     --mode pmd|napi, --netns NS --peer 198.18.0.1/24 (the
                                     kernel's end, moved into the existing namespace NS;
                                     without --netns it stays here), --tap NAME, --port
                                     tap (the default); --port afpacket|afxdp [--veth
                                     NAME]: a veth pair instead, our end an AF_PACKET or
                                     AF_XDP port, removed on exit; --port dpdk: DPDK's
                                     net_tap as the TAP, pmd mode only (needs go build
                                     -tags dpdk ./cmd/pollnet or make build-dpdk); stops
                                     on SIGINT or SIGTERM
  pollnet help                       this text

Run 'pollnet bench -h' for the bench flags.
`

// exitUsage is the status for bad flags or arguments, as flag.ExitOnError uses.
const exitUsage = 2

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "stat":
		return runStat(args[1:], stdout, stderr)
	case "compare":
		return runCompare(args[1:], stdout, stderr)
	case "report":
		return runReport(args[1:], stdout, stderr)
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pollnet: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// intList is a flag of comma-separated integers.
type intList []int

func (l *intList) String() string {
	var s []string
	for _, v := range *l {
		s = append(s, strconv.Itoa(v))
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", f)
		}
		*l = append(*l, n)
	}
	return nil
}

func runBench(args []string, stdout, stderr io.Writer) int {
	name := "quick"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("pollnet bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	genCore, fwdCore := bench.DefaultCores()
	sizes := intList{64, 128, 256, 512, 1024, 1518}
	suite := fs.String("suite", "", "run a suite: quick (the default) or full")
	fs.Var(&sizes, "size", "frame sizes in bytes without FCS, comma-separated (60..9000); for udp, UDP payload sizes (16..65507)")
	modes := fs.String("mode", "pmd,napi", "how the device under test is driven: pmd, napi, or pmd,napi")
	queues := fs.Int("queues", 1, "queues per port (1..16); udp: also shards per stack and flows, every shard unpinned above 1")
	duration := fs.Duration("duration", time.Second, "measured time of each run (full suite: 2s); zero-loss trials are 1s (zero_loss --port afpacket|afxdp|tap: a shorter --duration shortens them)")
	maxLoss := fs.Float64("max-loss", 100*bench.DefaultMaxLoss, "zero_loss: the largest loss a trial may have and pass, in percent of the frames offered (0: none at all, as RFC 2544)")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured time before each run's measurement")
	repeat := fs.Int("repeat", 0, fmt.Sprintf("independent runs per path, interleaved between the paths (default %d); medians and min..max come from them", bench.DefaultRepeat))
	ring := fs.Int("ring", 1024, "receive descriptors per lane (a power of two, 32..65536)")
	csumOffload := fs.Bool("csum-offload", true, "tcp, udp: the wire fills TCP/UDP checksums, as veth does for the kernel")
	zeroCopy := fs.Bool("zero-copy", false, "hand mbufs across the wire instead of copying them into the receiver's pool")
	rate := fs.Float64("rate", 0, "generator rate in packets per second (0: as fast as it can; lowrate: 10000)")
	idle := fs.String("idle", "spin", "what a poll-mode worker does when a poll finds nothing: spin or spin-yield")
	budget := fs.Int("budget", engine.DefaultBudget, "napi: frames per softirq round (netdev_budget)")
	budgetUsecs := fs.Int("budget-usecs", engine.DefaultBudgetUsecs, "napi: microseconds per softirq round (netdev_budget_usecs)")
	weight := fs.Int("weight", engine.DefaultWeight, "napi: frames per poll of one queue")
	rxUsecs := fs.Int("rx-usecs", 0, "napi: interrupt coalescing delay, as ethtool -C rx-usecs")
	rxFrames := fs.Int("rx-frames", 0, "napi: interrupt coalescing frame count, as ethtool -C rx-frames")
	fs.IntVar(&genCore, "gen-core", genCore, "core of the generator and sink (udp: the client stack) (-1: any core, unpinned)")
	rxSteer := fs.Bool("rx-steer", true, "pps --port afpacket|afxdp: run each veth end's kernel receive processing on the core that reads it (RPS), not on the sender's")
	fs.IntVar(&fwdCore, "fwd-core", fwdCore, "core of the device under test (udp: the server stack) (-1: any core, unpinned)")
	out := fs.String("out", "", "directory for result.json and CSV (default results/<date>-<suite>)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	profileDir := fs.String("profile", "", "write CPU and heap profiles of each scenario into this directory")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address while running (e.g. 127.0.0.1:6060)")
	port := fs.String("port", "wire", "pps: wire (generator, wire pairs, forwarder, sink), null (one forwarder on a null port, beside dpdk-testpmd on net_null), dpdk (the same on a pmd/dpdk port on net_null; needs -tags dpdk), afpacket or afxdp (a forwarder on a veth, beside dpdk-testpmd's net_af_packet or net_af_xdp; root), or tap (a forwarder on a TAP, beside dpdk-testpmd's net_tap; root); "+
		"zero_loss: wire, afpacket, afxdp or tap, as pps; "+
		"udp, tcp: wire, or afpacket or afxdp (the two stacks on a veth pair, a port of that kind each; root), no other kind; a suite applies it to the scenarios that take it")
	copyNull := fs.Bool("copy", false, "null and dpdk ports: copy frames in on receive and out on transmit, as net_null's copy=1 (both paths)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	mtus := intList{1500, 9000}
	fs.Var(&mtus, "mtu", "tcp: the wire's and the stacks' MTUs, comma-separated (576..9000; the peers' links get the same)")
	streams := intList{1, 4}
	fs.Var(&streams, "streams", "tcp: parallel connections of tcp_stream, comma-separated (1..64)")
	peers := fs.String("peers", "kernel,gvisor", "tcp: peers run beside pollnet: kernel, iperf3, gvisor, comma-separated, or none")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pollnet bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *suite != "" {
		name = *suite
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	idleMode, err := engine.ParseIdle(*idle)
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: --idle: %v\n", err)
		return exitUsage
	}
	modeList, err := bench.ParseModes(*modes)
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return exitUsage
	}
	portKind, err := bench.ParsePort(*port)
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return exitUsage
	}
	opts := bench.Options{
		Sizes: sizes, SizesSet: set["size"], Modes: modeList, Queues: *queues, Duration: *duration,
		DurationSet: set["duration"], Warmup: *warmup, Repeat: *repeat, RingSize: *ring, ZeroCopy: *zeroCopy,
		NoCsumOffload: !*csumOffload,
		Rate:          *rate, RateSet: set["rate"], Idle: idleMode, GenCore: genCore, FwdCore: fwdCore,
		Softirq: engine.SoftirqConfig{Budget: *budget, BudgetUsecs: *budgetUsecs}, Weight: *weight,
		RxUsecs: *rxUsecs, RxFrames: *rxFrames, ProfileDir: *profileDir, ProfileNotes: stderr,
		MaxLoss: *maxLoss / 100, MaxLossSet: set["max-loss"],
		Port: portKind, NoRxSteer: !*rxSteer, Null: bench.NullOptions{Copy: *copyNull, Core: fwdCore, CoreSet: set["fwd-core"]},
		MTUs: mtus, MTUsSet: set["mtu"], Streams: streams, StreamsSet: set["streams"], Peers: *peers, PeersSet: set["peers"],
	}
	if !*quiet {
		opts.Progress = stderr
	}
	if _, err := bench.Plan(name, opts); err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return exitUsage
	}
	stat, err := bench.StartStatPublisher(fwdCore) // off the device under test's core
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: live counters unavailable: %v\n", err)
	} else {
		defer stat.Close()
		opts.Live = stat.Set
		fmt.Fprintf(stderr, "live counters: pollnet stat --pid %d\n", os.Getpid())
	}
	jobs, _ := bench.Plan(name, opts) // validated above; now with live counters
	fmt.Fprintln(stderr, bench.Expect(name, jobs))
	if *pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				fmt.Fprintf(stderr, "pollnet bench: --pprof: %v\n", err)
			}
		}()
		fmt.Fprintf(stderr, "pprof: go tool pprof http://%s/debug/pprof/profile?seconds=5\n", *pprofAddr)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "pollnet bench: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "pollnet bench: --cpuprofile: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			fmt.Fprintf(stderr, "cpu profile: go tool pprof %s\n", *cpuprofile)
		}()
	}
	started := time.Now().Truncate(time.Second)
	run := result.Run{Suite: name, Started: started, Command: strings.Join(append([]string{"pollnet", "bench"}, args...), " "),
		Machine: result.DetectMachine()}
	if *suite == "" && len(args) >= 0 && name != "quick" {
		run.Command = strings.Join(append([]string{"pollnet", "bench", name}, args...), " ")
	}
	for _, j := range jobs {
		scs, err := j.Run(stdout, opts)
		if err != nil {
			fmt.Fprintf(stderr, "pollnet bench: %s: %v\n", j.Name, err)
			var fe *bench.FlagError
			if errors.As(err, &fe) {
				return exitUsage
			}
			return 1
		}
		run.Scenarios = append(run.Scenarios, scs...)
	}
	// What the engine saw while running: figures from more busy workers
	// than processors are suspect, and the file says so.
	run.Machine.BusyWorkers = engine.PeakBusyWorkers()
	run.Machine.Warnings = engine.Warnings()
	if pm := engine.PacketMemory(); pm.Bytes > 0 {
		run.Machine.PacketMemory = &result.PacketMemory{Pools: pm.Pools, Bytes: pm.Bytes, HugeBytes: pm.HugeBytes}
		fmt.Fprintf(stdout, "\npacket memory: %.0f%% in huge pages (%d pools, %d MiB mapped in all)\n",
			100*float64(pm.HugeBytes)/float64(pm.Bytes), pm.Pools, pm.Bytes>>20)
	}
	if stat != nil && stat.Last() != "" {
		fmt.Fprintf(stdout, "\nlast counters (pollnet stat):\n%s", stat.Last())
	}
	dir := *out
	if dir == "" {
		dir = result.DefaultDir("results", started, name)
	}
	if err := run.Write(dir); err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return 1
	}
	charts, err := chart.Render(&run, dir)
	if err == nil {
		err = chart.WriteIndex(&run, dir, charts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: charts: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "results: %s (result.json, CSV, %d charts, index.html)\n", dir, len(charts))
	return 0
}

func runStat(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pollnet stat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := fs.Int("pid", 0, "the bench process to show (default: a running one, else the last)")
	watch := fs.Duration("watch", 0, "print again at this interval while the bench runs (e.g. 1s)")
	count := fs.Int("count", 0, "with --watch, stop after this many prints (0: until the bench ends)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pollnet stat: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *watch < 0 || (*watch > 0 && *watch < 100*time.Millisecond) {
		fmt.Fprintf(stderr, "pollnet stat: --watch %v: use 100ms or more\n", *watch)
		return exitUsage
	}
	for i := 0; ; i++ {
		files, err := bench.StatFiles()
		if err != nil {
			fmt.Fprintf(stderr, "pollnet stat: %v\n", err)
			return 1
		}
		var f *bench.StatFile
		for k := range files {
			if *pid == 0 || files[k].PID == *pid {
				f = &files[k]
				break
			}
		}
		if f == nil {
			if *pid != 0 {
				fmt.Fprintf(stderr, "pollnet stat: no counters for pid %d in %s\n", *pid, bench.StatDir())
			} else {
				fmt.Fprintf(stderr, "pollnet stat: no bench has run yet: start one with 'pollnet bench'\n")
			}
			return 1
		}
		b, err := os.ReadFile(f.Path)
		if err != nil {
			fmt.Fprintf(stderr, "pollnet stat: %v\n", err)
			return 1
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		stdout.Write(b)
		if *watch == 0 || !f.Running || (*count > 0 && i+1 >= *count) {
			return 0
		}
		time.Sleep(*watch)
	}
}

func runCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pollnet compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alpha := fs.Float64("alpha", runcmp.DefaultAlpha, "false discovery rate across rows (Benjamini-Hochberg), and 1-alpha the level of each ratio's interval (0 < alpha < 1)")
	resamples := fs.Int("resamples", runcmp.DefaultResamples, "bootstrap resamples behind each ratio's interval")
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(dirs) != 2 {
		fmt.Fprintf(stderr, "pollnet compare: give two result directories (or result.json files): pollnet compare [--alpha 0.05] A B\n")
		return exitUsage
	}
	if *alpha <= 0 || *alpha >= 1 {
		fmt.Fprintf(stderr, "pollnet compare: --alpha %v out of range: use a value between 0 and 1, e.g. 0.05\n", *alpha)
		return exitUsage
	}
	if *resamples < 100 {
		fmt.Fprintf(stderr, "pollnet compare: --resamples %d: use 100 or more (the default is %d)\n", *resamples, runcmp.DefaultResamples)
		return exitUsage
	}
	a, err := result.Read(dirs[0])
	if err != nil {
		fmt.Fprintf(stderr, "pollnet compare: %v\n", err)
		return exitUsage
	}
	b, err := result.Read(dirs[1])
	if err != nil {
		fmt.Fprintf(stderr, "pollnet compare: %v\n", err)
		return exitUsage
	}
	rep := runcmp.Compare(a, b, runcmp.Options{Alpha: *alpha, Resamples: *resamples})
	runcmp.Format(stdout, dirs[0], dirs[1], rep)
	return 0
}

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pollnet report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readme := fs.String("readme", "", "write a Markdown page about the run to this file (links are relative to it)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "pollnet report: give one result directory: pollnet report [--readme FILE] DIR\n")
		return exitUsage
	}
	dir := fs.Arg(0)
	run, err := result.Read(dir)
	if err != nil {
		fmt.Fprintf(stderr, "pollnet report: %v\n", err)
		return exitUsage
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	charts, err := chart.Render(run, dir)
	if err == nil {
		err = chart.WriteIndex(run, dir, charts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pollnet report: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d charts, index.html\n", dir, len(charts))
	if *readme == "" {
		return 0
	}
	rel, err := filepath.Rel(filepath.Dir(*readme), dir)
	if err != nil {
		rel = dir
	}
	var b strings.Builder
	if err := chart.WriteMarkdown(&b, run, filepath.ToSlash(rel), charts); err != nil {
		fmt.Fprintf(stderr, "pollnet report: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*readme, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(stderr, "pollnet report: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", *readme)
	return 0
}

// parseInterleaved parses fs from args, where flags may come before, between
// or after the positional arguments, and returns those in order (flag.Parse
// alone stops at the first).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pollnet serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", serve.DefaultAddr, "our IPv4 address and prefix on the TAP port")
	peer := fs.String("peer", serve.DefaultPeer, "the kernel end's IPv4 address and prefix")
	port := fs.Int("http-port", serve.DefaultPort, "the HTTP port (1..65535)")
	mode := fs.String("mode", string(serve.DefaultMode), "how our stack is driven: pmd or napi (--port dpdk: pmd only, and the default)")
	ns := fs.String("netns", "", "move the kernel's end (of the TAP or the veth pair) into this existing namespace (default: keep it here)")
	tapName := fs.String("tap", serve.DefaultTAP, "--port tap or dpdk: the TAP interface's name (%d: the lowest free number)")
	portKind := fs.String("port", serve.PortTAP, "the link to the kernel: "+serve.PortKinds)
	veth := fs.String("veth", "", "--port afpacket or afxdp: our veth end's name; the kernel's end adds a 'k' (default pnsv<pid>)")
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(dirs) != 1 {
		fmt.Fprintf(stderr, "pollnet serve: give one directory to serve: pollnet serve [flags] DIR\n")
		return exitUsage
	}
	cfg := serve.Config{Dir: dirs[0], HTTPPort: *port, Mode: stack.Mode(*mode), NetNS: *ns, TAP: *tapName,
		Port: *portKind, Veth: *veth}
	if cfg.Port == serve.PortDPDK && !flagSet(fs, "mode") {
		cfg.Mode = stack.ModePMD // a DPDK port has no NAPI mode
	}
	if cfg.Addr, err = netip.ParsePrefix(*addr); err != nil {
		fmt.Fprintf(stderr, "pollnet serve: --addr %q: give an IPv4 address with its prefix length, e.g. %s\n", *addr, serve.DefaultAddr)
		return exitUsage
	}
	if cfg.Peer, err = netip.ParsePrefix(*peer); err != nil {
		fmt.Fprintf(stderr, "pollnet serve: --peer %q: give an IPv4 address with its prefix length, e.g. %s\n", *peer, serve.DefaultPeer)
		return exitUsage
	}
	if err := cfg.Check(); err != nil {
		fmt.Fprintf(stderr, "pollnet serve: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve.Run(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "pollnet serve: %v\n", err)
		return 1
	}
	return 0
}

// flagSet reports whether the command line gave the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

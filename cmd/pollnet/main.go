// Command pollnet runs pollnet's benchmarks and tools. It only turns flags
// into calls to the bench and engine packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/pollnet/pollnet/bench"
	"github.com/pollnet/pollnet/bench/result"
	"github.com/pollnet/pollnet/engine"
)

const usage = `pollnet: a packet engine that measures kernel bypass against the Linux path

usage:
  pollnet bench [pps] [flags]   forward generated frames over in-memory ports and report Mpps
  pollnet help                  this text

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
	scenario := "pps"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		scenario, args = args[0], args[1:]
	}
	if scenario != "pps" {
		fmt.Fprintf(stderr, "pollnet bench: unknown scenario %q: the scenarios are: pps\n", scenario)
		return exitUsage
	}
	fs := flag.NewFlagSet("pollnet bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	genCore, fwdCore := bench.DefaultCores()
	sizes := intList{64, 128, 256, 512, 1024, 1518}
	fs.Var(&sizes, "size", "frame sizes in bytes without FCS, comma-separated (60..9000)")
	queues := fs.Int("queues", 1, "queues per port (1..16)")
	duration := fs.Duration("duration", 3*time.Second, "measured time per frame size")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured time before each measurement")
	ring := fs.Int("ring", 1024, "receive descriptors per lane (a power of two, 32..65536)")
	zeroCopy := fs.Bool("zero-copy", false, "hand mbufs across the wire instead of copying them into the receiver's pool")
	rate := fs.Float64("rate", 0, "generator rate in packets per second (0: as fast as it can)")
	idle := fs.String("idle", "spin", "what a worker does when a poll finds nothing: spin or spin-yield")
	fs.IntVar(&genCore, "gen-core", genCore, "core of the generator and sink worker (-1: any core, unpinned)")
	fs.IntVar(&fwdCore, "fwd-core", fwdCore, "core of the forwarder worker (-1: any core, unpinned)")
	out := fs.String("out", "", "directory for result.json and CSV (default results/<date>-pps)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address while running (e.g. 127.0.0.1:6060)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pollnet bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	idleMode, err := engine.ParseIdle(*idle)
	if err != nil {
		fmt.Fprintf(stderr, "pollnet bench: --idle: %v\n", err)
		return exitUsage
	}
	cfg := bench.PPSConfig{
		Sizes: sizes, Queues: *queues, Duration: *duration, Warmup: *warmup, RingSize: *ring,
		ZeroCopy: *zeroCopy, Rate: *rate, GenCore: genCore, FwdCore: fwdCore, Idle: idleMode,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return exitUsage
	}
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
	results, err := bench.RunPPS(cfg)
	if err != nil {
		var fe *bench.FlagError
		if errors.As(err, &fe) {
			fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return 1
	}
	bench.FormatPPS(stdout, results)
	run := result.Run{
		Suite: scenario, Started: started, Command: bench.CommandLine(append([]string{"pollnet", "bench"}, os.Args[2:]...)),
		Machine: result.DetectMachine(),
	}
	for _, r := range results {
		run.Scenarios = append(run.Scenarios, r.Scenario)
	}
	dir := *out
	if dir == "" {
		dir = result.DefaultDir("results", started, scenario)
	}
	if err := run.Write(dir); err != nil {
		fmt.Fprintf(stderr, "pollnet bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "results: %s\n", dir)
	return 0
}

package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/compare/kernel"
	"github.com/pollnet/pollnet/internal/result"
)

// GVisor is gVisor's netstack as a peer. It lives in the nested module
// compare/gvisor so that the main module never depends on gVisor; this peer
// builds that module's program (`go build` in the module's directory, into a
// temporary directory), runs the binary and reads the scenarios it prints.
// The binary is run directly, not under `go run`, so the one process this
// peer starts is the one it kills when the time is up, and it dies with
// this process.
type GVisor struct {
	// Dir is the nested module's directory; empty means look for
	// compare/gvisor upwards from the working directory.
	Dir string
}

// Name is the result path of the peer's scenarios.
func (g *GVisor) Name() string { return "gvisor" }

// Workloads lists what the gVisor program measures.
func (g *GVisor) Workloads() []string {
	return []string{"udp_rr", "udp_stream", "tcp_stream", "tcp_crr"}
}

// moduleDir finds the nested module.
func (g *GVisor) moduleDir() (string, error) {
	if g.Dir != "" {
		return g.Dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "compare", "gvisor")
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("compare/gvisor not found above the working directory: run from the pollnet source tree")
		}
	}
}

// Run measures one workload through the nested module's program. A machine
// where it cannot build or run gets skipped scenarios carrying the reason.
func (g *GVisor) Run(ctx context.Context, w Workload) ([]result.Scenario, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	if !slices.Contains(g.Workloads(), w.Name) {
		return nil, fmt.Errorf("%w: gvisor has no %q", ErrUnknownWorkload, w.Name)
	}
	// A skipped tcp_stream still has a scenario per stream count.
	streams := []int{0}
	if w.Name == "tcp_stream" {
		streams = w.StreamsOr()
	}
	skip := func(reason string) []result.Scenario {
		var out []result.Scenario
		for _, n := range streams {
			knobs := map[string]any{"mtu": w.MTUOr()}
			if n > 0 {
				knobs["streams"] = n
			}
			out = append(out, result.Scenario{Name: w.Name, Path: g.Name(), Port: "channel", Knobs: knobs,
				Roles: map[string]int{"client": -1, "server": -1}, GOMAXPROCS: runtime.GOMAXPROCS(0),
				WarmupS: w.Warmup.Seconds(), Repeat: w.Runs(), Skipped: reason})
		}
		return out
	}
	dir, err := g.moduleDir()
	if err != nil {
		return skip(err.Error()), nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return skip("no go command on PATH: the gVisor peer builds from source"), nil
	}
	tmp, err := os.MkdirTemp("", "pollnet-gvisorpeer-")
	if err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "gvisorpeer")
	// Building gVisor the first time takes a while; later builds come
	// from the build cache.
	bctx, bcancel := context.WithTimeout(ctx, gvisorBuildLimit)
	build := exec.CommandContext(bctx, goBin, "build", "-o", bin, "./cmd/gvisorpeer")
	build.Dir = dir
	out, err := build.CombinedOutput()
	bcancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return skip(fmt.Sprintf("gvisor peer did not build (%v): %s", err, brief(string(out)))), nil
	}

	sizes := w.SizesOr(gvisorPayloads...)
	args := []string{"-workload", w.Name, "-duration", w.Duration.String(), "-warmup", w.Warmup.String(),
		"-repeat", strconv.Itoa(w.Runs()), "-mtu", strconv.Itoa(w.MTUOr()), "-cc", gvisorCC,
		"-sizes", joinInts(sizes), "-streams", joinInts(w.StreamsOr())}
	// Each run may take warm-up + 3 × duration + 5 s before the program
	// gives up on it; allow that for every run of every scenario.
	var scenarios int
	switch w.Name {
	case "tcp_stream":
		scenarios = len(streams)
	case "tcp_crr":
		scenarios = 1
	default:
		scenarios = len(sizes)
	}
	limit := time.Duration(scenarios*w.Runs())*(w.Warmup+3*w.Duration+5*time.Second) + 15*time.Second
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return skip(fmt.Sprintf("gvisor peer failed (%v): %s", err, brief(stderr.String()))), nil
	}
	var scs []result.Scenario
	if err := json.Unmarshal(out, &scs); err != nil {
		return skip(fmt.Sprintf("gvisor peer printed no scenarios: %v", err)), nil
	}
	version := gvisorVersion(dir)
	for i := range scs {
		if scs[i].Knobs == nil {
			scs[i].Knobs = map[string]any{}
		}
		scs[i].Knobs["gvisor"] = version
	}
	return scs, nil
}

// Settings of the gVisor peer's runs.
const (
	gvisorBuildLimit = 3 * time.Minute
	gvisorCC         = kernel.DefaultCC // the same congestion control as the kernel's
)

// gvisorPayloads are the UDP payloads every path runs (the kernel peer's
// defaults).
var gvisorPayloads = kernel.DefaultUDPPayloads

// brief trims a program's error output to what fits in a Skipped reason.
func brief(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// gvisorVersion is the gVisor version the nested module pins, from its go.mod.
func gvisorVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "gvisor.dev/gvisor"); i >= 0 && i+1 < len(f) {
			return f[i+1]
		}
	}
	return "unknown"
}

package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pollnet/pollnet/internal/result"
)

// GVisor is gVisor's netstack as a peer. It lives in the nested module
// compare/gvisor so that the main module never depends on gVisor; this peer
// runs that module's program with `go run` and reads the scenarios it prints.
type GVisor struct {
	// Dir is the nested module's directory; empty means look for
	// compare/gvisor upwards from the working directory.
	Dir string
}

// Name is the result path of the peer's scenarios.
func (g *GVisor) Name() string { return "gvisor" }

// Workloads lists what the gVisor program measures.
func (g *GVisor) Workloads() []string { return []string{"udp_pps", "udp_rr", "tcp_stream"} }

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
	skip := func(reason string) []result.Scenario {
		return []result.Scenario{{Name: w.Name, Path: g.Name(), Port: "channel", Knobs: map[string]any{}, Skipped: reason}}
	}
	dir, err := g.moduleDir()
	if err != nil {
		return skip(err.Error()), nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return skip("no go command on PATH: the gVisor peer builds from source"), nil
	}
	samples := 5
	if w.Duration < time.Second {
		samples = 1
	}
	args := []string{"run", "./cmd/gvisorpeer", "-workload", w.Name,
		"-duration", w.Duration.String(), "-warmup", w.Warmup.String(), "-repeat", strconv.Itoa(samples)}
	if len(w.Sizes) > 0 {
		var s []string
		for _, n := range w.Sizes {
			s = append(s, strconv.Itoa(n))
		}
		args = append(args, "-sizes", strings.Join(s, ","))
	}
	// Building gVisor the first time takes a while: allow for it on top
	// of the runs themselves.
	limit := 3*time.Minute + time.Duration(max(1, len(w.Sizes)))*(3*w.Duration+w.Warmup+10*time.Second)
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(cctx, goBin, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return skip(fmt.Sprintf("gvisor peer failed (%v): %s", err, msg)), nil
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

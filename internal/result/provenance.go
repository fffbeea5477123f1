package result

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The roles a scenario's Roles map names: the core each part of the rig ran
// on. Charts and `pollnet compare` key on these names.
const (
	RoleDUT       = "dut"       // the device under test: the forwarder, or the stack measured
	RoleGenerator = "generator" // what offers the load
	RoleSink      = "sink"      // what receives the forwarded frames
	RoleClient    = "client"    // the requesting side of a socket benchmark
	RoleServer    = "server"    // the answering side of a socket benchmark
)

// Unpinned is the core recorded for a role that ran on no particular core.
const Unpinned = -1

var knownRoles = []string{RoleDUT, RoleGenerator, RoleSink, RoleClient, RoleServer}

// Stamp records how a scenario was measured: the core of each role (Unpinned
// for a role on no particular core), the warm-up before each run, and the
// number of independent runs its samples come from. GOMAXPROCS is read from
// the runtime now, so a producer calls Stamp while the scenario's setting is
// still in force, right after measuring. roles is copied; the caller may
// reuse its map.
func (s *Scenario) Stamp(roles map[string]int, warmup time.Duration, repeat int) {
	s.Roles = maps.Clone(roles)
	s.GOMAXPROCS = runtime.GOMAXPROCS(0)
	s.WarmupS = warmup.Seconds()
	s.Repeat = repeat
}

// missingProvenance names what a scenario that ran does not record: roles,
// gomaxprocs, repeat, or a role under a name outside the known ones. A
// skipped scenario measured nothing and needs none. WarmupS is not checked:
// zero is a real warm-up.
func (s *Scenario) missingProvenance() []string {
	if s.Skipped != "" {
		return nil
	}
	var miss []string
	if len(s.Roles) == 0 {
		miss = append(miss, "roles")
	}
	if s.GOMAXPROCS <= 0 {
		miss = append(miss, "gomaxprocs")
	}
	if s.Repeat <= 0 {
		miss = append(miss, "repeat")
	}
	for _, r := range slices.Sorted(maps.Keys(s.Roles)) {
		if !slices.Contains(knownRoles, r) {
			miss = append(miss, fmt.Sprintf("a known name for role %q (use %s)", r, strings.Join(knownRoles, ", ")))
		}
	}
	return miss
}

// ProvenanceWarnings lists, one line per scenario name, path and port, the
// scenarios that ran without recording the cores of their roles, the
// GOMAXPROCS in force or the number of runs (DESIGN.md, "Provenance"). Write
// adds these lines to Machine.Warnings rather than failing, so a producer
// that predates Stamp still gets its results written, marked as such.
func (r *Run) ProvenanceWarnings() []string {
	type group struct {
		key  string
		n    int
		miss []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		miss := s.missingProvenance()
		if len(miss) == 0 {
			continue
		}
		key := s.Name + " " + s.Path + " on " + s.Port
		g := byKey[key]
		if g == nil {
			g = &group{key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.n++
		for _, m := range miss {
			if !slices.Contains(g.miss, m) {
				g.miss = append(g.miss, m)
			}
		}
	}
	var out []string
	for _, g := range groups {
		what := "scenario"
		if g.n > 1 {
			what = fmt.Sprintf("%d scenarios", g.n)
		}
		out = append(out, fmt.Sprintf("provenance: %s (%s) ran without recording %s",
			g.key, what, strings.Join(g.miss, ", ")))
	}
	return out
}

// addWarnings appends the lines of ws that Machine.Warnings does not hold yet,
// so that writing a run twice does not repeat them.
func (m *Machine) addWarnings(ws []string) {
	for _, w := range ws {
		if !slices.Contains(m.Warnings, w) {
			m.Warnings = append(m.Warnings, w)
		}
	}
}

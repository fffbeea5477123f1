// Package pollnet_test checks the module's layout: the dependency rules of
// DESIGN.md ("Layout and dependency rules", "The stack's shape") over the
// import graph that go list reports. Tests may import what they like (a
// stack test drives a wire port); the rules are about the built packages.
package pollnet_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pollnet/pollnet/"

// stackLayer ranks the stack's packages in the order a reader follows the
// receive path: a package imports only lower layers, or its own layer's
// siblings. Layer 0 holds the shared leaves (socket glue, siphash, timers),
// which import nothing of the stack.
func stackLayer(p string) int {
	under := func(dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	switch {
	case p == "stack":
		return 5 // the shards and the socket API on top
	case under("stack/transport"):
		return 4
	case under("stack/network"):
		return 3
	case under("stack/link"):
		return 2
	case under("stack/header"):
		return 1 // wire formats
	default:
		return 0
	}
}

// violation says why from may not import to, or "" if it may. Both are
// paths inside the module.
func violation(from, to string) string {
	top := func(p string) string { t, _, _ := strings.Cut(p, "/"); return t }
	switch f, t := top(from), top(to); {
	case t == "cmd":
		return "nothing imports cmd"
	case f == "engine" && t != "engine" && t != "internal":
		return "engine imports neither pmd nor stack (nor what sits above them)"
	case f == "pmd" && t != "engine":
		return "pmd/* import only engine"
	case f == "internal" && t != "engine" && t != "internal":
		return "internal helpers sit beside engine, below pmd and stack"
	case f == "stack" && (t == "pmd" || t == "bench" || t == "compare"):
		return "stack imports engine, never pmd (nor bench or compare)"
	case f == "stack" && t == "stack":
		lf, lt := stackLayer(from), stackLayer(to)
		if lt < lf || lt == lf && lf != 0 && lf != 5 {
			return ""
		}
		if lf == 0 {
			return "stack/" + strings.TrimPrefix(from, "stack/") + " is a shared leaf: it imports nothing of the stack"
		}
		return "the stack's layers import downwards only: header < link < network < transport < stack"
	}
	return ""
}

func TestTheDependencyRulesOfTheDesignHold(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list the packages with")
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from, ok := strings.CutPrefix(fields[0], module)
		if !ok {
			continue // the module root
		}
		seen[from] = true
		for _, imp := range fields[1:] {
			to, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if why := violation(from, to); why != "" {
				t.Errorf("%s imports %s: %s", from, to, why)
			}
		}
	}
	for _, p := range []string{"engine", "pmd/wire", "stack", "stack/socket", "bench", "cmd/pollnet"} {
		if !seen[p] {
			t.Fatalf("go list did not report %s: the check ran over the wrong tree", p)
		}
	}
}

// The rules themselves, on made-up imports.
func TestTheDependencyRulesRejectWhatTheDesignForbids(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"engine", "engine/ring", true},
		{"engine", "stack", false},
		{"engine", "pmd/wire", false},
		{"pmd/wire", "engine/ring", true},
		{"pmd/wire", "stack/link", false},
		{"pmd/tap", "internal/netns", false},
		{"stack", "pmd/wire", false},
		{"stack", "stack/transport/udp", true},
		{"stack/transport/udp", "stack/socket", true},
		{"stack/transport/udp", "stack/transport/ephemeral", true},
		{"stack/transport/udp", "stack", false},
		{"stack/network/neigh", "stack/link", true},
		{"stack/network/neigh", "stack/network/route", true},
		{"stack/network/icmp", "stack/transport/udp", false},
		{"stack/link", "stack/network/route", false},
		{"stack/header/icmp", "stack/header/ipv4", true},
		{"stack/header/ipv4", "stack/network/route", false},
		{"stack/socket", "stack/header/ipv4", false},
		{"stack/socket", "internal/futex", true},
		{"bench", "pmd/null", true},
		{"bench", "cmd/pollnet", false},
	} {
		if ok := violation(c.from, c.to) == ""; ok != c.ok {
			t.Errorf("%s -> %s: allowed %v, want %v", c.from, c.to, ok, c.ok)
		}
	}
}

package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/pollnet/pollnet"

// rule returns why package pkg may not import imp, or "" if it may; test
// says the import is made by a test file. Both are full import paths. It
// states DESIGN.md's rules:
//
//   - engine/... imports neither pmd/... nor stack/... nor bench, compare,
//     cmd; its tests may use a driver as a port.
//   - pmd/X imports only engine/..., internal/... and its own packages, the
//     standard library, golang.org/x/sys and github.com/cilium/ebpf.
//   - stack/... imports no pmd/..., bench, compare, cmd; its tests may use a
//     driver as a port.
//   - stack/header/... imports only engine/... (its tests use
//     engine/mbuftest) and stack/header/...; stack/link the same.
//   - stack/network/... imports no stack/transport/..., stack/socket or the
//     root package stack; stack/transport/... not the root package stack.
//   - internal/... is the ground floor: it imports no package of the
//     module outside internal/.
//
// Tests keep every rule but the two exceptions named.
func rule(pkg, imp string, test bool) string {
	p, ok := own(pkg)
	if !ok {
		return ""
	}
	i, ours := own(imp)
	if !ours {
		if std(imp) {
			return ""
		}
		switch {
		case under(p, "pmd"):
			if !under(imp, "golang.org/x/sys") && !under(imp, "github.com/cilium/ebpf") {
				return "a driver uses nothing outside the module but the standard library, golang.org/x/sys and github.com/cilium/ebpf"
			}
		case under(p, "stack/header"):
			return "a wire format uses nothing outside the module but the standard library"
		case under(p, "stack/link"):
			return "stack/link uses nothing outside the module but the standard library"
		}
		return ""
	}
	top := under(i, "bench") || under(i, "compare") || under(i, "cmd")
	switch {
	case under(p, "engine"):
		switch {
		case top:
			return "engine sits below bench, compare and cmd"
		case under(i, "stack"):
			return "engine sits below the stack"
		case under(i, "pmd") && !test:
			return "engine sits below the drivers (only its tests may use one as a port)"
		}
	case under(p, "pmd"):
		driver := p // pmd/X, whose own packages it may import
		if parts := strings.SplitN(p, "/", 3); len(parts) > 1 {
			driver = parts[0] + "/" + parts[1]
		}
		switch {
		case under(i, "engine"), under(i, "internal"), under(i, driver):
		case under(i, "pmd"):
			return "a driver does not import another driver"
		default:
			return "a driver imports only engine/... and internal/... of the module"
		}
	case under(p, "stack"):
		switch {
		case top:
			return "the stack sits below bench, compare and cmd"
		case under(i, "pmd") && !test:
			return "the stack reaches ports through engine, never a driver (only its tests may use one as a port)"
		}
		switch {
		case under(p, "stack/header"):
			if !under(i, "engine") && !under(i, "stack/header") {
				return "a wire format imports only engine/... and stack/header/..."
			}
		case under(p, "stack/link"):
			if !under(i, "engine") && !under(i, "stack/header") {
				return "stack/link imports only engine/... and stack/header/..."
			}
		case under(p, "stack/network"):
			if under(i, "stack/transport") || under(i, "stack/socket") || i == "stack" {
				return "the network layer imports no transport, no stack/socket and not the root package stack"
			}
		case under(p, "stack/transport"):
			if i == "stack" {
				return "a transport does not import the root package stack"
			}
		}
	case under(p, "internal"):
		if !under(i, "internal") {
			return "internal is the ground floor: it imports nothing of the module but internal/..."
		}
	}
	return ""
}

// own returns path relative to the module ("" for its root) and whether the
// module holds it.
func own(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// std reports whether path is in the standard library, whose first element
// has no dot, as the go command tells them apart.
func std(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// listed is what `go list -json` tells of a package.
type listed struct {
	ImportPath     string
	Dir            string
	Imports        []string
	TestImports    []string
	XTestImports   []string
	IgnoredGoFiles []string // excluded by build constraints here: read for their imports
	Error          *struct{ Err string }
}

// TestEveryPackageKeepsTheDependencyRules lists the module's packages (not
// the nested module under compare/gvisor, which `go list ./...` leaves out)
// and checks every import of their files, those that build constraints
// leave out of this build included, against rule.
func TestEveryPackageKeepsTheDependencyRules(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the packages")
	}
	root := moduleRoot(t)
	cmd := exec.Command(goCmd, "list", "-e", "-json=ImportPath,Dir,Imports,TestImports,XTestImports,IgnoredGoFiles,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, stderr.Bytes())
	}
	seen := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		seen[p.ImportPath] = true
		if p.Error != nil {
			// An import cycle, say: name it, and check the imports still.
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		check := func(imports []string, test bool, where string) {
			for _, imp := range imports {
				if why := rule(p.ImportPath, imp, test); why != "" {
					t.Errorf("%s (%s) imports %s: %s", p.ImportPath, where, imp, why)
				}
			}
		}
		check(p.Imports, false, "package")
		check(p.TestImports, true, "tests")
		check(p.XTestImports, true, "external tests")
		for _, name := range p.IgnoredGoFiles {
			check(fileImports(t, filepath.Join(p.Dir, name)), strings.HasSuffix(name, "_test.go"), name)
		}
	}
	// A listing that went wrong must not pass for want of packages.
	for _, want := range []string{"engine", "pmd/wire", "stack", "stack/header/ipv4", "internal/layout"} {
		if !seen[module+"/"+want] {
			t.Errorf("go list ./... did not list %s", want)
		}
	}
}

// fileImports parses the import block of one Go file.
func fileImports(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var imps []string
	for _, s := range f.Imports {
		imp, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			t.Fatalf("%s: import %s: %v", path, s.Path.Value, err)
		}
		imps = append(imps, imp)
	}
	return imps
}

// moduleRoot finds the directory of this module's go.mod above the test's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			line, _ := bufio.NewReader(f).ReadString('\n')
			f.Close()
			if strings.TrimSpace(line) != "module "+module {
				t.Fatalf("%s/go.mod starts %q, not module %s", dir, line, module)
			}
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func TestTheRulesAllowAndBanTheImportsDesignMdNames(t *testing.T) {
	m := func(rel string) string {
		if rel == "" {
			return module
		}
		return module + "/" + rel
	}
	const pkg, tst = false, true
	cases := []struct {
		from, imp string
		test      bool
		banned    bool
	}{
		// engine
		{m("engine"), m("engine/ring"), pkg, false},
		{m("engine"), m("internal/futex"), pkg, false},
		{m("engine"), "golang.org/x/sys/unix", pkg, false},
		{m("engine"), m("pmd/wire"), pkg, true},
		{m("engine"), m("pmd/wire"), tst, false},
		{m("engine/ring"), m("stack"), pkg, true},
		{m("engine"), m("stack/header/eth"), tst, true},
		{m("engine"), m("bench"), pkg, true},
		{m("engine"), m("compare/workload"), tst, true},
		{m("engine"), m("cmd/pollnet"), pkg, true},
		// pmd
		{m("pmd/wire"), m("engine"), pkg, false},
		{m("pmd/wire"), m("engine/ring"), pkg, false},
		{m("pmd/tap"), m("internal/netns"), tst, false},
		{m("pmd/afxdp"), "github.com/cilium/ebpf/link", pkg, false},
		{m("pmd/tap"), "golang.org/x/sys/unix", pkg, false},
		{m("pmd/afxdp"), m("pmd/afxdp/internal/umem"), pkg, false},
		{m("pmd/tap"), m("pmd/wire"), pkg, true},
		{m("pmd/tap"), m("pmd/wire"), tst, true},
		{m("pmd/wire"), m("stack"), pkg, true},
		{m("pmd/wire"), m("stack/header/eth"), tst, true},
		{m("pmd/null"), m("bench/pktgen"), tst, true},
		{m("pmd/null"), "github.com/valyala/bytebufferpool", pkg, true},
		// stack
		{m("stack"), m("engine"), pkg, false},
		{m("stack"), m("stack/network/route"), pkg, false},
		{m("stack"), m("pmd/wire"), pkg, true},
		{m("stack"), m("pmd/wire"), tst, false},
		{m("stack/socket"), m("internal/futex"), pkg, false},
		{m("stack/timer"), m("bench"), pkg, true},
		{m("stack"), m("compare"), tst, true},
		{m("stack/transport/udp"), m("cmd/pollnet"), pkg, true},
		// stack/header
		{m("stack/header/udp"), m("stack/header/ipv4"), pkg, false},
		{m("stack/header/ipv4"), m("engine"), pkg, false},
		{m("stack/header/ipv4"), "encoding/binary", pkg, false},
		{m("stack/header/ipv4"), m("engine/mbuftest"), tst, false},
		{m("stack/header/ipv4"), m("internal/mbuftest"), tst, true},
		{m("stack/header/icmp"), m("stack/network/route"), pkg, true},
		{m("stack/header/eth"), m("stack"), tst, true},
		{m("stack/header/eth"), m("internal/futex"), pkg, true},
		{m("stack/header/eth"), "golang.org/x/sys/unix", pkg, true},
		// stack/network
		{m("stack/network/frag"), m("stack/header/ipv4"), pkg, false},
		{m("stack/network/neigh"), m("stack/timer"), pkg, false},
		{m("stack/network/neigh"), m("stack/transport/udp"), pkg, true},
		{m("stack/network/icmp"), m("stack/socket"), pkg, true},
		{m("stack/network/route"), m("stack"), pkg, true},
		{m("stack/network/route"), m("stack"), tst, true},
		// stack/transport
		{m("stack/transport/udp"), m("stack/network/route"), pkg, false},
		{m("stack/transport/udp"), m("stack/socket"), pkg, false},
		{m("stack/transport/tcp"), m("stack"), pkg, true},
		{m("stack/transport/udp"), m("stack"), tst, true},
		// stack/link
		{m("stack/link"), m("engine/ring"), pkg, false},
		{m("stack/link"), m("stack/header/eth"), pkg, false},
		{m("stack/link"), m("stack/network/route"), pkg, true},
		{m("stack/link"), m("stack/socket"), pkg, true},
		{m("stack/link"), m("pmd/wire"), tst, true},
		// internal
		{m("internal/mbuftest"), m("engine"), pkg, true},
		{m("internal/result"), m("internal/futex"), pkg, false},
		{m("internal/result"), "github.com/montanaflynn/stats", pkg, false},
		{m("internal/result"), m("bench"), pkg, true},
		{m("internal/netns"), m("compare/kernel"), tst, true},
		{m("internal/futex"), m("cmd/pollnet"), pkg, true},
		// above all: no rules
		{m("bench"), m("pmd/wire"), pkg, false},
		{m("compare"), m("internal/result"), pkg, false},
		{m("cmd/pollnet"), m("bench"), pkg, false},
		{"example.com/other", m("cmd/pollnet"), pkg, false},
		// prefixes are path elements, not strings
		{m("stack/header/eth"), m("stack/headers"), pkg, true},
		{m("engine"), m("stackish"), pkg, false},
		{m("pmd/tap"), m("pmd/tapx"), pkg, true},
	}
	for _, c := range cases {
		why := rule(c.from, c.imp, c.test)
		if (why != "") != c.banned {
			kind := "package"
			if c.test {
				kind = "test"
			}
			t.Errorf("%s %s importing %s: banned %v (%q), want %v", c.from, kind, c.imp, why != "", why, c.banned)
		}
	}
}

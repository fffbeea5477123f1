package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/internal/result"
)

// writeRun stores a run of rows pps scenarios with the given samples, each
// row's level scaled by scale, on a machine with the given cpu.
func writeRun(t *testing.T, dir, cpu string, scale float64, samples ...float64) string {
	t.Helper()
	r := &result.Run{Suite: "quick", Machine: result.Machine{CPU: cpu, Cores: 2, Kernel: "6.1.0", Go: "go1.26.8", GOMAXPROCS: 2, Commit: "abc"}}
	for i, size := range []int{64, 128, 256} {
		s := result.Scenario{Name: "pps", Path: "pollnet-pmd", Port: "wire", Knobs: map[string]any{"size": size},
			Metric: "rx_pps", Unit: "packets/s"}
		for _, v := range samples {
			s.Samples = append(s.Samples, v*scale*float64(i+1))
		}
		s.Stamp(map[string]int{result.RoleDUT: 1, result.RoleGenerator: 0}, 0, len(samples))
		if err := s.Summarise(); err != nil {
			t.Fatal(err)
		}
		r.Scenarios = append(r.Scenarios, s)
	}
	path := filepath.Join(t.TempDir(), dir)
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCompareShowsMachinesAlphaAndTooFewRuns(t *testing.T) {
	five := []float64{10e6, 10.1e6, 9.9e6, 10.05e6, 9.95e6}
	a := writeRun(t, "a", "AMD EPYC 7B13", 1, five...)
	b := writeRun(t, "b", "Intel Xeon", 0.9, five...)
	var out, errb bytes.Buffer
	// Flags after the directories are read too.
	if code := run([]string{"compare", a, b, "--alpha", "0.005"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"alpha 0.005", "WARNING: the runs were made on different machines (cpu differs)",
		"AMD EPYC 7B13", "Intel Xeon", "0.900x [", "Too few runs to flag anything", "above alpha 0.005", "--repeat 10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "0 of 3 rows tested are flagged") {
		t.Errorf("a row flagged with five runs a side at alpha 0.005:\n%s", out.String())
	}
}

func TestCompareFlagsASlowdownWithTenRuns(t *testing.T) {
	ten := []float64{10e6, 10.1e6, 9.9e6, 10.05e6, 9.95e6, 10.02e6, 9.98e6, 10.07e6, 9.93e6, 10.01e6}
	a := writeRun(t, "a", "AMD EPYC 7B13", 1, ten...)
	b := writeRun(t, "b", "AMD EPYC 7B13", 0.9, ten...)
	var out, errb bytes.Buffer
	if code := run([]string{"compare", a, b}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "3 of 3 rows tested are flagged") || strings.Contains(out.String(), "WARNING") ||
		strings.Contains(out.String(), "Too few") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestCompareRefusesTooFewResamples(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"compare", "--resamples", "5", "a", "b"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--resamples") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/internal/result"
)

// reportScenario is a summarised scenario as a bench writes it.
func reportScenario(t *testing.T, name, path, port string, size int, busy float64, runs ...float64) result.Scenario {
	t.Helper()
	s := result.Scenario{
		Name: name, Path: path, Port: port, Knobs: map[string]any{"size": size, "copy": true},
		Metric: "rx_pps", Unit: "packets/s", Samples: runs, Repeat: len(runs), WarmupS: 0.5, GOMAXPROCS: 2,
		Roles: map[string]int{"dut": 1}, Extra: map[string]float64{"ns_per_packet": 1e9 / runs[0]},
	}
	if busy >= 0 {
		s.DUTBusy = &busy
	}
	if err := s.Summarise(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReportLeadsWithChartsAndComputedProse(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "reference")
	r := &result.Run{Suite: "full", Command: "pollnet bench --suite full", Machine: result.Machine{CPU: "Test CPU", Cores: 2}}
	r.Scenarios = []result.Scenario{
		reportScenario(t, "pps", "pollnet-pmd", "null", 64, 1, 11.2e6, 11.6e6, 11.7e6),
		reportScenario(t, "pps", "dpdk-testpmd", "null", 64, -1, 20.1e6, 20.5e6, 21e6),
		reportScenario(t, "pps", "pollnet-pmd", "wire", 64, 0.5, 5e6, 5.1e6, 5.3e6),
		reportScenario(t, "pps", "pollnet-napi", "wire", 64, 0.6, 4e6, 4.2e6, 4.4e6),
	}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	// A chart an older pollnet drew; the redraw removes it.
	stale := filepath.Join(dir, "throughput-mpps.png")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(base, "README.md")
	var out, errb bytes.Buffer
	if code := run([]string{"report", "--readme", readme, dir}, &out, &errb); code != 0 {
		t.Fatalf("report exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale chart left behind (err %v)", err)
	}
	for _, f := range []string{"index.html", "paths-pps-null-64B.png", "paths-pps-wire-64B.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	first := strings.Index(md, "\n## ")
	if first < 0 || !strings.HasPrefix(md[first:], "\n## Forwarding rate") || strings.Index(md, "## Every scenario") < first {
		t.Errorf("README does not lead with the charts:\n%s", md)
	}
	for _, want := range []string{
		"![Forwarding rate (pps), port null, 64 B frames](reference/paths-pps-null-64B.png)",
		// 11.6 / 20.5 = 0.566
		"pollnet-pmd forwards 64 B frames at 11.6 Mpps (runs 11.2..11.7), 0.57× dpdk-testpmd (20.5 Mpps, runs 20.1..21)",
		"so the harness, not the device, set this rate and no ratio is quoted",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("README lacks %q", want)
		}
	}
	if strings.Contains(md, "factor of two") {
		t.Error("README carries the fixed 'factor of two' text")
	}
}

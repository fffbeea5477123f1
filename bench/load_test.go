package bench

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A tiny zero-loss search in both modes, then the equal-load runs at the
// rates it found: every scenario carries its figures and the printers quote
// no throughput ratio the dut_busy does not allow.
func TestZeroLossThenLoad(t *testing.T) {
	zc := ZeroLossConfig{PPSConfig: testPPSConfig(), SearchOptions: SearchOptions{Trial: 100 * time.Millisecond, Settle: 20 * time.Millisecond, MaxTrials: 3}, EmitPPS: true}
	zc.Modes = []Mode{ModePMD, ModeNAPI}
	zs, err := RunZeroLoss(zc)
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != 2 {
		t.Fatalf("%d results", len(zs))
	}
	for _, z := range zs {
		sc := z.Scenario
		if sc.Name != "zero_loss" || sc.Metric != "rx_pps" || len(sc.Samples) != 1 || sc.DUTBusy == nil || sc.Repeat != 1 {
			t.Fatalf("%s: %+v", z.Mode, sc)
		}
		n := len(z.Searches[0].Trials)
		if n < 1 || n > 3 || sc.Extra["trials"] != float64(n) || sc.Knobs["trial_s"] != 0.1 {
			t.Fatalf("%s: %d trials, extra %v", z.Mode, n, sc.Extra["trials"])
		}
		if s := z.Searches[0]; s.Best >= 0 && s.Trials[s.Best].Loss > DefaultMaxLoss {
			t.Fatalf("%s: reported a trial that lost %v", z.Mode, s.Trials[s.Best].Loss)
		}
		if z.PPS == nil || z.PPS.Name != "pps" || z.PPS.Median <= 0 || z.PPS.DUTBusy == nil {
			t.Fatalf("%s: no pps scenario from the top trial: %+v", z.Mode, z.PPS)
		}
	}
	var b strings.Builder
	FormatZeroLoss(&b, zs)
	ratio := strings.Contains(b.String(), "throughput ") && !strings.Contains(b.String(), "no throughput ratio")
	both := *zs[0].Scenario.DUTBusy >= BusyThreshold && *zs[1].Scenario.DUTBusy >= BusyThreshold
	if !strings.Contains(b.String(), "pmd/napi zero-loss at 64 B") || ratio != both {
		t.Fatalf("ratio printed %v with dut_busy %v and %v:\n%s", ratio, *zs[0].Scenario.DUTBusy, *zs[1].Scenario.DUTBusy, b.String())
	}

	ref := ReferenceRates(zs)
	if len(ref) == 0 {
		// A loaded machine may make a 100 ms search fail; nothing to load.
		t.Skipf("no zero-loss rate found in both modes: %v", b.String())
	}
	lc := LoadConfig{PPSConfig: testPPSConfig(), Shares: []float64{0.5}, Reference: ref}
	lc.Modes = []Mode{ModePMD, ModeNAPI}
	lc.Duration = 100 * time.Millisecond
	ls, err := RunLoad(lc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 {
		t.Fatalf("%d load results", len(ls))
	}
	for _, l := range ls {
		sc := l.Scenario
		if sc.Name != "load" || sc.Metric != "cpu_ns_per_packet" || sc.Median <= 0 || sc.Knobs["load_share"] != 0.5 ||
			sc.Knobs["offered_pps"] != l.Offered || l.Offered <= 0 || l.Offered > ref[64] {
			t.Fatalf("%s: %+v", l.Mode, sc)
		}
		_, ok := sc.Extra["lat_p99_us"]
		if ok != (l.Latency.Count() >= MinLatencySamples) {
			t.Fatalf("%s: p99 given %v over %d latencies", l.Mode, ok, l.Latency.Count())
		}
	}
	b.Reset()
	FormatLoad(&b, ls)
	if !strings.Contains(b.String(), "pmd/napi at 64 B, 50% load") {
		t.Fatalf("no comparison:\n%s", b.String())
	}
}

// --profile writes one CPU profile per scenario and path, of its first
// measured window, and the device's samples carry the scenario and path.
func TestProfilesAreLabelled(t *testing.T) {
	dir := t.TempDir()
	cfg := testPPSConfig()
	cfg.Modes, cfg.Repeat, cfg.Warmup = []Mode{ModePMD}, 2, 0
	cfg.Name = "pps"
	cfg.prof = newProfiler(dir, nil)
	if _, err := RunPPS(cfg); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.pprof"))
	if len(files) != 1 || filepath.Base(files[0]) != "pps-pmd-64B.cpu.pprof" {
		t.Fatalf("profiles %v, want one for the scenario and path", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	// Label keys and values are in the profile's string table only if
	// some sample carries them.
	for _, s := range []string{labelScenario, labelPath, labelRole, "pollnet-pmd", "dut"} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("the profile has no %q", s)
		}
	}
}

// The quick suite fits in three minutes on its own count of runs and trials.
func TestQuickSuiteIsCountedUnderThreeMinutes(t *testing.T) {
	jobs, err := Plan("quick", Options{Modes: []Mode{ModePMD, ModeNAPI}, Queues: 1, Duration: 3 * time.Second,
		Warmup: 500 * time.Millisecond, RingSize: 1024, GenCore: -1, FwdCore: -1})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total Estimate
	for _, j := range jobs {
		names = append(names, j.Name)
		total = total.add(j.Estimate)
	}
	if strings.Join(names, ",") != "zero_loss,pps-null,load,idle,udp" {
		t.Fatalf("quick runs %v", names)
	}
	if total.Max >= 3*time.Minute || total.Time > total.Max || total.Runs == 0 {
		t.Fatalf("quick: %+v", total)
	}
	if s := Expect("quick", jobs); !strings.Contains(s, "zero_loss 6 runs, at most 72 trials") {
		t.Fatalf("expectation: %s", s)
	}
}

package runcmp

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/internal/result"
)

func TestMannWhitneyExact(t *testing.T) {
	cases := []struct {
		x, y []float64
		u, p float64
	}{
		{[]float64{1, 2, 3}, []float64{4, 5, 6}, 0, 0.1}, // 2 of C(6,3)=20 arrangements as extreme
		{[]float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 0, 2.0 / 252},
		{[]float64{6, 7, 8, 9, 10}, []float64{1, 2, 3, 4, 5}, 25, 2.0 / 252},
		{[]float64{1, 3, 5}, []float64{2, 4, 6}, 3, 0.7}, // U=3: |3-4.5|=1.5: 14 of 20
	}
	for _, c := range cases {
		u, p := MannWhitneyU(c.x, c.y)
		if u != c.u || math.Abs(p-c.p) > 1e-9 {
			t.Errorf("U(%v, %v) = %v p=%v, want %v p=%v", c.x, c.y, u, p, c.u, c.p)
		}
	}
}

func TestMannWhitneyTiesAndLarge(t *testing.T) {
	same := []float64{5, 5, 5, 5}
	if _, p := MannWhitneyU(same, same); p != 1 {
		t.Fatalf("identical constant samples: p=%v", p)
	}
	var a, b []float64
	for i := 0; i < 30; i++ {
		a = append(a, 100+float64(i%7))
		b = append(b, 110+float64(i%5))
	}
	if _, p := MannWhitneyU(a, b); p > 1e-6 {
		t.Fatalf("clearly shifted samples with ties: p=%v", p)
	}
	if _, p := MannWhitneyU(a, a); p < 0.9 {
		t.Fatalf("a sample against itself: p=%v", p)
	}
}

// The smallest p is what the exact test gives for complete separation.
func TestMinPIsTheExactTestAtCompleteSeparation(t *testing.T) {
	for _, n := range [][2]int{{3, 3}, {5, 5}, {10, 10}, {4, 7}, {12, 9}} {
		var a, b []float64
		for i := range n[0] {
			a = append(a, float64(i))
		}
		for i := range n[1] {
			b = append(b, float64(100+i))
		}
		_, p := MannWhitneyU(a, b)
		if got := MinP(n[0], n[1]); math.Abs(got-p) > 1e-12*p {
			t.Errorf("MinP(%d, %d) = %v, the exact test gives %v", n[0], n[1], got, p)
		}
	}
	if p := MinP(5, 5); math.Abs(p-2.0/252) > 1e-15 {
		t.Errorf("MinP(5, 5) = %v, want 2/252", p)
	}
	if p := MinP(10, 10); math.Abs(p-2.0/184756) > 1e-18 {
		t.Errorf("MinP(10, 10) = %v, want 2/184756", p)
	}
	// 92 rows (the comparison issue 9 quotes): alpha/m = 5.4e-4; C(14,7) = 3432
	// gives 5.8e-4, C(16,8) = 12870 gives 1.6e-4.
	if n := RunsFor(92, 0.05); n != 8 {
		t.Errorf("RunsFor(92, 0.05) = %d, want 8", n)
	}
}

// The example of Benjamini and Hochberg (1995), section 4: fifteen p-values
// at q* = 0.05. Their procedure rejects the four smallest; Bonferroni
// (p <= 0.05/15) would reject three.
func TestBenjaminiHochbergTextbookExample(t *testing.T) {
	p := []float64{0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
		0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000}
	// Shuffled, so the procedure's own sorting is tested too.
	perm := rand.New(rand.NewPCG(1, 2)).Perm(len(p))
	shuffled := make([]float64, len(p))
	for i, j := range perm {
		shuffled[i] = p[j]
	}
	q, rej := BenjaminiHochberg(shuffled, 0.05)
	n := 0
	for i, j := range perm {
		want := j < 4
		if rej[i] != want {
			t.Errorf("p=%v: rejected %v, want %v", shuffled[i], rej[i], want)
		}
		if rej[i] != (q[i] <= 0.05) {
			t.Errorf("p=%v: rejected %v but q=%v", shuffled[i], rej[i], q[i])
		}
		if rej[i] {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d rejected, want 4", n)
	}
	// Adjusted p-values as R's p.adjust(p, "BH") gives them.
	wantQ := map[float64]float64{0.0001: 0.0015, 0.0004: 0.003, 0.0019: 0.0095, 0.0095: 0.035625,
		0.0201: 0.0603, 0.0459: 0.0765, 1.0: 1}
	for i, pv := range shuffled {
		if w, ok := wantQ[pv]; ok && math.Abs(q[i]-w) > 1e-12 {
			t.Errorf("q(%v) = %v, want %v", pv, q[i], w)
		}
	}
	if q, rej := BenjaminiHochberg(nil, 0.05); len(q) != 0 || len(rej) != 0 {
		t.Errorf("an empty family: %v %v", q, rej)
	}
}

func TestRatioCIIsReproducibleAndCoversTheRatio(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	a := draw(rng, 10, 100, 0.01)
	b := draw(rng, 10, 110, 0.01)
	lo, hi, ok := RatioCI(a, b, 0.95, 5000, 42)
	if !ok || !(lo < 1.1 && 1.1 < hi) || lo < 1.07 || hi > 1.13 {
		t.Fatalf("interval [%v, %v] ok=%v: want a narrow interval around 1.1", lo, hi, ok)
	}
	lo2, hi2, _ := RatioCI(a, b, 0.95, 5000, 42)
	if lo2 != lo || hi2 != hi {
		t.Errorf("same seed, other interval: [%v, %v] then [%v, %v]", lo, hi, lo2, hi2)
	}
	if _, _, ok := RatioCI(a[:1], b, 0.95, 100, 1); ok {
		t.Errorf("an interval from one run")
	}
}

// draw returns n runs around mean with relative noise sd (log-normal, as
// throughput noise is multiplicative).
func draw(rng *rand.Rand, n int, mean, sd float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mean * math.Exp(sd*rng.NormFloat64())
	}
	return out
}

// synthetic builds two runs of rows scenarios with runs samples each, every
// row around its own level with noise sd; B's row i is A's level times
// factor(i).
func synthetic(seed uint64, rows, runs int, sd float64, factor func(i int) float64) (a, b *result.Run) {
	rng := rand.New(rand.NewPCG(seed, 99))
	m := result.Machine{CPU: "AMD EPYC 7B13", Cores: 2, Kernel: "6.1.0", Go: "go1.26.8", GOMAXPROCS: 2, Hostname: "rig", Commit: "abc"}
	a = &result.Run{Suite: "quick", Machine: m}
	b = &result.Run{Suite: "quick", Machine: m}
	for i := range rows {
		level := 1e6 * float64(1+i)
		sc := func(mean float64) result.Scenario {
			s := result.Scenario{Name: "pps", Path: "pollnet-pmd", Port: "wire", Metric: "rx_pps", Unit: "packets/s",
				Knobs: map[string]any{"size": float64(64 + i)}, Samples: draw(rng, runs, mean, sd)}
			s.Roles, s.GOMAXPROCS, s.Repeat = map[string]int{"dut": 1}, 2, runs
			return s
		}
		a.Scenarios = append(a.Scenarios, sc(level))
		b.Scenarios = append(b.Scenarios, sc(level*factor(i)))
	}
	return a, b
}

func same(int) float64 { return 1 }

// Two runs from one distribution flag (almost) nothing, where the
// uncorrected test flags about alpha of the rows.
func TestSameDistributionFlagsAlmostNothing(t *testing.T) {
	const seeds, rows = 5, 60
	flagged, raw := 0, 0
	for seed := range uint64(seeds) {
		a, b := synthetic(seed, rows, 10, 0.03, same)
		rep := Compare(a, b, Options{Resamples: 500})
		if rep.Tested != rows {
			t.Fatalf("seed %d: %d rows tested, want %d", seed, rep.Tested, rows)
		}
		flagged += len(rep.Flagged())
		for _, r := range rep.Rows {
			if r.P < rep.Alpha {
				raw++
			}
		}
	}
	if flagged > 1 {
		t.Errorf("%d of %d rows flagged across %d pairs of runs from one distribution", flagged, seeds*rows, seeds)
	}
	// Without the correction about 5% would be flagged: the control above
	// is the procedure's doing, not a test too weak to flag anything.
	if raw < seeds*rows/50 {
		t.Errorf("only %d rows with p < alpha uncorrected: the synthetic noise is not doing its job", raw)
	}
}

// A 10% slowdown of one row among forty, with 1% noise and ten runs a side,
// is flagged, with an interval around 0.9; nothing else is.
func TestATenPercentSlowdownInOneRowIsFlagged(t *testing.T) {
	const slow = 17
	a, b := synthetic(3, 40, 10, 0.01, func(i int) float64 {
		if i == slow {
			return 0.9
		}
		return 1
	})
	rep := Compare(a, b, Options{Resamples: 2000})
	f := rep.Flagged()
	if len(f) != 1 || f[0].Key != rep.Rows[slow].Key {
		t.Fatalf("flagged %d rows: %+v", len(f), f)
	}
	r := rep.Rows[slow]
	if !r.HasCI || !(r.CILow < 0.9 && 0.9 < r.CIHigh) || r.CIHigh >= 1 || math.Abs(r.Ratio-0.9) > 0.02 {
		t.Errorf("ratio %v [%v, %v]: want about 0.9 with 1 outside", r.Ratio, r.CILow, r.CIHigh)
	}
	if rep.Power().TooFew() {
		t.Errorf("ten runs a side over 40 rows reported as too few: %+v", rep.Power())
	}
	var out bytes.Buffer
	Format(&out, "old", "new", rep)
	if !strings.Contains(out.String(), "changed") || strings.Contains(out.String(), "Too few runs") {
		t.Errorf("output:\n%s", out.String())
	}
}

// With five runs a side the same slowdown cannot be flagged, and the report
// says so and what to do.
func TestFiveRunsASideReportTooFewRuns(t *testing.T) {
	a, b := synthetic(3, 40, 5, 0.01, func(i int) float64 {
		if i == 17 {
			return 0.9
		}
		return 1
	})
	rep := Compare(a, b, Options{Resamples: 500})
	if n := len(rep.Flagged()); n != 0 {
		t.Errorf("%d rows flagged with five runs a side", n)
	}
	pw := rep.Power()
	if !pw.TooFew() || pw.SmallestP != MinP(5, 5) || pw.Suggest != 10 {
		t.Errorf("power %+v", pw)
	}
	var out bytes.Buffer
	Format(&out, "old", "new", rep)
	for _, want := range []string{"Too few runs", "5 runs a side", "0.0079", "--repeat 10", "1.1e-05"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// The report's claim that with five runs only a change shown in Together
// rows at once can be flagged is the procedure's real behaviour.
func TestFiveRunsFlagOnlyAChangeSeenInEnoughRowsAtOnce(t *testing.T) {
	a, _ := synthetic(4, 40, 5, 0.01, same)
	k := Compare(a, a, Options{Resamples: 10}).Power().Together // ceil(0.0079*40/0.05) = 7
	if k != 7 {
		t.Fatalf("Together = %d, want 7", k)
	}
	for _, n := range []int{k - 1, k} {
		a, b := synthetic(4, 40, 5, 0.001, func(i int) float64 {
			if i < n {
				return 0.8
			}
			return 1
		})
		got := len(Compare(a, b, Options{Resamples: 10}).Flagged())
		want := 0
		if n == k {
			want = k
		}
		if got != want {
			t.Errorf("%d rows slowed: %d flagged, want %d", n, got, want)
		}
	}
}

func TestRowsAreMatchedAndRowsWithoutSamplesSkipped(t *testing.T) {
	scen := func(path string, size int, samples ...float64) result.Scenario {
		return result.Scenario{Name: "pps", Path: path, Port: "wire", Metric: "rx_pps", Unit: "packets/s",
			Knobs: map[string]any{"size": size, "duration_s": 3.0}, Samples: samples, Repeat: len(samples)}
	}
	a := &result.Run{Scenarios: []result.Scenario{
		scen("pollnet-pmd", 64, 10e6, 10.1e6, 9.9e6, 10.05e6, 9.95e6),
		scen("pollnet-pmd", 1518, 2e6, 2.1e6, 1.9e6),
		scen("pollnet-pmd", 1518, 2e6, 2.1e6, 1.9e6), // the same row again: only the first counts
		scen("pollnet-pmd", 512, 3e6, 3e6),
		{Name: "pps", Path: "dpdk-testpmd", Port: "null", Metric: "rx_pps", Skipped: "dpdk-testpmd not installed"},
		scen("pollnet-napi", 64),
	}}
	b := &result.Run{Scenarios: []result.Scenario{
		scen("pollnet-pmd", 64, 12e6, 12.1e6, 11.9e6, 12.05e6, 11.95e6),
		scen("pollnet-pmd", 1518, 2e6, 2.1e6, 1.9e6),
		scen("kernel", 64, 1e6, 1e6),
		{Name: "pps", Path: "dpdk-testpmd", Port: "null", Metric: "rx_pps", Skipped: "dpdk-testpmd not installed"},
		scen("pollnet-napi", 64),
	}}
	b.Scenarios[0].Knobs["duration_s"] = 10.0 // run length does not change identity
	b.Scenarios[1].Knobs["size"] = 1518.0     // as read back from JSON
	rep := Compare(a, b, Options{Resamples: 200})
	skip := map[string]string{}
	for _, r := range rep.Rows {
		skip[r.Key] = r.Skip
	}
	want := map[string]string{
		"pps/pollnet-pmd/wire size=64":   "",
		"pps/pollnet-pmd/wire size=1518": "",
		"pps/pollnet-pmd/wire size=512":  "only in A",
		"pps/dpdk-testpmd/null ":         "skipped in A: dpdk-testpmd not installed",
		"pps/pollnet-napi/wire size=64":  "no samples on either side",
		"pps/kernel/wire size=64":        "only in B",
	}
	if fmt.Sprint(skip) != fmt.Sprint(want) {
		t.Errorf("rows:\n%v\nwant\n%v", skip, want)
	}
	if rep.Tested != 2 || math.Abs(rep.Rows[0].Ratio-1.2) > 1e-9 || math.Abs(rep.Rows[1].Ratio-1) > 1e-9 {
		t.Errorf("tested %d, ratios %v %v", rep.Tested, rep.Rows[0].Ratio, rep.Rows[1].Ratio)
	}
	var out bytes.Buffer
	Format(&out, "old", "new", rep)
	table, rest, _ := strings.Cut(out.String(), "not compared")
	if strings.Contains(table, "pollnet-napi") || !strings.Contains(rest, "pps/pollnet-napi/wire size=64: no samples") {
		t.Errorf("a row without samples is not listed apart:\n%s", out.String())
	}
	if !strings.Contains(table, "12.000 Mpps") || !strings.Contains(table, "1.200x [") {
		t.Errorf("table:\n%s", table)
	}
}

func TestMachinesAreShownAndADifferenceWarned(t *testing.T) {
	a, b := synthetic(5, 3, 10, 0.01, same)
	b.Machine.Commit = "def"
	var out bytes.Buffer
	Format(&out, "old", "new", Compare(a, b, Options{Alpha: 0.01, Resamples: 100}))
	for _, want := range []string{"AMD EPYC 7B13", "6.1.0", "go1.26.8", "rig", "abc", "def", "alpha 0.01", "99% bootstrap",
		"The builds differ"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "WARNING") {
		t.Errorf("like machines warned about:\n%s", out.String())
	}

	b.Machine.CPU = "Intel Xeon Platinum 8375C"
	b.Machine.Kernel = "6.8.0"
	b.Machine.Hostname = ""
	out.Reset()
	Format(&out, "old", "new", Compare(a, b, Options{Resamples: 100}))
	for _, want := range []string{"WARNING: the runs were made on different machines (cpu, kernel differ)",
		"only one run records hostname", "Intel Xeon Platinum 8375C"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// Rows show only the knobs that vary within their scenario; the shared ones
// are listed once.
func TestRowLabelsShowTheKnobsThatVary(t *testing.T) {
	rows := []Row{
		{Group: "pps/pollnet-pmd/wire", Knobs: map[string]any{"size": 64.0, "ring": 1024.0, "mode": "pmd"}},
		{Group: "pps/pollnet-pmd/wire", Knobs: map[string]any{"size": 128.0, "ring": 1024.0, "mode": "pmd"}},
		{Group: "pps/pollnet-pmd/wire", Knobs: map[string]any{"size": 256.0, "ring": 1024.0}},
		{Group: "idle/pollnet-napi/wire", Knobs: map[string]any{"size": 64.0}},
		{Group: "pps/kernel/wire", Knobs: map[string]any{"size": 64.0}, Skip: "only in A"},
	}
	labels, shared := rowLabels(rows)
	want := []string{"pps/pollnet-pmd/wire mode=pmd;size=64", "pps/pollnet-pmd/wire mode=pmd;size=128",
		"pps/pollnet-pmd/wire size=256", "idle/pollnet-napi/wire", ""}
	if fmt.Sprint(labels) != fmt.Sprint(want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
	if wantShared := []string{"pps/pollnet-pmd/wire: ring=1024", "idle/pollnet-napi/wire: size=64"}; fmt.Sprint(shared) != fmt.Sprint(wantShared) {
		t.Errorf("shared %q, want %q", shared, wantShared)
	}
}

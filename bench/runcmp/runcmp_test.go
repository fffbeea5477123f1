package runcmp

import (
	"bytes"
	"math"
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

func scen(path string, size int, samples ...float64) result.Scenario {
	return result.Scenario{Name: "pps", Path: path, Port: "wire", Metric: "rx_pps", Unit: "packets/s",
		Knobs: map[string]any{"size": size, "duration_s": 3.0}, Samples: samples}
}

func TestCompareRuns(t *testing.T) {
	a := &result.Run{Scenarios: []result.Scenario{
		scen("pollnet-pmd", 64, 10e6, 10.1e6, 9.9e6, 10.05e6, 9.95e6),
		scen("pollnet-napi", 64, 5e6, 5.1e6, 4.9e6),
		scen("pollnet-pmd", 1518, 2e6, 2e6),
	}}
	b := &result.Run{Scenarios: []result.Scenario{
		scen("pollnet-pmd", 64, 12e6, 12.1e6, 11.9e6, 12.05e6, 11.95e6),
		scen("pollnet-napi", 64, 5.05e6, 4.95e6, 5e6),
		scen("kernel", 64, 1e6, 1e6),
	}}
	b.Scenarios[0].Knobs["duration_s"] = 10.0 // run length does not change identity
	rows := Compare(a, b, 0.05)
	if len(rows) != 4 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	if r := rows[0]; !r.Significant || math.Abs(r.Ratio-1.2) > 1e-9 {
		t.Fatalf("pmd: %+v", r)
	}
	if r := rows[1]; r.Significant || math.Abs(r.Ratio-1) > 1e-9 {
		t.Fatalf("napi (noise): %+v", r)
	}
	if rows[2].Note != "only in A" || rows[3].Note != "only in B" {
		t.Fatalf("unmatched rows: %q %q", rows[2].Note, rows[3].Note)
	}
	var out bytes.Buffer
	Format(&out, "old", "new", rows)
	for _, want := range []string{"1.200x", "~ (1.000x)", "only in A", "only in B", "12.000 Mpps"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

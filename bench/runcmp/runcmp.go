// Package runcmp compares two benchmark runs scenario by scenario, in the
// manner of benchstat: medians side by side, their ratio, and whether the
// difference is more than noise by a Mann-Whitney U test on the raw samples.
package runcmp

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pollnet/pollnet/internal/result"
)

// Row is one scenario found in both runs, or in one only.
type Row struct {
	Key         string // name, path, port and knobs
	Metric      string
	Unit        string
	A, B        result.Summary
	Ratio       float64 // B median / A median; 0 when either is missing
	P           float64 // two-sided p-value of the U test; 1 when not computable
	Significant bool    // P below alpha
	Note        string  // "only in A", "only in B", "skipped in A: ...", "too few samples"
}

// key identifies a scenario across runs: the same workload under the same
// knobs and path. The mode is part of the path already.
func key(s result.Scenario) string {
	knobs, _ := result.FormatKnobs(withoutRunLength(s.Knobs))
	return fmt.Sprintf("%s/%s/%s %s", s.Name, s.Path, s.Port, knobs)
}

// withoutRunLength drops knobs that change how long a run is measured but not
// what it measures, so a short run can be compared with a long one.
func withoutRunLength(k map[string]any) map[string]any {
	out := make(map[string]any, len(k))
	for n, v := range k {
		if n == "duration_s" || n == "warmup_s" || n == "repeat" {
			continue
		}
		out[n] = v
	}
	return out
}

// Compare matches the scenarios of a and b and tests each pair at level
// alpha (0.05 is usual).
func Compare(a, b *result.Run, alpha float64) []Row {
	bs := map[string]result.Scenario{}
	var order []string
	for _, s := range b.Scenarios {
		k := key(s)
		if _, dup := bs[k]; !dup {
			order = append(order, k)
		}
		bs[k] = s
	}
	seen := map[string]bool{}
	var rows []Row
	for _, sa := range a.Scenarios {
		k := key(sa)
		if seen[k] {
			continue
		}
		seen[k] = true
		r := Row{Key: k, Metric: sa.Metric, Unit: sa.Unit, P: 1}
		r.A, _ = result.Summarise(sa.Samples)
		sb, ok := bs[k]
		switch {
		case !ok:
			r.Note = "only in A"
		case sa.Skipped != "":
			r.Note = "skipped in A: " + sa.Skipped
		case sb.Skipped != "":
			r.Note = "skipped in B: " + sb.Skipped
		case sa.Metric != sb.Metric:
			r.Note = fmt.Sprintf("metric differs: %s vs %s", sa.Metric, sb.Metric)
		default:
			r.B, _ = result.Summarise(sb.Samples)
			if r.A.Median != 0 {
				r.Ratio = r.B.Median / r.A.Median
			}
			if len(sa.Samples) < 2 || len(sb.Samples) < 2 {
				r.Note = "too few samples to test"
			} else {
				_, r.P = MannWhitneyU(sa.Samples, sb.Samples)
				r.Significant = r.P < alpha
			}
		}
		rows = append(rows, r)
	}
	for _, k := range order {
		if !seen[k] {
			sb := bs[k]
			r := Row{Key: k, Metric: sb.Metric, Unit: sb.Unit, P: 1, Note: "only in B"}
			r.B, _ = result.Summarise(sb.Samples)
			rows = append(rows, r)
		}
	}
	return rows
}

// Format prints the rows as a table: medians with their relative spread,
// the ratio B/A, and the p-value, with "~" where the difference is noise.
func Format(w io.Writer, aName, bName string, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tmetric\tA: %s\tB: %s\tB/A\tp\t\n", aName, bName)
	for _, r := range rows {
		ratio, p := "", ""
		switch {
		case r.Note != "" && r.Ratio == 0:
			ratio = r.Note
		case r.Significant:
			ratio = fmt.Sprintf("%.3fx", r.Ratio)
			p = fmt.Sprintf("p=%.3f n=%d+%d", r.P, r.A.N, r.B.N)
		default:
			ratio = "~"
			if r.Ratio != 0 {
				ratio = fmt.Sprintf("~ (%.3fx)", r.Ratio)
			}
			p = fmt.Sprintf("p=%.3f n=%d+%d", r.P, r.A.N, r.B.N)
			if r.Note != "" {
				p = r.Note
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Key, r.Metric, cell(r.A, r.Unit), cell(r.B, r.Unit), ratio, p)
	}
	tw.Flush()
	fmt.Fprintln(w, "~: no significant difference (Mann-Whitney U, two-sided, alpha 0.05); ± is the samples' relative standard deviation")
}

func cell(s result.Summary, unit string) string {
	if s.N == 0 {
		return "-"
	}
	spread := ""
	if s.Mean != 0 {
		spread = fmt.Sprintf(" ±%.1f%%", 100*s.Stddev/math.Abs(s.Mean))
	}
	return humanize(s.Median, unit) + spread
}

// humanize prints a value with an SI prefix suited to its unit.
func humanize(v float64, unit string) string {
	u := unit
	if strings.HasSuffix(u, "/s") && strings.HasPrefix(u, "packets") {
		u = "pps"
	}
	switch a := math.Abs(v); {
	case a >= 1e9:
		return fmt.Sprintf("%.3f G%s", v/1e9, u)
	case a >= 1e6:
		return fmt.Sprintf("%.3f M%s", v/1e6, u)
	case a >= 1e3:
		return fmt.Sprintf("%.3f k%s", v/1e3, u)
	}
	return fmt.Sprintf("%.4g %s", v, u)
}

// MannWhitneyU tests whether x and y come from the same distribution. It
// returns the U statistic of x and the two-sided p-value: exact (from the
// distribution of U under no ties) for small samples without ties, and
// otherwise the normal approximation with the tie correction.
func MannWhitneyU(x, y []float64) (u, p float64) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	type obs struct {
		v   float64
		inX bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Ranks, averaging ties; the tie term corrects the variance.
	var rx, tieTerm float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j+1 < len(all) && all[j+1].v == all[i].v {
			j++
		}
		rank := float64(i+j)/2 + 1
		if t := float64(j - i + 1); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		for k := i; k <= j; k++ {
			if all[k].inX {
				rx += rank
			}
		}
		i = j + 1
	}
	u = rx - float64(n1*(n1+1))/2
	if !ties && n1*n2 <= 400 {
		return u, exactP(u, n1, n2)
	}
	n := float64(n1 + n2)
	mean := float64(n1*n2) / 2
	variance := float64(n1*n2) / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return u, 1 // every value equal: no evidence of a difference
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance) // continuity correction
	if z < 0 {
		z = 0
	}
	return u, math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactP is the two-sided p-value of U from its exact null distribution: the
// number of ways to place n1 of n1+n2 ranks so that their U is each value,
// counted by dynamic programming.
func exactP(u float64, n1, n2 int) float64 {
	maxU := n1 * n2
	// ways[i][j][k]: arrangements of i x's and j y's with U = k.
	prev := make([][]float64, n2+1)
	for j := range prev {
		prev[j] = make([]float64, maxU+1)
		prev[j][0] = 1
	}
	for i := 1; i <= n1; i++ {
		cur := make([][]float64, n2+1)
		cur[0] = make([]float64, maxU+1)
		cur[0][0] = 1
		for j := 1; j <= n2; j++ {
			cur[j] = make([]float64, maxU+1)
			for k := 0; k <= i*j; k++ {
				// The largest value is an x (it beats all j y's) or a y.
				v := cur[j-1][k]
				if k >= j {
					v += prev[j][k-j]
				}
				cur[j][k] = v
			}
		}
		prev = cur
	}
	dist := prev[n2]
	var total float64
	for _, c := range dist {
		total += c
	}
	mean := float64(maxU) / 2
	d := math.Abs(u - mean)
	var tail float64
	for k, c := range dist {
		if math.Abs(float64(k)-mean) >= d-1e-9 {
			tail += c
		}
	}
	return math.Min(1, tail/total)
}

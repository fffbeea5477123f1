// Package runcmp compares two benchmark runs row by row, for `pollnet
// compare`. It reads result files, so it judges runs by what they recorded:
//
//   - The machines first: cpu, cores, kernel, Go version, GOMAXPROCS and
//     hostname are printed side by side, with a warning where they differ.
//   - Rows are matched by scenario name, path, port and knobs (knobs that set
//     only how long a run lasts are left out). A row is tested when both
//     sides hold at least two samples; rows without samples (skipped peers)
//     are listed apart, not tested.
//   - Each row's difference is the ratio of medians B/A with a bootstrap
//     percentile interval at level 1-alpha over the per-run samples (RatioCI;
//     a fixed seed per row, so the same files print the same interval).
//   - Whether a row changed is a two-sided Mann-Whitney U test on the
//     per-run samples, and the rows are one family: a row is flagged when its
//     Benjamini-Hochberg adjusted p is at most alpha, which bounds the
//     expected share of false flags among the flagged rows by alpha.
//   - With few runs no row can be flagged at all: the smallest p a
//     Mann-Whitney test can give is 2/C(n1+n2, n1) (MinP), 0.0079 with five
//     runs a side, while a change in one row of m needs p <= alpha/m. The
//     report computes this for the runs at hand and says so plainly, with the
//     number of runs that would do (ten a side reach 1.1e-5).
package runcmp

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pollnet/pollnet/internal/result"
)

// Options tune a comparison.
type Options struct {
	// Alpha is the false discovery rate Benjamini-Hochberg keeps across
	// rows, and 1-Alpha the level of each row's interval (0: 0.05).
	Alpha float64
	// Resamples is the number of bootstrap resamples per interval
	// (0: DefaultResamples).
	Resamples int
}

// DefaultAlpha is the false discovery rate used when none is given.
const DefaultAlpha = 0.05

// Report is the comparison of run A with run B.
type Report struct {
	Alpha     float64
	Resamples int
	A, B      *result.Run
	Machines  []MachineField // cpu, cores, kernel, go, gomaxprocs, hostname, commit
	Rows      []Row          // every row of either run, in A's order then B's
	// Tested is the number of rows in the Benjamini-Hochberg family.
	Tested int
}

// Row is one scenario found in both runs, or in one only.
type Row struct {
	Key    string // name/path/port knobs
	Group  string // name/path/port
	Knobs  map[string]any
	Metric string
	Unit   string
	A, B   result.Summary

	// Ratio is B's median over A's; 0 when it is undefined (a side without
	// samples, or A's median zero).
	Ratio float64
	// CILow and CIHigh bound Ratio at level 1-alpha (RatioCI); HasCI is
	// false where there is no interval.
	CILow, CIHigh float64
	HasCI         bool

	// Tested is whether the row was tested: both sides ran, with the same
	// metric and at least two samples each.
	Tested bool
	P      float64 // two-sided Mann-Whitney p; 1 when not tested
	MinP   float64 // the smallest p the test could give with these run counts
	Q      float64 // Benjamini-Hochberg adjusted p over the tested rows; 1 when not tested
	// Flagged is Q <= alpha: the difference is unlikely to be noise.
	Flagged bool

	// Skip says why a row was not compared: "only in A", "skipped in B:
	// reason", "no samples in A", "metric differs: ...". Empty when compared.
	Skip string
	// Notes qualify a compared row: provenance that differs between the
	// sides, or fewer than two samples on one.
	Notes []string
	// Independent is false when either side's file does not record how many
	// runs its samples come from: files from before repeats were independent
	// runs hold slices of one run, and the test overstates their evidence.
	Independent bool
}

// key identifies a scenario across runs: the same workload under the same
// knobs and path. The mode is part of the path already.
func key(s result.Scenario) string {
	knobs, _ := result.FormatKnobs(withoutRunLength(s.Knobs))
	return group(s) + " " + knobs
}

func group(s result.Scenario) string { return s.Name + "/" + s.Path + "/" + s.Port }

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

// Compare matches the scenarios of a and b and tests each pair.
func Compare(a, b *result.Run, opt Options) *Report {
	if opt.Alpha <= 0 || opt.Alpha >= 1 {
		opt.Alpha = DefaultAlpha
	}
	if opt.Resamples <= 0 {
		opt.Resamples = DefaultResamples
	}
	rep := &Report{Alpha: opt.Alpha, Resamples: opt.Resamples, A: a, B: b, Machines: machineFields(a.Machine, b.Machine)}

	bs := map[string]result.Scenario{}
	var order []string
	for _, s := range b.Scenarios {
		k := key(s)
		if _, dup := bs[k]; !dup {
			order = append(order, k)
			bs[k] = s
		}
	}
	seen := map[string]bool{}
	for _, sa := range a.Scenarios {
		k := key(sa)
		if seen[k] {
			continue
		}
		seen[k] = true
		sb, ok := bs[k]
		if !ok {
			rep.Rows = append(rep.Rows, oneSided(k, sa, "only in A"))
			continue
		}
		rep.Rows = append(rep.Rows, pair(k, sa, sb, opt))
	}
	for _, k := range order {
		if !seen[k] {
			rep.Rows = append(rep.Rows, oneSided(k, bs[k], "only in B"))
		}
	}

	// One family for the false discovery rate: every tested row.
	var idx []int
	var ps []float64
	for i, r := range rep.Rows {
		if r.Tested {
			idx = append(idx, i)
			ps = append(ps, r.P)
		}
	}
	rep.Tested = len(idx)
	q, flagged := BenjaminiHochberg(ps, opt.Alpha)
	for j, i := range idx {
		rep.Rows[i].Q = q[j]
		rep.Rows[i].Flagged = flagged[j]
	}
	return rep
}

func oneSided(k string, s result.Scenario, why string) Row {
	r := Row{Key: k, Group: group(s), Knobs: withoutRunLength(s.Knobs), Metric: s.Metric, Unit: s.Unit, P: 1, Q: 1, MinP: 1, Skip: why}
	if s.Skipped != "" {
		r.Skip += " (skipped: " + s.Skipped + ")"
	}
	return r
}

// pair compares one scenario present in both runs.
func pair(k string, sa, sb result.Scenario, opt Options) Row {
	r := Row{Key: k, Group: group(sa), Knobs: withoutRunLength(sa.Knobs), Metric: sa.Metric, Unit: sa.Unit, P: 1, Q: 1, MinP: 1}
	switch {
	case sa.Skipped != "":
		r.Skip = "skipped in A: " + sa.Skipped
	case sb.Skipped != "":
		r.Skip = "skipped in B: " + sb.Skipped
	case sa.Metric != sb.Metric:
		r.Skip = fmt.Sprintf("metric differs: %s in A, %s in B", sa.Metric, sb.Metric)
	case len(sa.Samples) == 0 && len(sb.Samples) == 0:
		r.Skip = "no samples on either side"
	case len(sa.Samples) == 0:
		r.Skip = "no samples in A"
	case len(sb.Samples) == 0:
		r.Skip = "no samples in B"
	}
	if r.Skip != "" {
		return r
	}
	r.A, _ = result.Summarise(sa.Samples)
	r.B, _ = result.Summarise(sb.Samples)
	if r.A.Median != 0 {
		r.Ratio = r.B.Median / r.A.Median
	} else {
		r.Notes = append(r.Notes, "A's median is 0: no ratio")
	}
	r.Independent = sa.Repeat > 0 && sb.Repeat > 0
	if sa.GOMAXPROCS > 0 && sb.GOMAXPROCS > 0 && sa.GOMAXPROCS != sb.GOMAXPROCS {
		r.Notes = append(r.Notes, fmt.Sprintf("gomaxprocs %d vs %d", sa.GOMAXPROCS, sb.GOMAXPROCS))
	}
	if len(sa.Roles) > 0 && len(sb.Roles) > 0 && !maps.Equal(sa.Roles, sb.Roles) {
		r.Notes = append(r.Notes, "roles on other cores")
	}
	if len(sa.Samples) < 2 || len(sb.Samples) < 2 {
		r.Notes = append(r.Notes, "fewer than two samples on a side: not tested")
		return r
	}
	r.Tested = true
	_, r.P = MannWhitneyU(sa.Samples, sb.Samples)
	r.MinP = MinP(len(sa.Samples), len(sb.Samples))
	if r.Ratio != 0 {
		r.CILow, r.CIHigh, r.HasCI = RatioCI(sa.Samples, sb.Samples, 1-opt.Alpha, opt.Resamples, keySeed(k))
	}
	return r
}

// Flagged lists the rows flagged as changed.
func (r *Report) Flagged() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Flagged {
			out = append(out, row)
		}
	}
	return out
}

// Power says whether the run counts at hand can flag anything.
type Power struct {
	// Bar is the p a change in one row alone needs: alpha over the rows
	// tested, the first step of Benjamini-Hochberg.
	Bar float64
	// SmallestP is the smallest p any tested row's run counts allow.
	SmallestP float64
	// Alone is the number of tested rows whose run counts reach Bar.
	Alone int
	// Together is how many rows must all reach SmallestP at once for any
	// to be flagged (0 when even that cannot flag: SmallestP > alpha).
	Together int
	// Suggest is the runs a side that would let a lone change be flagged,
	// at least ten.
	Suggest int
	// RunsA and RunsB are the fewest and most runs of the tested rows on
	// each side.
	RunsA, RunsB [2]int
}

// TooFew reports whether no row can be flagged on its own.
func (p Power) TooFew() bool { return p.Alone == 0 }

// Power computes what the run counts of the tested rows allow.
func (r *Report) Power() Power {
	pw := Power{SmallestP: 1, Bar: r.Alpha / float64(max(r.Tested, 1))}
	first := true
	for _, row := range r.Rows {
		if !row.Tested {
			continue
		}
		na, nb := row.A.N, row.B.N
		if first {
			pw.RunsA, pw.RunsB = [2]int{na, na}, [2]int{nb, nb}
			first = false
		}
		pw.RunsA = [2]int{min(pw.RunsA[0], na), max(pw.RunsA[1], na)}
		pw.RunsB = [2]int{min(pw.RunsB[0], nb), max(pw.RunsB[1], nb)}
		pw.SmallestP = min(pw.SmallestP, row.MinP)
		if row.MinP <= pw.Bar {
			pw.Alone++
		}
	}
	if pw.SmallestP <= r.Alpha && r.Tested > 0 {
		// k rows all at SmallestP pass the k-th step: SmallestP <= k/m alpha.
		k := 1
		for k < r.Tested && pw.SmallestP > float64(k)/float64(r.Tested)*r.Alpha {
			k++
		}
		pw.Together = k
	}
	pw.Suggest = max(10, RunsFor(r.Tested, r.Alpha))
	return pw
}

// notIndependent counts the tested rows whose samples may not be
// independent runs.
func (r *Report) notIndependent() int {
	return len(slices.DeleteFunc(slices.Clone(r.Rows), func(row Row) bool { return !row.Tested || row.Independent }))
}

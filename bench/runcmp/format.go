package runcmp

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/pollnet/pollnet/internal/result"
)

// Format prints the report: the two runs and their machines, with a warning
// where the machines differ; the alpha and the methods; one line per
// compared row; whether the run counts could flag anything at all; and the
// rows not compared, with the reason.
func Format(w io.Writer, aName, bName string, rep *Report) {
	fmt.Fprintf(w, "A: %s%s\n", aName, runLine(rep.A))
	fmt.Fprintf(w, "B: %s%s\n\n", bName, runLine(rep.B))
	formatMachines(w, rep)

	level := fmt.Sprintf("%.4g%%", 100*(1-rep.Alpha))
	fmt.Fprintf(w, "alpha %.4g: a row is flagged when its Benjamini-Hochberg adjusted p (q) is at most %.4g across the %d rows tested,\n"+
		"  so that at most %.4g%% of flagged rows are expected to be noise. p: two-sided Mann-Whitney U test on the per-run samples.\n"+
		"  B/A: ratio of medians, in brackets its %s bootstrap percentile interval (%d resamples of each side's runs, fixed seed).\n\n",
		rep.Alpha, rep.Alpha, rep.Tested, 100*rep.Alpha, level, rep.Resamples)

	labels, shared := rowLabels(rep.Rows)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tmetric\tA\tB\tB/A [%s]\tp\tq\tflag\tnote\t\n", level)
	for i, r := range rep.Rows {
		if r.Skip != "" {
			continue
		}
		ratio, p, q, flag := "-", "-", "-", ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.3fx", r.Ratio)
			if r.HasCI {
				ratio += fmt.Sprintf(" [%.3f, %.3f]", r.CILow, r.CIHigh)
			}
		}
		if r.Tested {
			p, q, flag = fmtP(r.P), fmtP(r.Q), "~"
			if r.Flagged {
				flag = "changed"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", labels[i], r.Metric, cell(r.A, r.Unit), cell(r.B, r.Unit),
			ratio, p, q, flag, strings.Join(r.Notes, "; "))
	}
	tw.Flush()
	if len(shared) > 0 {
		fmt.Fprintln(w, "knobs every row of a scenario shares (the rows above show only the knobs that vary):")
		for _, line := range shared {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	fmt.Fprintf(w, "~: no difference beyond noise at this alpha. A, B: median ± relative standard deviation (runs).\n")
	if n := len(rep.Flagged()); n > 0 || rep.Tested > 0 {
		fmt.Fprintf(w, "%d of %d rows tested are flagged as changed.\n", n, rep.Tested)
	}
	formatPower(w, rep)
	if n := rep.notIndependent(); n > 0 {
		fmt.Fprintf(w, "\nnote: %d rows come from a file that does not record repeats: their samples may be slices of one run,\n"+
			"  not independent runs, and then the test overstates the evidence. Rerun with a build that records them.\n", n)
	}

	var skipped []Row
	for _, r := range rep.Rows {
		if r.Skip != "" {
			skipped = append(skipped, r)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "\nnot compared (%d rows):\n", len(skipped))
		for _, r := range skipped {
			fmt.Fprintf(w, "  %s: %s\n", r.Key, r.Skip)
		}
	}
}

// rowLabels names the compared rows briefly: the scenario (name/path/port)
// and only the knobs that vary between its compared rows. The knobs that all
// its rows share are returned once per scenario, as "scenario: k=v;k=v".
func rowLabels(rows []Row) (labels []string, shared []string) {
	labels = make([]string, len(rows))
	var groups []string
	members := map[string][]int{}
	for i, r := range rows {
		if r.Skip != "" {
			continue
		}
		if _, ok := members[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		members[r.Group] = append(members[r.Group], i)
	}
	spell := func(v any) string { s, _ := result.FormatKnobs(map[string]any{"": v}); return s[1:] }
	for _, g := range groups {
		idx := members[g]
		common := map[string]any{}
		for k, v := range rows[idx[0]].Knobs {
			same := true
			for _, i := range idx[1:] {
				if w, ok := rows[i].Knobs[k]; !ok || spell(w) != spell(v) {
					same = false
					break
				}
			}
			if same {
				common[k] = v
			}
		}
		for _, i := range idx {
			vary := map[string]any{}
			for k, v := range rows[i].Knobs {
				if _, ok := common[k]; !ok {
					vary[k] = v
				}
			}
			labels[i] = g
			if s, _ := result.FormatKnobs(vary); s != "" {
				labels[i] += " " + s
			}
		}
		if s, _ := result.FormatKnobs(common); s != "" {
			shared = append(shared, g+": "+s)
		}
	}
	return labels, shared
}

func runLine(r *result.Run) string {
	var parts []string
	if r.Suite != "" {
		parts = append(parts, "suite "+r.Suite)
	}
	if !r.Started.IsZero() {
		parts = append(parts, "started "+r.Started.Format("2006-01-02 15:04:05 MST"))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func formatMachines(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "machine\tA\tB\t")
	var unknown []string
	for _, f := range rep.Machines {
		mark := ""
		switch {
		case f.Differs() && f.Name != "commit":
			mark = "  <- differs"
		case f.Unknown():
			unknown = append(unknown, f.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\t\n", f.Name, orUnrecorded(f.A), orUnrecorded(f.B), mark)
	}
	tw.Flush()
	if d := rep.MachineDiffs(); len(d) > 0 {
		fmt.Fprintf(w, "WARNING: the runs were made on different machines (%s differ%s). Figures from unlike machines differ\n"+
			"  for reasons that are not the code: flagged rows may be the machine's doing. Compare runs from one machine.\n",
			strings.Join(d, ", "), plural(len(d) == 1, "s", ""))
	}
	if len(unknown) > 0 {
		fmt.Fprintf(w, "note: only one run records %s: whether the machines agree there cannot be told.\n", strings.Join(unknown, ", "))
	}
	for _, f := range rep.Machines {
		if f.Name != "commit" || f.A == "" || f.B == "" {
			continue
		}
		switch {
		case f.A != f.B:
			fmt.Fprintf(w, "The builds differ (%s, %s): that is what this comparison measures.\n", f.A, f.B)
		case strings.HasSuffix(f.A, "-dirty"):
			fmt.Fprintf(w, "Both builds come from changed trees on %s: the commit does not say whether the code differs.\n", f.A)
		default:
			fmt.Fprintf(w, "Same build (%s) on both sides: a flagged row is the machine or noise, not the code.\n", f.A)
		}
	}
	for _, side := range []struct {
		name string
		run  *result.Run
	}{{"A", rep.A}, {"B", rep.B}} {
		for _, warn := range side.run.Machine.Warnings {
			fmt.Fprintf(w, "%s's run warned: %s\n", side.name, warn)
		}
	}
	fmt.Fprintln(w)
}

// formatPower says plainly whether the run counts could flag anything.
func formatPower(w io.Writer, rep *Report) {
	if rep.Tested == 0 {
		fmt.Fprintf(w, "\nNothing was tested: no row has at least two runs on both sides. Run both with --repeat 10.\n")
		return
	}
	pw := rep.Power()
	runs := runCounts(pw)
	suggest := fmt.Sprintf("Run both sides with --repeat %d: the smallest p is then %.2g.", pw.Suggest, MinP(pw.Suggest, pw.Suggest))
	switch {
	case pw.TooFew() && pw.Together == 0:
		fmt.Fprintf(w, "\nToo few runs to flag anything: with %s the smallest p a two-sided Mann-Whitney test can give is %.2g,\n"+
			"  above alpha %.4g itself, so no row can be flagged whatever the data.\n  %s\n", runs, pw.SmallestP, rep.Alpha, suggest)
	case pw.TooFew():
		fmt.Fprintf(w, "\nToo few runs to flag a change in one row: with %s the smallest p a two-sided Mann-Whitney test can give\n"+
			"  is %.2g, and across %d rows Benjamini-Hochberg needs p <= %.2g to flag a row alone. Only a change that shows\n"+
			"  in at least %d rows at once, each with every run of B beyond every run of A, could be flagged.\n  %s\n",
			runs, pw.SmallestP, rep.Tested, pw.Bar, pw.Together, suggest)
	case pw.Alone < rep.Tested:
		fmt.Fprintf(w, "\n%d of %d rows tested have too few runs to be flagged alone (p must reach %.2g).\n  %s\n",
			rep.Tested-pw.Alone, rep.Tested, pw.Bar, suggest)
	}
}

func runCounts(pw Power) string {
	side := func(r [2]int) string {
		if r[0] == r[1] {
			return fmt.Sprint(r[0])
		}
		return fmt.Sprintf("%d to %d", r[0], r[1])
	}
	if pw.RunsA == pw.RunsB {
		return side(pw.RunsA) + " runs a side"
	}
	return fmt.Sprintf("%s runs in A and %s in B", side(pw.RunsA), side(pw.RunsB))
}

func fmtP(p float64) string {
	if p < 0.001 {
		return fmt.Sprintf("%.1e", p)
	}
	return fmt.Sprintf("%.3f", p)
}

func orUnrecorded(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}

func plural(one bool, a, b string) string {
	if one {
		return a
	}
	return b
}

func cell(s result.Summary, unit string) string {
	if s.N == 0 {
		return "-"
	}
	spread := ""
	if s.Mean != 0 && s.N > 1 {
		spread = fmt.Sprintf(" ±%.1f%%", 100*s.Stddev/math.Abs(s.Mean))
	}
	return humanize(s.Median, unit) + spread + fmt.Sprintf(" (%d)", s.N)
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

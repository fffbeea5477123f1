package chart

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"

	"github.com/pollnet/pollnet/internal/result"
)

// maxBars caps the bars of one workload chart at what stays legible at
// 500 px high.
const maxBars = 16

// workloadCharts draws one chart per workload: every path that did the
// same work, side by side, however many sizes each path was measured at.
// With idle set it draws the idle cost (the "idle" scenarios) and nothing
// else; without, every workload run flat out. Scenarios at an offered load
// have their own charts, since their throughput is the offered rate.
func workloadCharts(run *result.Run, idle bool) ([]*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		return (s.Name == "idle") == idle && !offeredLoad(s) && finite(s.Median) && s.Median >= 0
	})
	var figs []*figure
	ws := workloads(scs)
	// Lead with the work where the device under test sets the figure
	// beside its peers (the null port beside testpmd, the socket benches
	// beside the kernel and gVisor); the wire pipeline's harness-bound
	// rates follow.
	slices.SortStableFunc(ws, func(a, b *workload) int { return leadRank(a) - leadRank(b) })
	for _, w := range ws {
		fig, err := workloadChart(w)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.title(), err)
		}
		if fig != nil {
			figs = append(figs, fig)
		}
	}
	return figs, nil
}

// workloadChart draws one workload: a bar per scenario at its median, in
// its path's colour, with a whisker from the smallest to the largest run.
func workloadChart(w *workload) (*figure, error) {
	scs := w.scs
	if !hasPositive(scs) {
		return nil, nil
	}
	var notes []string
	if len(scs) > maxBars {
		notes = append(notes, fmt.Sprintf("first %d of %d scenarios shown", maxBars, len(scs)))
		scs = scs[:maxBars]
	}
	omit := []string{}
	if w.knob != "" {
		omit = append(omit, w.knob)
	}
	lab := newLabeler(scs, omit...)
	top := 0.0
	for _, s := range scs {
		_, _, hi := spread(s, 1)
		top = math.Max(top, hi)
	}
	sc := scaleFor(w.unit, top)
	var pc pathColorer
	b := bars{groups: []string{w.metric}, horizontal: true, format: short3}
	vals, lo, hi := nanSlice(len(scs)), nanSlice(len(scs)), nanSlice(len(scs))
	limited := 0
	for i, s := range scs {
		label := lab.label(s)
		if busy, ok := harnessLimited(s); ok && isRate(s) && !offeredLoad(s) {
			label += fmt.Sprintf(" (busy %.2f)", busy)
			limited++
		}
		b.cats = append(b.cats, label)
		b.catColors = append(b.catColors, pc.color(s.Path))
		vals[i], lo[i], hi[i] = spread(s, 1/sc.div)
	}
	b.vals, b.lo, b.hi = [][]float64{vals}, [][]float64{lo}, [][]float64{hi}
	p := newPlot()
	addGrid(p, false, true)
	var leg plot.Legend // the category labels name each bar's path
	if err := b.addTo(p, &leg, dataHeight()); err != nil {
		return nil, err
	}
	p.X.Label.Text = axisLabel(scs[0], sc)
	p.X.Max *= 1.15 // room for the value labels
	better := "higher is better"
	if !isRate(scs[0]) {
		better = "lower is better"
	}
	subtitle := fmt.Sprintf("%s per bar, whiskers span min..max; %s", medianNote(scs), better)
	if limited > 0 {
		notes = append(notes, "busy < 0.9: the device under test idled, so the harness set that rate")
	}
	if len(notes) > 0 {
		subtitle += "\n" + strings.Join(notes, "; ")
	}
	return &figure{
		name:     w.fileName(),
		title:    w.title(),
		subtitle: subtitle,
		about:    workloadSentence(w, scs, lab),
		panels:   []*plot.Plot{p},
		legend:   newLegend(),
	}, nil
}

func hasPositive(scs []*result.Scenario) bool {
	for _, s := range scs {
		if s.Median > 0 && finite(s.Median) {
			return true
		}
	}
	return false
}

// medianNote says what a bar is: "median of 5 runs", "median of 3–5
// samples (≈1 s each)" for files from before repeats.
func medianNote(scs []*result.Scenario) string {
	lo, hi, repeats := math.MaxInt, 0, true
	for _, s := range scs {
		lo, hi = min(lo, len(s.Samples)), max(hi, len(s.Samples))
		repeats = repeats && s.Repeat > 0
	}
	n := strconv.Itoa(hi)
	if lo != hi {
		n = fmt.Sprintf("%d–%d", lo, hi)
	}
	switch {
	case hi == 0:
		return "one figure"
	case repeats:
		return "median of " + n + " runs"
	}
	return "median of " + n + " samples (≈1 s each)"
}

// workloadTitles give the work a scenario name stands for.
var workloadTitles = map[string]string{
	"pps":          "Forwarding rate",
	"zero_loss":    "Zero-loss forwarding rate",
	"l2_fwd":       "Forwarding rate",
	"udp_rr":       "UDP request/response",
	"udp_stream":   "UDP stream, datagrams read",
	"udp_pps":      "UDP datagrams per second",
	"tcp_stream":   "TCP stream goodput",
	"connect_rate": "TCP connections per second",
	"idle":         "Idle cost: CPU burnt with no traffic",
}

// title names the workload: "Forwarding rate (pps), port null, 64 B frames".
func (w *workload) title() string {
	t := w.name
	if d, ok := workloadTitles[w.name]; ok {
		t = d + " (" + w.name + ")"
	}
	if w.port != "" {
		t += ", port " + w.port
	}
	if st := w.sizeText(); st != "" {
		t += ", " + st
	}
	return t
}

// fileName is "paths-<name>[-<port>][-<size>B|-payload<n>B]", reduced to
// characters every file system and URL takes.
func (w *workload) fileName() string {
	parts := []string{"paths", w.name}
	if w.name == "idle" {
		parts = []string{"idle"}
	}
	if w.port != "" {
		parts = append(parts, w.port)
	}
	n := strconv.FormatFloat(w.size, 'f', -1, 64)
	switch w.knob {
	case "size":
		parts = append(parts, n+"B")
	case "payload":
		parts = append(parts, "payload"+n+"B")
	}
	return fileSafe(strings.Join(parts, "-"))
}

// fileSafe keeps letters, digits, '-', '_' and '.', and turns the rest
// into '-'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}

// verb says what a path did in a workload, around a value: "forwards 64 B
// frames at 11.6 Mpps".
func verb(w *workload, s *result.Scenario, value string) string {
	size := w.sizeText()
	switch w.name {
	case "pps", "l2_fwd":
		if size == "" {
			size = "frames"
		}
		return "forwards " + size + " at " + value
	case "zero_loss":
		if size == "" {
			size = "frames"
		}
		return "forwards " + size + " without loss at up to " + value
	case "udp_rr":
		return "completes " + value + withSize(size)
	case "udp_stream", "udp_pps":
		return "reads " + value + withSize(size)
	case "tcp_stream":
		if s.Metric == "rx_bps" {
			return "reads " + value + " of goodput"
		}
		return "sends, counted at the sender, " + value
	case "connect_rate":
		return "opens " + value
	case "idle":
		return "burns " + value + " with no traffic"
	}
	return "measures " + value + " of " + s.Metric + withSize(size)
}

func withSize(size string) string {
	if size == "" {
		return ""
	}
	return " with " + size
}

// figureText writes a scenario's median in scale sc with three
// significant digits, followed by its spread: "11.6 Mpps (runs
// 11.2..11.7)".
func figureText(s *result.Scenario, sc scale) string {
	v, spr := figureParts(s, sc)
	if spr == "" {
		return v
	}
	return v + " (" + spr + ")"
}

// figureParts returns a scenario's median ("11.6 Mpps") and its spread
// ("runs 11.2..11.7", or "" with fewer than two).
func figureParts(s *result.Scenario, sc scale) (string, string) {
	v := sc.format3(s.Median)
	if len(s.Samples) < 2 {
		return v, ""
	}
	_, lo, hi := spread(s, 1/sc.div)
	return v, fmt.Sprintf("%s %s..%s", runsWord(s), short3(lo), short3(hi))
}

// inParens writes a figure for use inside parentheses: "8.98 Mpps, runs
// 8.1..9.2".
func inParens(s *result.Scenario, sc scale) string {
	v, spr := figureParts(s, sc)
	if spr == "" {
		return v
	}
	return v + ", " + spr
}

// format3 writes v in the scale with three significant digits.
func (sc scale) format3(v float64) string {
	s := short3(v / sc.div)
	if sc.unit == "cores" {
		s = strconv.FormatFloat(v/sc.div, 'f', 2, 64) // "1.00 cores", not "1 cores"
	}
	if sc.unit == "" {
		return s
	}
	return s + " " + sc.unit
}

// maxClauses caps the sentence under a workload chart.
const maxClauses = 4

// workloadSentence says what the chart shows, in figures taken from it:
// what pollnet (pollnet-pmd first) reached, with the spread of its runs,
// and how that compares with each other path that did the same work, as
// a ratio. A throughput ratio is quoted only where both sides kept their
// device under test busy (dut_busy at least 0.9); otherwise the sentence
// says the harness set the rate.
func workloadSentence(w *workload, scs []*result.Scenario, lab *labeler) string {
	if len(scs) == 0 {
		return ""
	}
	subject := scs[0].Path
	for _, pref := range []func(string) bool{
		func(p string) bool { return p == "pollnet-pmd" },
		isPollnet,
	} {
		if i := indexFunc(scs, func(s *result.Scenario) bool { return pref(s.Path) }); i >= 0 {
			subject = scs[i].Path
			break
		}
	}
	top := 0.0
	for _, s := range scs {
		top = math.Max(top, s.Median)
	}
	sc := scaleFor(w.unit, top)
	var paths []string // every path in chart order
	for _, s := range scs {
		if !slices.Contains(paths, s.Path) {
			paths = append(paths, s.Path)
		}
	}
	var clauses []string
	shown := map[string]bool{subject: true} // paths whose figure the sentence gives
	subjects := 0
	for _, a := range scs {
		if a.Path != subject {
			continue
		}
		subjects++
		if subjects > maxClauses {
			clauses = append(clauses, fmt.Sprintf("%d more %s variants in the chart", countPath(scs, subject)-maxClauses, subject))
			break
		}
		name := a.Path
		if parts := variant(a, scs, lab); len(parts) > 0 {
			name += " (" + strings.Join(parts, " ") + ")"
		}
		c := name + " " + verb(w, a, figureText(a, sc))
		if busy, ok := harnessLimited(a); ok && isRate(a) {
			c += fmt.Sprintf("; its device under test was busy %.0f%% of the time (dut_busy %.2f < %.1f), so the harness, not the device, set this rate and no ratio is quoted",
				100*busy, busy, busyThreshold)
			clauses = append(clauses, c)
			continue
		}
		var cmp []string
		for _, path := range paths {
			if path == subject {
				continue
			}
			var other *result.Scenario
			var diff []string
			for _, b := range scs {
				if b.Path != path {
					continue
				}
				d := differs(a, b)
				if len(d) == 0 {
					other, diff = b, nil
					break
				}
				if diff == nil {
					diff = d
				}
			}
			switch {
			case other == nil && diff != nil:
				cmp = append(cmp, fmt.Sprintf("not set against %s, whose work differs (%s)", path, strings.Join(diff, ", ")))
			case other == nil:
			case isRate(other) && func() bool { _, l := harnessLimited(other); return l }():
				busy, _ := harnessLimited(other)
				cmp = append(cmp, fmt.Sprintf("%s reached %s but was harness-limited (dut_busy %.2f < %.1f), so no ratio is quoted",
					path, figureText(other, sc), busy, busyThreshold))
				shown[path] = true
			default:
				r := ratioText(a.Median, other.Median)
				if r == "—" {
					cmp = append(cmp, fmt.Sprintf("against %s at %s", path, figureText(other, sc)))
				} else {
					cmp = append(cmp, fmt.Sprintf("%s %s (%s)", r, path, inParens(other, sc)))
				}
				shown[path] = true
			}
		}
		if len(cmp) > 0 {
			c += ", " + strings.Join(cmp, ", ")
		}
		clauses = append(clauses, c)
	}
	// Paths the comparisons left out still get their figure.
	for _, path := range paths {
		if !shown[path] {
			o := scs[indexFunc(scs, func(s *result.Scenario) bool { return s.Path == path })]
			c := path + " " + verb(w, o, figureText(o, sc))
			if busy, ok := harnessLimited(o); ok && isRate(o) {
				c += fmt.Sprintf(", also harness-limited (dut_busy %.2f)", busy)
			}
			clauses = append(clauses, c)
		}
	}
	return strings.Join(clauses, "; ") + "."
}

// variant is what sets a scenario apart from the others of its path in
// the chart (copy=true, queues=2), or nothing when its path has one.
func variant(a *result.Scenario, scs []*result.Scenario, lab *labeler) []string {
	if countPath(scs, a.Path) < 2 {
		return nil
	}
	var out []string
	for _, p := range lab.parts(a)[1:] {
		if strings.HasPrefix(p, "port ") && !portsVary(scs, a.Path) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func portsVary(scs []*result.Scenario, path string) bool {
	port := ""
	for _, s := range scs {
		if s.Path != path {
			continue
		}
		if port != "" && s.Port != port {
			return true
		}
		port = s.Port
	}
	return false
}

func indexFunc(scs []*result.Scenario, f func(*result.Scenario) bool) int {
	return slices.IndexFunc(scs, f)
}

func countPath(scs []*result.Scenario, path string) int {
	n := 0
	for _, s := range scs {
		if s.Path == path {
			n++
		}
	}
	return n
}

// leadRank orders workload charts on a run's page.
func leadRank(w *workload) int {
	switch {
	case w.name == "pps" && w.port == "null":
		return 0
	case w.name == "zero_loss":
		return 1
	case w.name == "udp_rr", w.name == "udp_stream":
		return 2
	case w.name == "tcp_stream", w.name == "connect_rate":
		return 3
	}
	return 4
}

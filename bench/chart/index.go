package chart

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pollnet/pollnet/internal/result"
)

// IndexFile is the page WriteIndex writes.
const IndexFile = "index.html"

// keyCounters are the counters shown in the scenario table because they
// explain a low figure: drops, missed frames, softirq squeezes, interrupts.
// The rest are one click away.
var keyCounters = []string{
	"rx_missed", "rx_nombuf", "dropped", "fwd_tx_dropped", "sink_lost",
	"time_squeeze", "interrupts",
}

// WriteIndex writes dir/index.html: the run's command, machine and start
// time, then the charts (as returned by Render) embedded as SVG with links
// to their PNGs, each with a sentence computed from the run saying what it
// shows, then ratios between paths that did the same work, then a table of
// every scenario. The page has no external assets, so the directory can be
// copied or attached as it is. All text goes through html/template, so a
// scenario name cannot inject markup.
func WriteIndex(run *result.Run, dir string, charts []string) error {
	if run == nil {
		return fmt.Errorf("chart: no run to index")
	}
	page, err := buildPage(run, charts)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := indexTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("chart: index: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

type indexPage struct {
	Title   string
	Suite   string
	Command string
	Machine string
	Commit  string
	Started string
	Lead    []string // run-level sentences: spread, harness limits
	Rows    []scenarioRow
	Ratios  []ratioRow
	Charts  []chartRef
	NumRan  int
	NumSkip int
}

type kv struct{ K, V string }

type scenarioRow struct {
	N        int
	Name     string
	Path     string
	Port     string
	Knobs    string
	Metric   string
	Median   string
	Spread   string // "min..max over n runs", p99 where there is one
	Busy     string // dut_busy, "" when not recorded
	Limited  bool   // dut_busy below busyThreshold
	Samples  int
	CPU      string
	Key      []kv // key counters
	Counters []kv // all counters
	Extra    []kv
	Skipped  string
}

type ratioRow struct {
	Name      string
	Knobs     string
	A, B      string // paths, with their ports where these differ
	Metric    string
	MedianA   string
	MedianB   string
	Tput      string // A/B of the medians; "" when withheld
	Note      string // why Tput is withheld
	CPUA      string
	CPUB      string
	CPU       string // A/B of CPU per packet
	CPUSource string
}

type chartRef struct {
	Title string
	About string // what the chart shows, computed from the run
	Img   string // what <img> shows: the SVG where there is one
	PNG   string // link target; "" when no PNG was written
}

func buildPage(run *result.Run, charts []string) (indexPage, error) {
	pg := indexPage{
		Suite:   run.Suite,
		Command: run.Command,
		Machine: machineLine(run.Machine),
		Commit:  run.Machine.Commit,
	}
	pg.Title = "pollnet bench"
	if run.Suite != "" {
		pg.Title += " " + run.Suite
	}
	if !run.Started.IsZero() {
		pg.Started = run.Started.UTC().Format("2006-01-02 15:04:05 UTC")
		pg.Title += " — " + run.Started.UTC().Format("2006-01-02 15:04")
	}
	for i := range run.Scenarios {
		s := &run.Scenarios[i]
		pg.Rows = append(pg.Rows, rowOf(i+1, s))
		if ran(s) {
			pg.NumRan++
		} else {
			pg.NumSkip++
		}
	}
	for _, l := range []string{spreadSummary(run), harnessSummary(run)} {
		if l != "" {
			pg.Lead = append(pg.Lead, l)
		}
	}
	pg.Ratios = ratios(run)
	figs, err := figures(run)
	if err != nil {
		return pg, err
	}
	pg.Charts = chartRefs(charts, figs)
	return pg, nil
}

func machineLine(m result.Machine) string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	add(m.CPU)
	if m.Cores > 0 {
		c := fmt.Sprintf("%d cores", m.Cores)
		if m.GOMAXPROCS > 0 && m.GOMAXPROCS != m.Cores {
			c += fmt.Sprintf(" (GOMAXPROCS %d)", m.GOMAXPROCS)
		}
		add(c)
	}
	add(strings.Trim(m.OS+"/"+m.Arch, "/"))
	if m.Kernel != "" {
		add("kernel " + m.Kernel)
	}
	add(m.Go)
	if m.Hostname != "" {
		add("host " + m.Hostname)
	}
	if len(parts) == 0 {
		return "not recorded"
	}
	return strings.Join(parts, " · ")
}

func rowOf(n int, s *result.Scenario) scenarioRow {
	knobs, err := result.FormatKnobs(s.Knobs)
	if err != nil {
		knobs = fmt.Sprint(s.Knobs)
	}
	sc := scaleFor(s.Unit, s.Median)
	r := scenarioRow{
		N: n, Name: s.Name, Path: s.Path, Port: s.Port,
		Knobs:   strings.ReplaceAll(knobs, ";", " "),
		Metric:  s.Metric,
		Samples: len(s.Samples),
		Skipped: s.Skipped,
	}
	if s.Unit != "" {
		r.Metric += " (" + s.Unit + ")"
	}
	if ran(s) {
		r.Median = sc.format(s.Median)
		if len(s.Samples) > 1 {
			_, lo, hi := spread(s, 1/sc.div)
			r.Spread = fmt.Sprintf("%s..%s over %d %s", short3(lo), short3(hi), len(s.Samples), runsWord(s))
		}
		if s.P99 != nil {
			r.Spread = strings.TrimPrefix(r.Spread+"; p99 "+sc.format(*s.P99), "; ")
		}
		r.CPU = strconv.FormatFloat(s.CPUSeconds, 'f', 2, 64)
		if s.DUTBusy != nil {
			r.Busy = strconv.FormatFloat(*s.DUTBusy, 'f', 2, 64)
			_, r.Limited = harnessLimited(s)
		}
	}
	for _, k := range keyCounters {
		if v, ok := s.Counters[k]; ok {
			r.Key = append(r.Key, kv{k, groupDigits(v)})
		}
	}
	for _, k := range sortedKeys(s.Counters) {
		r.Counters = append(r.Counters, kv{k, groupDigits(s.Counters[k])})
	}
	for _, k := range sortedKeys(s.Extra) {
		r.Extra = append(r.Extra, kv{k, formatExtra(s.Extra[k])})
	}
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// formatExtra writes whole numbers in full with grouped digits (latency in
// ns runs to millions, which %g would write as 4.2e+06) and fractions with
// six significant digits.
func formatExtra(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		if v < 0 {
			return "-" + groupDigits(uint64(-v))
		}
		return groupDigits(uint64(v))
	}
	s := strconv.FormatFloat(v, 'g', 6, 64)
	if strings.ContainsRune(s, 'e') && finite(v) {
		s = strconv.FormatFloat(v, 'f', 3, 64)
	}
	return s
}

// groupDigits writes 1234567 as 1,234,567: counters run to billions.
func groupDigits(v uint64) string {
	s := strconv.FormatUint(v, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// comparable reports whether a and b are the same work under two paths:
// one workload (scenario name, metric, frame size or payload, and port
// where pollnet ran it on two) and every knob both have agrees, but for
// the bookkeeping ones. Knobs only one path has (napi's budget, gVisor's
// link) do not prevent the match.
func comparable(a, b *result.Scenario, keys map[*result.Scenario]string) bool {
	if a.Path == b.Path || a.Metric != b.Metric || a.Unit != b.Unit {
		return false
	}
	ka, okA := keys[a]
	kb, okB := keys[b]
	if !okA || !okB || ka != kb {
		return false
	}
	return len(differs(a, b)) == 0
}

// ratios pairs every scenario with each later one that did the same work
// under another path, e.g. pollnet-pmd against pollnet-napi at each frame
// size, or pollnet against the kernel on one UDP payload. A throughput
// ratio is withheld where either side's device under test was busy less
// than busyThreshold of the time: the harness set that rate.
func ratios(run *result.Run) []ratioRow {
	keys := workloadKeys(run)
	type pair struct{ a, b *result.Scenario }
	var pairs []pair
	for i := range run.Scenarios {
		a := &run.Scenarios[i]
		if !ran(a) || !measured(a) {
			continue
		}
		for j := i + 1; j < len(run.Scenarios); j++ {
			b := &run.Scenarios[j]
			if ran(b) && measured(b) && comparable(a, b, keys) {
				pairs = append(pairs, pair{a, b})
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	// Rows of one name and one pair of paths together (pmd/napi at every
	// size, then pmd/kernel), each group in run order.
	order := map[string]int{}
	group := func(p pair) int {
		k := p.a.Name + "\x00" + p.a.Path + "\x00" + p.b.Path
		if _, ok := order[k]; !ok {
			order[k] = len(order)
		}
		return order[k]
	}
	for _, p := range pairs {
		group(p)
	}
	slices.SortStableFunc(pairs, func(x, y pair) int { return group(x) - group(y) })
	// Show the shared knobs that change from pair to pair within a
	// scenario name (frame size, typically); the constant ones are in the
	// scenario table.
	shared := func(p pair) map[string]string {
		m := map[string]string{}
		for k, va := range p.a.Knobs {
			if _, ok := p.b.Knobs[k]; ok && !bookkeeping[k] {
				m[k] = formatKnob(va)
			}
		}
		return m
	}
	vary := map[string]map[string]bool{} // name → knob keys
	first := map[string]map[string]string{}
	for _, p := range pairs {
		m, name := shared(p), p.a.Name
		if first[name] == nil {
			first[name], vary[name] = m, map[string]bool{}
		}
		for k, v := range m {
			if w, ok := first[name][k]; !ok || w != v {
				vary[name][k] = true
			}
		}
		for k := range first[name] {
			if _, ok := m[k]; !ok {
				vary[name][k] = true
			}
		}
	}
	var rows []ratioRow
	for _, p := range pairs {
		m := shared(p)
		keys := sortedKeys(vary[p.a.Name])
		sortKnobKeys(keys)
		var kn []string
		for _, k := range keys {
			if _, ok := m[k]; ok {
				kn = append(kn, knobPart(k, p.a.Knobs[k]))
			}
		}
		sc := scaleFor(p.a.Unit, math.Max(p.a.Median, p.b.Median))
		r := ratioRow{
			Name: p.a.Name, Knobs: strings.Join(kn, " "), A: p.a.Path, B: p.b.Path,
			Metric: p.a.Metric, MedianA: sc.format(p.a.Median), MedianB: sc.format(p.b.Median),
			Tput: ratioText(p.a.Median, p.b.Median),
		}
		if p.a.Port != p.b.Port {
			r.A += " (" + p.a.Port + ")"
			r.B += " (" + p.b.Port + ")"
		}
		if r.Knobs == "" {
			r.Knobs = "—"
		}
		if isRate(p.a) && !offeredLoad(p.a) {
			var busy []string
			for _, s := range []*result.Scenario{p.a, p.b} {
				if v, ok := harnessLimited(s); ok {
					busy = append(busy, fmt.Sprintf("%s %.2f", s.Path, v))
				}
			}
			if len(busy) > 0 {
				r.Tput = ""
				r.Note = fmt.Sprintf("harness-limited: dut_busy %s < %.1f", strings.Join(busy, ", "), busyThreshold)
			}
		}
		ca, ka, okA := cpuPerPacket(p.a)
		cb, kb, okB := cpuPerPacket(p.b)
		if okA && okB && ka == kb {
			r.CPUA, r.CPUB = formatNs(ca), formatNs(cb)
			r.CPU, r.CPUSource = ratioText(ca, cb), ka
		} else {
			r.CPU = "—"
		}
		rows = append(rows, r)
	}
	return rows
}

func ratioText(a, b float64) string {
	if !(b > 0) || !finite(a/b) {
		return "—"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

// chartRefs pairs each chart's SVG with its PNG, in the order given, and
// takes its title and sentence from the figure of that name; a file no
// figure names is shown under its file name.
func chartRefs(files []string, figs []*figure) []chartRef {
	byName := map[string]*figure{}
	for _, f := range figs {
		byName[f.name] = f
	}
	var refs []chartRef
	seen := map[string]bool{}
	for _, f := range files {
		ext := strings.ToLower(filepath.Ext(f))
		stem := strings.TrimSuffix(f, filepath.Ext(f))
		if (ext != ".svg" && ext != ".png") || seen[stem] {
			continue
		}
		seen[stem] = true
		ref := chartRef{Title: stem}
		if fig, ok := byName[stem]; ok {
			ref.Title, ref.About = fig.title, fig.about
		}
		if slices.Contains(files, stem+".svg") {
			ref.Img = stem + ".svg"
		} else {
			ref.Img = stem + ".png"
		}
		if slices.Contains(files, stem+".png") {
			ref.PNG = stem + ".png"
		}
		refs = append(refs, ref)
	}
	return refs
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Arial, sans-serif; color: #222; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
dl.run dt { color: #666; }
dl.run dd { margin: 0; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f4f4f4; padding: .1em .3em; border-radius: 3px; overflow-wrap: anywhere; }
p.lead { max-width: 60em; }
figure { margin: 1em 0 2.2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { max-width: 800px; font-size: 13.5px; }
figcaption .title { font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; table-layout: fixed; min-width: 60em; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .3em .5em; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f6f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.knobs { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
tr.skipped td { color: #777; background: #fffbe8; }
.skip { color: #8a5a00; font-weight: 600; }
.limited { color: #a33; font-weight: 600; }
.counters span { display: inline-block; margin-right: .8em; }
details summary { cursor: pointer; color: #0645ad; }
details table { margin-top: .3em; font-size: 12px; min-width: 0; table-layout: auto; }
.note { color: #666; font-size: 13px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<dl class="run">
<dt>Command</dt><dd><code>{{if .Command}}{{.Command}}{{else}}not recorded{{end}}</code></dd>
<dt>Machine</dt><dd>{{.Machine}}</dd>
{{if .Commit}}<dt>Commit</dt><dd><code>{{.Commit}}</code></dd>
{{end}}<dt>Started</dt><dd>{{if .Started}}{{.Started}}{{else}}not recorded{{end}}</dd>
<dt>Scenarios</dt><dd>{{.NumRan}} ran{{if .NumSkip}}, {{.NumSkip}} skipped{{end}}</dd>
</dl>
{{range .Lead}}<p class="lead">{{.}}</p>
{{end}}
<h2>Charts</h2>
{{range .Charts}}<figure>
<img src="{{.Img}}" alt="{{.Title}}" width="800" height="500">
<figcaption><span class="title">{{.Title}}.</span> {{.About}}{{if .PNG}} <a href="{{.PNG}}">PNG</a>{{end}}</figcaption>
</figure>
{{else}}<p class="note">No charts: no scenario produced data to draw.</p>
{{end}}
{{if .Ratios}}<h2>Paths compared</h2>
<p class="note">The same work under two paths, measured in this run. A ratio above 1 means path A is higher: better for a rate, worse for CPU or latency. Throughput ratios are withheld where a device under test was busy less than 90% of the time (dut_busy &lt; 0.9): the harness set that rate.</p>
<div class="scroll"><table>
<colgroup><col style="width:9%"><col style="width:11%"><col style="width:13%"><col style="width:13%"><col style="width:11%"><col style="width:9%"><col style="width:9%"><col style="width:9%"><col style="width:6%"><col style="width:6%"><col style="width:7%"></colgroup>
<thead><tr><th>Scenario</th><th>Knobs</th><th>Path A</th><th>Path B</th><th>Metric</th><th>A median</th><th>B median</th><th>A/B</th><th>CPU/packet A</th><th>CPU/packet B</th><th>CPU/packet A/B</th></tr></thead>
<tbody>
{{range .Ratios}}<tr><td>{{.Name}}</td><td>{{.Knobs}}</td><td>{{.A}}</td><td>{{.B}}</td><td>{{.Metric}}</td>
<td class="num">{{.MedianA}}</td><td class="num">{{.MedianB}}</td><td class="num">{{if .Tput}}<strong>{{.Tput}}</strong>{{else}}<span class="limited">{{.Note}}</span>{{end}}</td>
<td class="num">{{.CPUA}}</td><td class="num">{{.CPUB}}</td><td class="num"{{if .CPUSource}} title="from {{.CPUSource}}"{{end}}><strong>{{.CPU}}</strong></td></tr>
{{end}}</tbody>
</table></div>
{{end}}
<h2>Every scenario</h2>
{{if .Rows}}<div class="scroll"><table>
<colgroup><col style="width:3%"><col style="width:8%"><col style="width:9%"><col style="width:20%"><col style="width:10%"><col style="width:8%"><col style="width:10%"><col style="width:5%"><col style="width:5%"><col style="width:22%"></colgroup>
<thead><tr><th>#</th><th>Scenario</th><th>Path · port</th><th>Knobs</th><th>Metric</th><th>Median</th><th>Spread</th><th>DUT busy</th><th>CPU s</th><th>Counters</th></tr></thead>
<tbody>
{{range .Rows}}{{if .Skipped}}<tr class="skipped">
<td class="num">{{.N}}</td><td>{{.Name}}</td><td>{{.Path}}{{if .Port}} · {{.Port}}{{end}}</td><td class="knobs">{{.Knobs}}</td><td>{{.Metric}}</td>
<td colspan="5"><span class="skip">Skipped:</span> {{.Skipped}}</td>
</tr>
{{else}}<tr>
<td class="num">{{.N}}</td><td>{{.Name}}</td><td>{{.Path}}{{if .Port}} · {{.Port}}{{end}}</td><td class="knobs">{{.Knobs}}</td><td>{{.Metric}}</td>
<td class="num">{{.Median}}</td><td>{{.Spread}}</td><td class="num">{{if .Limited}}<span class="limited" title="below 0.9: the harness set the rate">{{.Busy}}</span>{{else}}{{.Busy}}{{end}}</td><td class="num">{{.CPU}}</td>
<td class="counters">{{range .Key}}<span>{{.K}} {{.V}}</span> {{end}}{{if or .Counters .Extra}}<details><summary>all counters and figures</summary><table>
{{range .Counters}}<tr><td>{{.K}}</td><td class="num">{{.V}}</td></tr>
{{end}}{{range .Extra}}<tr><td>{{.K}}</td><td class="num">{{.V}}</td></tr>
{{end}}</table></details>{{else}}{{if not .Key}}—{{end}}{{end}}</td>
</tr>
{{end}}{{end}}</tbody>
</table></div>
{{else}}<p class="note">The run has no scenarios.</p>
{{end}}
</body>
</html>
`))

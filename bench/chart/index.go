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

// chartTitles name the charts in index.html; a chart file Render does not
// know is shown under its file name.
var chartTitles = map[string]string{
	ThroughputMpps: "Throughput by frame size (Mpps)",
	ThroughputGbps: "Throughput by frame size (Gbit/s on the wire)",
	CPUPerMpkt:     "Forwarder CPU per million packets",
	Latency:        "Latency percentiles",
	OffloadMatrix:  "Throughput by offload setting",
	SendfileVsCopy: "sendfile vs copy",
	Samples:        "Samples over time",
}

// keyCounters are the counters shown in the scenario table because they
// explain a low figure: drops, missed frames, softirq squeezes, interrupts.
// The rest are one click away.
var keyCounters = []string{
	"rx_missed", "rx_nombuf", "dropped", "fwd_tx_dropped", "sink_lost",
	"time_squeeze", "interrupts",
}

// WriteIndex writes dir/index.html: the run's command, machine and start
// time, a table of every scenario, ratios between paths that ran the same
// scenario, and the charts (as returned by Render) embedded as SVG with
// links to their PNGs. The page has no external assets, so the directory
// can be copied or attached as it is. All text goes through html/template,
// so a scenario name cannot inject markup.
func WriteIndex(run *result.Run, dir string, charts []string) error {
	if run == nil {
		return fmt.Errorf("chart: no run to index")
	}
	page := buildPage(run, charts)
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
	Started string
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
	P99      string
	Stddev   string
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
	A, B      string // paths
	Metric    string
	MedianA   string
	MedianB   string
	Tput      string // A/B
	CPUA      string
	CPUB      string
	CPU       string // A/B of CPU per packet
	CPUSource string
}

type chartRef struct {
	Title string
	Img   string // what <img> shows: the SVG where there is one
	PNG   string // link target; "" when no PNG was written
}

func buildPage(run *result.Run, charts []string) indexPage {
	pg := indexPage{
		Suite:   run.Suite,
		Command: run.Command,
		Machine: machineLine(run.Machine),
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
	pg.Ratios = ratios(run)
	pg.Charts = chartRefs(charts)
	return pg
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
		r.Median, r.Stddev = sc.format(s.Median), sc.format(s.Stddev)
		if s.P99 != nil {
			r.P99 = sc.format(*s.P99)
		}
		r.CPU = strconv.FormatFloat(s.CPUSeconds, 'f', 2, 64)
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

// comparable reports whether a and b are the same measurement under two
// paths: same name, port and metric, and every knob both have agrees, but
// for "mode", which names the path. Knobs only one path has (napi's
// budget) do not prevent the match.
func comparable(a, b *result.Scenario) bool {
	if a.Path == b.Path || a.Name != b.Name || a.Port != b.Port || a.Metric != b.Metric || a.Unit != b.Unit {
		return false
	}
	for k, va := range a.Knobs {
		if k == "mode" {
			continue
		}
		if vb, ok := b.Knobs[k]; ok && formatKnob(va) != formatKnob(vb) {
			return false
		}
	}
	return true
}

// ratios pairs every scenario with each later one that ran the same
// measurement under another path, e.g. pollnet-pmd against pollnet-napi at
// each frame size.
func ratios(run *result.Run) []ratioRow {
	type pair struct{ a, b *result.Scenario }
	var pairs []pair
	for i := range run.Scenarios {
		a := &run.Scenarios[i]
		if !ran(a) || !measured(a) {
			continue
		}
		for j := i + 1; j < len(run.Scenarios); j++ {
			b := &run.Scenarios[j]
			if ran(b) && measured(b) && comparable(a, b) {
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
			if _, ok := p.b.Knobs[k]; ok && k != "mode" && k != "duration_s" {
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
		if r.Knobs == "" {
			r.Knobs = "—"
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

// chartRefs pairs each chart's SVG with its PNG, in the order given.
func chartRefs(files []string) []chartRef {
	var refs []chartRef
	seen := map[string]bool{}
	for _, f := range files {
		ext := strings.ToLower(filepath.Ext(f))
		stem := strings.TrimSuffix(f, filepath.Ext(f))
		if (ext != ".svg" && ext != ".png") || seen[stem] {
			continue
		}
		seen[stem] = true
		ref := chartRef{Title: chartTitles[stem]}
		if ref.Title == "" {
			ref.Title = stem
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
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f4f4f4; padding: .1em .3em; border-radius: 3px; word-break: break-all; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.knobs { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; max-width: 22em; }
tr.skipped td { color: #777; background: #fffbe8; }
.skip { color: #8a5a00; font-weight: 600; }
.counters span { display: inline-block; margin-right: .8em; white-space: nowrap; }
details summary { cursor: pointer; color: #0645ad; }
details table { margin-top: .3em; font-size: 12px; }
.note { color: #666; font-size: 13px; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<dl class="run">
<dt>Command</dt><dd><code>{{if .Command}}{{.Command}}{{else}}not recorded{{end}}</code></dd>
<dt>Machine</dt><dd>{{.Machine}}</dd>
<dt>Started</dt><dd>{{if .Started}}{{.Started}}{{else}}not recorded{{end}}</dd>
<dt>Scenarios</dt><dd>{{.NumRan}} ran{{if .NumSkip}}, {{.NumSkip}} skipped{{end}}</dd>
</dl>

<h2>Scenarios</h2>
{{if .Rows}}<div class="scroll"><table>
<thead><tr><th>#</th><th>Name</th><th>Path</th><th>Port</th><th>Knobs</th><th>Metric</th><th>Median</th><th>p99</th><th>Stddev</th><th>n</th><th>CPU s</th><th>Key counters</th><th>All figures</th></tr></thead>
<tbody>
{{range .Rows}}{{if .Skipped}}<tr class="skipped">
<td class="num">{{.N}}</td><td>{{.Name}}</td><td>{{.Path}}</td><td>{{.Port}}</td><td class="knobs">{{.Knobs}}</td><td>{{.Metric}}</td>
<td colspan="7"><span class="skip">Skipped:</span> {{.Skipped}}</td>
</tr>
{{else}}<tr>
<td class="num">{{.N}}</td><td>{{.Name}}</td><td>{{.Path}}</td><td>{{.Port}}</td><td class="knobs">{{.Knobs}}</td><td>{{.Metric}}</td>
<td class="num">{{.Median}}</td><td class="num">{{.P99}}</td><td class="num">{{.Stddev}}</td><td class="num">{{.Samples}}</td><td class="num">{{.CPU}}</td>
<td class="counters">{{range .Key}}<span>{{.K}} {{.V}}</span>{{else}}—{{end}}</td>
<td>{{if or .Counters .Extra}}<details><summary>counters, extra</summary><table>
{{range .Counters}}<tr><td>{{.K}}</td><td class="num">{{.V}}</td></tr>
{{end}}{{range .Extra}}<tr><td>{{.K}}</td><td class="num">{{.V}}</td></tr>
{{end}}</table></details>{{else}}—{{end}}</td>
</tr>
{{end}}{{end}}</tbody>
</table></div>
{{else}}<p class="note">The run has no scenarios.</p>
{{end}}
{{if .Ratios}}<h2>Paths compared</h2>
<p class="note">The same scenario and knobs under two paths. A ratio above 1 means path A is higher: better for throughput, worse for CPU per packet.</p>
<div class="scroll"><table>
<thead><tr><th>Scenario</th><th>Knobs</th><th>Path A</th><th>Path B</th><th>Metric</th><th>A median</th><th>B median</th><th>Throughput A/B</th><th>CPU/packet A</th><th>CPU/packet B</th><th>CPU/packet A/B</th></tr></thead>
<tbody>
{{range .Ratios}}<tr><td>{{.Name}}</td><td>{{.Knobs}}</td><td>{{.A}}</td><td>{{.B}}</td><td>{{.Metric}}</td>
<td class="num">{{.MedianA}}</td><td class="num">{{.MedianB}}</td><td class="num"><strong>{{.Tput}}</strong></td>
<td class="num">{{.CPUA}}</td><td class="num">{{.CPUB}}</td><td class="num"{{if .CPUSource}} title="from {{.CPUSource}}"{{end}}><strong>{{.CPU}}</strong></td></tr>
{{end}}</tbody>
</table></div>
{{end}}
<h2>Charts</h2>
{{range .Charts}}<figure>
<img src="{{.Img}}" alt="{{.Title}}" width="800" height="500">
<figcaption>{{.Title}}{{if .PNG}} — <a href="{{.PNG}}">PNG</a>{{end}}</figcaption>
</figure>
{{else}}<p class="note">No charts: no scenario produced data to draw.</p>
{{end}}
</body>
</html>
`))

package chart

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/pollnet/pollnet/internal/result"
)

// measured reports whether the scenario has a median to draw.
func measured(s *result.Scenario) bool { return s.Median > 0 && finite(s.Median) }

// spread returns the scenario's min and max scaled by f, falling back to
// the median where the summary lacks them, so error bars never point the
// wrong way.
func spread(s *result.Scenario, f float64) (y, lo, hi float64) {
	y, lo, hi = s.Median*f, s.Min*f, s.Max*f
	if !finite(lo) || !finite(hi) || (s.Min == 0 && s.Max == 0) {
		return y, y, y
	}
	return y, math.Min(lo, y), math.Max(hi, y)
}

// ppsBySize selects scenarios with a packet rate and a frame size: the data
// of both throughput charts.
func ppsBySize(run *result.Run) []*result.Scenario {
	return pick(run, func(s *result.Scenario) bool {
		_, ok := frameSize(s)
		return ok && isPPS(s) && measured(s)
	})
}

// spreadNote says what a point and its error bar are.
func spreadNote(scs []*result.Scenario) string {
	if !slices.ContainsFunc(scs, func(s *result.Scenario) bool { return len(s.Samples) > 1 }) {
		return "one sample (≈1 s) per point, so no spread to show; run longer for error bars"
	}
	return fmt.Sprintf("median of %s (≈1 s each) per point; error bars span min..max", sampleNote(scs))
}

// throughputMpps is the headline: packets per second against frame size,
// one line per path, so where each path stops scaling shows at a glance.
func throughputMpps(run *result.Run) (*figure, error) {
	scs := ppsBySize(run)
	if len(scs) == 0 {
		return nil, nil
	}
	return lineVsSize(ThroughputMpps,
		"Throughput by frame size (Mpps)",
		spreadNote(scs),
		"throughput (Mpps, million packets/s)", scs,
		func(s *result.Scenario) (float64, float64, float64) { return spread(s, 1e-6) })
}

// throughputGbps is the same data in bits on the wire, the unit a link's
// capacity is quoted in, so large frames can be read against line rate.
func throughputGbps(run *result.Run) (*figure, error) {
	scs := ppsBySize(run)
	if len(scs) == 0 {
		return nil, nil
	}
	return lineVsSize(ThroughputGbps,
		"Throughput by frame size (Gbit/s on the wire)",
		spreadNote(scs),
		"Gbit/s, frame + 24 B (FCS, preamble, gap)", scs,
		func(s *result.Scenario) (float64, float64, float64) {
			size, _ := frameSize(s)
			f := (size + 24) * 8 / 1e9 // bits per packet on the wire, in Gbit
			if g, ok := s.Extra["gbps_median"]; ok && g > 0 && finite(g) {
				f = g / s.Median // the bench's own figure, whatever it counted
			}
			return spread(s, f)
		})
}

// lineVsSize draws one line per series against frame size on a log axis,
// with min..max error bars. Lines of different paths are nudged apart a
// little so that their error bars do not hide each other.
func lineVsSize(name, title, subtitle, ylabel string, scs []*result.Scenario,
	val func(*result.Scenario) (y, lo, hi float64)) (*figure, error) {
	ser, note := lineSeries(groupSeries(scs, newLabeler(scs, "size")))
	if note != "" {
		subtitle += "\n" + note
	}
	var kept []*result.Scenario
	for _, sr := range ser {
		kept = append(kept, sr.scs...)
	}
	ser = groupSeries(kept, newLabeler(kept, "size")) // shorter labels without the dropped ones
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	for i, sr := range ser {
		pts := slices.Clone(sr.scs)
		sort.SliceStable(pts, func(a, b int) bool {
			x, _ := frameSize(pts[a])
			y, _ := frameSize(pts[b])
			return x < y
		})
		nudge := math.Exp2(0.04 * (float64(i) - float64(len(ser)-1)/2))
		var xys plotter.XYs
		var errs plotter.YErrors
		for _, s := range pts {
			x, _ := frameSize(s)
			y, lo, hi := val(s)
			if !finite(y) || !finite(lo) || !finite(hi) {
				continue
			}
			xys = append(xys, plotter.XY{X: x * nudge, Y: y})
			errs = append(errs, struct{ Low, High float64 }{y - lo, hi - y})
		}
		if len(xys) == 0 {
			continue
		}
		line := &plotter.Line{XYs: xys, LineStyle: lineStyle(i)}
		dots := &plotter.Scatter{XYs: xys, GlyphStyle: glyphStyle(i)}
		bars := &plotter.YErrorBars{XYs: xys, YErrors: errs, CapWidth: vg.Points(6)}
		bars.LineStyle = lineStyle(i)
		bars.LineStyle.Width, bars.LineStyle.Dashes = vg.Points(1), nil
		p.Add(line, bars, dots)
		leg.Add(legendText(sr.label), line, dots)
	}
	sz := sizes(kept)
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks(sz)
	p.X.Min, p.X.Max = sz[0]/1.25, sz[len(sz)-1]*1.25
	p.X.Label.Text = "frame size (bytes without FCS, log scale)"
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Y.Tick.Marker = niceTicks{}
	p.Y.Max *= 1.08 // room above the highest error bar
	return &figure{name: name, title: title, subtitle: subtitle, panels: []*plot.Plot{p}, legend: leg}, nil
}

// maxLines caps the lines of a chart: past about ten, colours repeat and
// nobody can tell the lines apart.
const maxLines = 10

// lineSeries keeps the series worth a line against frame size: those
// measured at two sizes or more, when there are any (a scenario run at one
// size, such as an offload setting, is a dot that crowds the legend and
// has its own chart), and at most maxLines of them. note says what was
// left out.
func lineSeries(ser []series) ([]series, string) {
	multi := slices.DeleteFunc(slices.Clone(ser), func(sr series) bool { return len(sizes(sr.scs)) < 2 })
	var notes []string
	if len(multi) > 0 && len(multi) < len(ser) {
		notes = append(notes, fmt.Sprintf("%d series measured at a single size not shown", len(ser)-len(multi)))
		ser = multi
	}
	if len(ser) > maxLines {
		notes = append(notes, fmt.Sprintf("first %d of %d series shown", maxLines, len(ser)))
		ser = ser[:maxLines]
	}
	return ser, strings.Join(notes, "; ")
}

// cpuPerMpkt is what each packet costs the forwarder: the figure that
// tells a busy-polling path that spins a whole core from one that sleeps.
func cpuPerMpkt(run *result.Run) (*figure, error) {
	const key = "dut_cpu_s_per_mpkt"
	scs := pick(run, func(s *result.Scenario) bool {
		v, ok := s.Extra[key]
		_, sized := frameSize(s)
		return ok && sized && v > 0 && finite(v)
	})
	if len(scs) == 0 {
		return nil, nil
	}
	sz := sizes(scs)
	ser := groupSeries(scs, newLabeler(scs, "size"))
	b := bars{format: short3}
	for _, v := range sz {
		b.cats = append(b.cats, fmt.Sprintf("%g B", v))
	}
	for _, sr := range ser {
		b.groups = append(b.groups, sr.label)
		vals := nanSlice(len(sz))
		for _, s := range sr.scs {
			size, _ := frameSize(s)
			if i := slices.Index(sz, size); math.IsNaN(vals[i]) {
				vals[i] = s.Extra[key]
			}
		}
		b.vals = append(b.vals, vals)
	}
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	if err := b.addTo(p, &leg, dataWidth(b.groups)); err != nil {
		return nil, err
	}
	p.X.Label.Text = "frame size (bytes without FCS)"
	p.Y.Label.Text = "CPU s per million packets (= µs/packet)"
	p.Y.Max *= 1.1 // room for the value labels
	return &figure{
		name:     CPUPerMpkt,
		title:    "Forwarder CPU per million packets",
		subtitle: "CPU time of the forwarding (DUT) thread ÷ packets delivered; lower is better",
		panels:   []*plot.Plot{p}, legend: leg,
	}, nil
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// latencyKeys are the percentiles the latency chart shows, in bar order.
var latencyKeys = []struct{ key, label string }{
	{"latency_p50_ns", "p50"},
	{"latency_p99_ns", "p99"},
	{"latency_p999_ns", "p99.9"},
	{"latency_max_ns", "max"},
}

// latencyColors run from light to dark as the percentile rises.
var latencyColors = []color.Color{
	color.RGBA{0x9E, 0xCA, 0xE1, 0xFF},
	color.RGBA{0x42, 0x92, 0xC6, 0xFF},
	color.RGBA{0x08, 0x51, 0x9C, 0xFF},
	color.RGBA{0x25, 0x25, 0x25, 0xFF},
}

// maxLatencyRows caps the latency chart at what stays legible at 500 px.
const maxLatencyRows = 12

// latencyChart shows the tail: p50 to max per scenario on a log axis,
// since a path can win on throughput and lose by orders of magnitude here.
func latencyChart(run *result.Run) (*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		for _, k := range latencyKeys {
			if v := s.Extra[k.key]; v > 0 && finite(v) {
				return true
			}
		}
		return false
	})
	if len(scs) == 0 {
		return nil, nil
	}
	subtitle := "latency percentiles per scenario, log scale; lower is better"
	if len(scs) > maxLatencyRows {
		subtitle += fmt.Sprintf(" (first %d of %d scenarios)", maxLatencyRows, len(scs))
		scs = scs[:maxLatencyRows]
	}
	lab := newLabeler(scs)
	b := bars{horizontal: true, logValues: true, format: formatNs, colors: latencyColors}
	for _, s := range scs {
		b.cats = append(b.cats, lab.label(s))
	}
	for _, k := range latencyKeys {
		b.groups = append(b.groups, k.label)
		vals := make([]float64, len(scs))
		for i, s := range scs {
			v, ok := s.Extra[k.key]
			if !ok {
				v = math.NaN()
			}
			vals[i] = v
		}
		b.vals = append(b.vals, vals)
	}
	p := newPlot()
	addGrid(p, false, true)
	leg := newLegend()
	if err := b.addTo(p, &leg, dataHeight()); err != nil {
		return nil, err
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decadeTicks(formatNs)
	p.X.Label.Text = "latency (log scale)"
	return &figure{
		name: Latency, title: "Latency percentiles", subtitle: subtitle,
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

// offloadKnobs are the on/off offload settings the offload chart crosses.
var offloadKnobs = []string{"gro", "tso", "csum"}

// offloadMatrix shows throughput for each on/off combination of GRO, TSO
// and checksum offload, so the gain of each offload reads off one chart.
func offloadMatrix(run *result.Run) (*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		for _, k := range offloadKnobs {
			if _, ok := knobBool(s, k); ok {
				return measured(s)
			}
		}
		return false
	})
	if len(scs) == 0 {
		return nil, nil
	}
	scs, dropped := dominant(scs)
	var keys []string // the offload knobs present at all
	for _, k := range offloadKnobs {
		for _, s := range scs {
			if _, ok := knobBool(s, k); ok {
				keys = append(keys, k)
				break
			}
		}
	}
	type combo struct {
		label string
		on    int
		order string
	}
	comboOf := func(s *result.Scenario) combo {
		var c combo
		var lines []string
		for _, k := range keys {
			v, ok := knobBool(s, k)
			state, code := "–", "0"
			switch {
			case ok && v:
				state, code = "on", "2"
				c.on++
			case ok:
				state, code = "off", "1"
			}
			lines = append(lines, strings.ToUpper(k)+" "+state)
			c.order += code
		}
		c.label = strings.Join(lines, "\n")
		return c
	}
	var combos []combo
	for _, s := range scs {
		c := comboOf(s)
		if !slices.Contains(combos, c) {
			combos = append(combos, c)
		}
	}
	// All off first, all on last: the eye reads the gain of each offload.
	sort.Slice(combos, func(i, j int) bool {
		if combos[i].on != combos[j].on {
			return combos[i].on < combos[j].on
		}
		return combos[i].order < combos[j].order
	})
	ser := groupSeries(scs, newLabeler(scs, offloadKnobs...))
	maxv := 0.0
	for _, s := range scs {
		maxv = math.Max(maxv, s.Median)
	}
	sc := scaleFor(scs[0].Unit, maxv)
	b := bars{format: func(v float64) string { return short3(v) }}
	for _, c := range combos {
		b.cats = append(b.cats, c.label)
	}
	for _, sr := range ser {
		b.groups = append(b.groups, sr.label)
		vals := nanSlice(len(combos))
		for _, s := range sr.scs {
			if i := slices.Index(combos, comboOf(s)); math.IsNaN(vals[i]) {
				vals[i] = s.Median / sc.div
			}
		}
		b.vals = append(b.vals, vals)
	}
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	if err := b.addTo(p, &leg, dataWidth(b.groups)); err != nil {
		return nil, err
	}
	p.X.Label.Text = "offload settings"
	p.Y.Label.Text = axisLabel(scs[0], sc)
	p.Y.Max *= 1.1
	subtitle := fmt.Sprintf("median %s per on/off combination of %s; higher is better",
		scs[0].Metric, strings.ToUpper(strings.Join(keys, "/")))
	if dropped > 0 {
		subtitle += fmt.Sprintf(" (%d scenarios of other metrics not shown)", dropped)
	}
	return &figure{
		name: OffloadMatrix, title: "Throughput by offload setting", subtitle: subtitle,
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

// axisLabel is "metric (unit)".
func axisLabel(s *result.Scenario, sc scale) string {
	if sc.unit == "" {
		return s.Metric
	}
	return s.Metric + " (" + sc.unit + ")"
}

// sendfileVsCopy puts throughput and CPU per byte side by side for
// scenarios run with and without sendfile: zero copy should win on the
// second even where the first is the same.
func sendfileVsCopy(run *result.Run) (*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		_, ok := knobBool(s, "sendfile")
		return ok && measured(s)
	})
	if len(scs) == 0 {
		return nil, nil
	}
	scs, dropped := dominant(scs)
	lab := newLabeler(scs, "sendfile")
	var cats []string
	catOf := func(s *result.Scenario) int {
		c := strings.Join(lab.parts(s), "\n")
		if i := slices.Index(cats, c); i >= 0 {
			return i
		}
		cats = append(cats, c)
		return len(cats) - 1
	}
	for _, s := range scs {
		catOf(s)
	}
	maxv := 0.0
	for _, s := range scs {
		maxv = math.Max(maxv, s.Median)
	}
	sc := scaleFor(scs[0].Unit, maxv)
	modes := []struct {
		on    bool
		label string
	}{{true, "sendfile (zero copy)"}, {false, "copy (read + write)"}}
	// Horizontal bars: the categories (path and knobs) are too long to sit
	// under bars, and both panels then share the rows, labelled once.
	tput := bars{cats: cats, format: short3, horizontal: true}
	cpu := bars{cats: cats, format: short3, horizontal: true}
	haveCPU := false
	for _, m := range modes {
		tv, cv := nanSlice(len(cats)), nanSlice(len(cats))
		for _, s := range scs {
			if on, _ := knobBool(s, "sendfile"); on != m.on {
				continue
			}
			i := catOf(s)
			if math.IsNaN(tv[i]) {
				tv[i] = s.Median / sc.div
				if v, ok := cpuPerByte(s); ok {
					cv[i], haveCPU = v, true
				}
			}
		}
		tput.groups = append(tput.groups, m.label)
		tput.vals = append(tput.vals, tv)
		cpu.groups = append(cpu.groups, m.label)
		cpu.vals = append(cpu.vals, cv)
	}
	leg := newLegend()
	span := dataHeight() - vg.Points(16) // less the panel titles
	tp := newPlot()
	addGrid(tp, false, true)
	if err := tput.addTo(tp, &leg, span); err != nil {
		return nil, err
	}
	tp.Title.Text = "throughput (higher is better)"
	tp.X.Label.Text = axisLabel(scs[0], sc)
	tp.X.Max *= 1.15 // room for the value labels
	panels := []*plot.Plot{tp}
	subtitle := "median throughput and CPU time per byte, with and without sendfile"
	if haveCPU {
		cp := newPlot()
		addGrid(cp, false, true)
		var unused plot.Legend // the throughput panel's legend serves both
		if err := cpu.addTo(cp, &unused, span); err != nil {
			return nil, err
		}
		cp.Y.Tick.Marker = plot.ConstantTicks{} // same rows as the left panel
		cp.Title.Text = "CPU per byte (lower is better)"
		cp.X.Label.Text = "CPU ns per byte"
		cp.X.Max *= 1.15
		panels = append(panels, cp)
	} else {
		subtitle = "median throughput with and without sendfile (no CPU figures recorded)"
	}
	if dropped > 0 {
		subtitle += fmt.Sprintf("; %d scenarios of other metrics not shown", dropped)
	}
	return &figure{
		name: SendfileVsCopy, title: "sendfile vs copy", subtitle: subtitle,
		panels: panels, legend: leg,
	}, nil
}

// maxSampleLines caps the sample chart: past a dozen lines nobody can tell
// them apart.
const maxSampleLines = 12

// samplesChart draws the raw samples over time, so a reader sees whether a
// median summarises a steady run or a drifting one.
func samplesChart(run *result.Run) (*figure, error) {
	// A single sample shows no stability, so at least one scenario must
	// have two.
	scs := pick(run, func(s *result.Scenario) bool { return len(s.Samples) > 0 })
	if !slices.ContainsFunc(scs, func(s *result.Scenario) bool { return len(s.Samples) > 1 }) {
		return nil, nil
	}
	scs, dropped := dominant(scs)
	var notes []string
	if len(scs) > maxSampleLines {
		notes = append(notes, fmt.Sprintf("first %d of %d scenarios", maxSampleLines, len(scs)))
		scs = scs[:maxSampleLines]
	}
	if dropped > 0 {
		notes = append(notes, fmt.Sprintf("%d scenarios of other metrics not shown", dropped))
	}
	maxv, maxn := 0.0, 0
	for _, s := range scs {
		for _, v := range s.Samples {
			if finite(v) {
				maxv = math.Max(maxv, v)
			}
		}
		maxn = max(maxn, len(s.Samples))
	}
	sc := scaleFor(scs[0].Unit, maxv)
	lab := newLabeler(scs)
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	drawn := 0
	for i, s := range scs {
		var xys plotter.XYs
		for j, v := range s.Samples {
			if finite(v) {
				xys = append(xys, plotter.XY{X: float64(j + 1), Y: v / sc.div})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line := &plotter.Line{XYs: xys, LineStyle: lineStyle(i)}
		dots := &plotter.Scatter{XYs: xys, GlyphStyle: glyphStyle(i)}
		dots.GlyphStyle.Radius = vg.Points(2.5)
		p.Add(line, dots)
		leg.Add(legendText(lab.label(s)), line, dots)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	ticks := make(plot.ConstantTicks, 0, maxn)
	step := max(1, (maxn+9)/10) // at most about ten labels
	for j := 1; j <= maxn; j++ {
		t := plot.Tick{Value: float64(j)}
		if (j-1)%step == 0 {
			t.Label = fmt.Sprint(j)
		}
		ticks = append(ticks, t)
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 1, math.Max(2, float64(maxn))
	p.X.Label.Text = "sample (≈1 s each)"
	p.Y.Label.Text = axisLabel(scs[0], sc)
	p.Y.Min = 0
	p.Y.Tick.Marker = niceTicks{}
	p.Y.Max *= 1.05
	subtitle := fmt.Sprintf("raw per-second samples of %s, one line per scenario; flat lines mean a steady run", scs[0].Metric)
	if len(notes) > 0 {
		subtitle += "\n" + strings.Join(notes, "; ")
	}
	return &figure{
		name: Samples, title: "Samples over time", subtitle: subtitle,
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

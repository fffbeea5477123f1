package chart

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/pollnet/pollnet/internal/result"
)

// loadPoint is where a "load" scenario sits on the offered-load axis.
type loadPoint struct {
	mpps  float64 // offered rate, Mpps; NaN when not recorded
	share float64 // share of the lower zero-loss rate, 0..1; NaN when not recorded
}

func loadPointOf(s *result.Scenario) loadPoint {
	p := loadPoint{math.NaN(), math.NaN()}
	if v, ok := knobNum(s, "offered_pps"); ok && v > 0 {
		p.mpps = v / 1e6
	}
	if v, ok := knobNum(s, "load_share"); ok && v > 0 {
		p.share = v
	}
	return p
}

// latencyUs returns a latency percentile in µs from the "load" keys
// (lat_p50_us) or the older ns ones (latency_p50_ns).
func latencyUs(s *result.Scenario, pct string) (float64, bool) {
	if v, ok := s.Extra["lat_"+pct+"_us"]; ok && v > 0 && finite(v) {
		return v, true
	}
	if v, ok := s.Extra["latency_"+pct+"_ns"]; ok && v > 0 && finite(v) {
		return v / 1e3, true
	}
	return 0, false
}

// loadCharts draws, per frame size, what each mode pays at the same
// offered load: CPU per packet and latency percentiles against the
// offered rate, from the "load" scenarios. This is the trade the two
// modes make: PMD spins a core to answer at once, NAPI sleeps between
// interrupts.
func loadCharts(run *result.Run) ([]*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		p := loadPointOf(s)
		return s.Name == "load" && s.Median > 0 && finite(s.Median) && (finite(p.mpps) || finite(p.share))
	})
	if len(scs) == 0 {
		return nil, nil
	}
	var sizesSeen []float64
	bySize := map[float64][]*result.Scenario{}
	for _, s := range scs {
		v, _ := frameSize(s)
		if _, ok := bySize[v]; !ok {
			sizesSeen = append(sizesSeen, v)
		}
		bySize[v] = append(bySize[v], s)
	}
	var figs []*figure
	for _, size := range sizesSeen {
		fig, err := loadChart(size, bySize[size])
		if err != nil {
			return nil, err
		}
		if fig != nil {
			figs = append(figs, fig)
		}
	}
	return figs, nil
}

// loadX picks the axis: offered Mpps where every scenario recorded it,
// else the share of the zero-loss rate.
func loadX(scs []*result.Scenario) (x func(*result.Scenario) float64, label string) {
	allMpps := !slices.ContainsFunc(scs, func(s *result.Scenario) bool { return !finite(loadPointOf(s).mpps) })
	if allMpps {
		return func(s *result.Scenario) float64 { return loadPointOf(s).mpps }, "offered load (Mpps)"
	}
	return func(s *result.Scenario) float64 { return 100 * loadPointOf(s).share }, "offered load (% of the lower zero-loss rate)"
}

// orderPaths puts pollnet-pmd first and pollnet-napi second, so the
// ratios read pmd/napi in every run.
func orderPaths(ser []series) {
	rank := func(sr series) int {
		switch sr.scs[0].Path {
		case "pollnet-pmd":
			return 0
		case "pollnet-napi":
			return 1
		}
		return 2
	}
	sort.SliceStable(ser, func(i, j int) bool { return rank(ser[i]) < rank(ser[j]) })
}

func loadChart(size float64, scs []*result.Scenario) (*figure, error) {
	xOf, xLabel := loadX(scs)
	scs = slices.DeleteFunc(slices.Clone(scs), func(s *result.Scenario) bool { return !finite(xOf(s)) })
	if len(scs) == 0 {
		return nil, nil
	}
	lab := newLabeler(scs, "size", "offered_pps", "load_share")
	ser := groupSeries(scs, lab)
	orderPaths(ser)
	var xs []float64
	for _, s := range scs {
		if x := xOf(s); !slices.Contains(xs, x) {
			xs = append(xs, x)
		}
	}
	slices.Sort(xs)
	xmax := xs[len(xs)-1]
	var pc pathColorer
	leg := newLegend()

	// CPU per packet, log scale, with whiskers over the runs.
	cp := newPlot()
	addGrid(cp, true, false)
	f := nsFactor(scs[0].Unit)
	var cpuVals []float64
	for i, sr := range ser {
		pts := sortedBy(sr.scs, xOf)
		nudge := 0.01 * xmax * (float64(i) - float64(len(ser)-1)/2)
		var xys plotter.XYs
		var errs plotter.YErrors
		for _, s := range pts {
			y, lo, hi := spread(s, f)
			if !(y > 0) || !(lo > 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: xOf(s) + nudge, Y: y})
			errs = append(errs, struct{ Low, High float64 }{y - lo, hi - y})
			cpuVals = append(cpuVals, lo, hi)
		}
		if len(xys) == 0 {
			continue
		}
		ls := lineStyle(i)
		ls.Color = pc.color(sr.scs[0].Path)
		gs := glyphStyle(i)
		gs.Color = ls.Color
		line := &plotter.Line{XYs: xys, LineStyle: ls}
		dots := &plotter.Scatter{XYs: xys, GlyphStyle: gs}
		bars := &plotter.YErrorBars{XYs: xys, YErrors: errs, CapWidth: vg.Points(6)}
		bars.LineStyle = ls
		bars.LineStyle.Width, bars.LineStyle.Dashes = vg.Points(1), nil
		cp.Add(line, bars, dots)
		leg.Add(legendText(sr.label), line, dots)
	}
	lo, hi, ok := logRange(cpuVals...)
	if !ok {
		return nil, nil
	}
	cp.Y.Scale = plot.LogScale{}
	cp.Y.Min, cp.Y.Max = lo, hi
	cp.Y.Tick.Marker = logTicks(formatNs)
	cp.Y.Label.Text = "CPU per packet (log scale; lower is better)"
	loadXAxis(cp, xs, xLabel, scs, xOf)
	panels := []*plot.Plot{cp}

	// Latency percentiles, log scale: p50 solid, p99 dashed.
	lp := newPlot()
	addGrid(lp, true, false)
	var latVals []float64
	for i, sr := range ser {
		pts := sortedBy(sr.scs, xOf)
		for j, pct := range []string{"p50", "p99"} {
			var xys plotter.XYs
			for _, s := range pts {
				if v, ok := latencyUs(s, pct); ok {
					xys = append(xys, plotter.XY{X: xOf(s), Y: v * 1e3})
					latVals = append(latVals, v*1e3)
				}
			}
			if len(xys) == 0 {
				continue
			}
			ls := lineStyle(i)
			ls.Color = pc.color(sr.scs[0].Path)
			ls.Dashes = dashes[j]
			gs := glyphStyle(i)
			gs.Color = ls.Color
			lp.Add(&plotter.Line{XYs: xys, LineStyle: ls}, &plotter.Scatter{XYs: xys, GlyphStyle: gs})
		}
	}
	if lo, hi, ok := logRange(latVals...); ok {
		lp.Y.Scale = plot.LogScale{}
		lp.Y.Min, lp.Y.Max = lo, hi
		lp.Y.Tick.Marker = logTicks(formatNs)
		lp.Y.Label.Text = "latency (log scale; lower is better)"
		loadXAxis(lp, xs, xLabel, scs, xOf)
		panels = append(panels, lp)
		for j, pct := range []string{"p50", "p99"} {
			ls := draw.LineStyle{Color: grey, Width: vg.Points(1.8), Dashes: dashes[j]}
			leg.Add(pct+" latency", &plotter.Line{LineStyle: ls})
		}
	}
	subtitle := fmt.Sprintf("the same offered rates for each mode; %s per point, whiskers span min..max", medianNote(scs))
	title := "PMD vs NAPI at equal offered load"
	name := "load"
	if size > 0 {
		title += fmt.Sprintf(", %g B frames", size)
		name += fmt.Sprintf("-%gB", size)
	}
	return &figure{
		name: fileSafe(name), title: title, subtitle: subtitle,
		about:  loadSentence(size, ser, xOf),
		panels: panels, legend: leg,
	}, nil
}

// loadXAxis marks the offered loads measured, with their share of the
// zero-loss rate under the rate where both are known.
func loadXAxis(p *plot.Plot, xs []float64, label string, scs []*result.Scenario, xOf func(*result.Scenario) float64) {
	ticks := make(plot.ConstantTicks, len(xs))
	last := math.Inf(-1)
	span := xs[len(xs)-1]
	for i, x := range xs {
		ticks[i] = plot.Tick{Value: x}
		if x-last < span*0.08 {
			continue // too close to the last label
		}
		last = x
		l := short3(x)
		if strings.HasPrefix(label, "offered load (Mpps") {
			if s := scs[slices.IndexFunc(scs, func(s *result.Scenario) bool { return xOf(s) == x })]; finite(loadPointOf(s).share) {
				l += fmt.Sprintf("\n%.0f%%", 100*loadPointOf(s).share)
			}
		} else {
			l += "%"
		}
		ticks[i].Label = l
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 0, xs[len(xs)-1]*1.1
	p.X.Label.Text = label
}

func sortedBy(scs []*result.Scenario, key func(*result.Scenario) float64) []*result.Scenario {
	out := slices.Clone(scs)
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// loadSentence states, at each offered load, the CPU per packet of the
// first two series (pollnet-pmd and pollnet-napi) with their spread, their
// ratio, and their p99 latencies.
func loadSentence(size float64, ser []series, xOf func(*result.Scenario) float64) string {
	if len(ser) == 0 {
		return ""
	}
	at := func(sr series, x float64) *result.Scenario {
		for _, s := range sr.scs {
			if xOf(s) == x {
				return s
			}
		}
		return nil
	}
	var xs []float64
	for _, sr := range ser {
		for _, s := range sr.scs {
			if x := xOf(s); !slices.Contains(xs, x) {
				xs = append(xs, x)
			}
		}
	}
	slices.Sort(xs)
	cpu := func(s *result.Scenario) string {
		f := nsFactor(s.Unit)
		t := formatNs(s.Median * f)
		if len(s.Samples) > 1 {
			_, lo, hi := spread(s, f)
			t += fmt.Sprintf(" (%s %s..%s)", runsWord(s), formatNs(lo), formatNs(hi))
		}
		return t
	}
	var clauses []string
	for _, x := range xs {
		var a, b *result.Scenario
		a = at(ser[0], x)
		if len(ser) > 1 {
			b = at(ser[1], x)
		}
		ref := a
		if ref == nil {
			ref = b
		}
		where := "at " + loadText(ref)
		var c string
		switch {
		case a != nil && b != nil:
			c = fmt.Sprintf("%s %s spends %s of CPU per packet and %s %s", where, a.Path, cpu(a), b.Path, cpu(b))
		case a != nil:
			c = fmt.Sprintf("%s %s spends %s of CPU per packet", where, a.Path, cpu(a))
		default:
			c = fmt.Sprintf("%s %s spends %s of CPU per packet", where, b.Path, cpu(b))
		}
		if a != nil && b != nil {
			if r := ratioText(a.Median, b.Median); r != "—" {
				c += fmt.Sprintf(", %s/%s %s", a.Path, b.Path, r)
			}
			pa, okA := latencyUs(a, "p99")
			pb, okB := latencyUs(b, "p99")
			if okA && okB {
				c += fmt.Sprintf("; p99 latency %s against %s", formatNs(pa*1e3), formatNs(pb*1e3))
			}
		}
		clauses = append(clauses, c)
	}
	s := strings.Join(clauses, "; ") + "."
	return strings.ToUpper(s[:1]) + s[1:]
}

// loadText names an offered load: "0.52 Mpps (10% of the lower zero-loss
// rate)".
func loadText(s *result.Scenario) string {
	p := loadPointOf(s)
	switch {
	case finite(p.mpps) && finite(p.share):
		return fmt.Sprintf("%s Mpps (%s%% of the lower zero-loss rate)", short3(p.mpps), strconv.FormatFloat(100*p.share, 'f', -1, 64))
	case finite(p.mpps):
		return short3(p.mpps) + " Mpps"
	}
	return strconv.FormatFloat(100*p.share, 'f', -1, 64) + "% of the lower zero-loss rate"
}

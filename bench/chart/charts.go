package chart

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
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

// ppsBySize selects scenarios with a packet rate and a frame size, run as
// fast as they could go.
func ppsBySize(run *result.Run) []*result.Scenario {
	return pick(run, func(s *result.Scenario) bool {
		_, ok := frameSize(s)
		return ok && isPPS(s) && measured(s) && !offeredLoad(s)
	})
}

// maxLines caps the series of a grouped chart: past about ten, colours
// repeat and nobody can tell them apart.
const maxLines = 10

// capSeries keeps the first maxLines series and says what it left out.
func capSeries(ser []series) ([]series, string) {
	if len(ser) > maxLines {
		return ser[:maxLines], fmt.Sprintf("first %d of %d series shown", maxLines, len(ser))
	}
	return ser, ""
}

// forwarding selects frame-forwarding scenarios run flat out: a packet
// rate at a frame size, with no payload knob (the socket benches have
// their own charts per payload).
func forwarding(run *result.Run, keep func(*result.Scenario) bool) [][]*result.Scenario {
	scs := pick(run, func(s *result.Scenario) bool {
		_, payload := s.Knobs["payload"]
		return !payload && s.Name != "idle" && keep(s)
	})
	// One chart per scenario name and port: forwarding on the null port
	// and through the wire pipeline are different work.
	type key struct{ name, port string }
	var order []key
	groups := map[key][]*result.Scenario{}
	for _, s := range scs {
		k := key{s.Name, s.Port}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], s)
	}
	out := make([][]*result.Scenario, len(order))
	for i, k := range order {
		out[i] = groups[k]
	}
	return out
}

// groupTitle names a forwarding group: "pps, port wire".
func groupTitle(scs []*result.Scenario) string {
	t := scs[0].Name
	if scs[0].Port != "" {
		t += ", port " + scs[0].Port
	}
	return t
}

// groupName is a chart name for a forwarding group.
func groupName(prefix string, scs []*result.Scenario) string {
	n := prefix + "-" + scs[0].Name
	if scs[0].Port != "" {
		n += "-" + scs[0].Port
	}
	return fileSafe(n)
}

// throughputGbps is the packet rate in bits on the wire (frame plus 24 B
// of FCS, preamble and gap), the unit a link's capacity is quoted in, so
// large frames can be read against line rate. Only runs that move the
// frames' bytes count: a zero-copy forwarder hands the same buffer on,
// and a bit rate there would be bytes nobody moved.
func throughputGbps(run *result.Run) ([]*figure, error) {
	var figs []*figure
	for _, all := range forwarding(run, func(s *result.Scenario) bool {
		_, ok := frameSize(s)
		return ok && isPPS(s) && measured(s) && !offeredLoad(s)
	}) {
		fig, err := gbpsChart(all)
		if err != nil {
			return nil, err
		}
		if fig != nil {
			figs = append(figs, fig)
		}
	}
	return figs, nil
}

func gbpsChart(all []*result.Scenario) (*figure, error) {
	scs := slices.DeleteFunc(slices.Clone(all), movesNoBytes)
	if len(scs) == 0 {
		return nil, nil
	}
	left := len(all) - len(scs)
	sz := sizes(scs)
	ser, note := capSeries(groupSeries(scs, newLabeler(scs, "size")))
	gbit := func(s *result.Scenario) float64 {
		size, _ := frameSize(s)
		return (size + 24) * 8 / 1e9
	}
	b := bars{format: short3}
	for _, v := range sz {
		b.cats = append(b.cats, fmt.Sprintf("%g B", v))
	}
	var best *result.Scenario
	var pc pathColorer
	for _, sr := range ser {
		b.groups = append(b.groups, sr.label)
		vals, lo, hi := nanSlice(len(sz)), nanSlice(len(sz)), nanSlice(len(sz))
		for _, s := range sr.scs {
			size, _ := frameSize(s)
			if i := slices.Index(sz, size); math.IsNaN(vals[i]) {
				vals[i], lo[i], hi[i] = spread(s, gbit(s))
				if best == nil || s.Median*gbit(s) > best.Median*gbit(best) {
					best = s
				}
			}
		}
		b.vals, b.lo, b.hi = append(b.vals, vals), append(b.lo, lo), append(b.hi, hi)
		b.colors = append(b.colors, seriesColor(&pc, sr, ser))
	}
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	if err := b.addTo(p, &leg, dataWidth(b.groups)); err != nil {
		return nil, err
	}
	p.X.Label.Text = "frame size (bytes without FCS)"
	p.Y.Label.Text = "Gbit/s, frame + 24 B (FCS, preamble, gap)"
	p.Y.Max *= 1.1
	subtitle := fmt.Sprintf("%s per bar, whiskers span min..max; runs that copy frames only", medianNote(scs))
	if note != "" {
		subtitle += "\n" + note
	}
	about := "Bits per second an Ethernet link would carry at the measured packet rate, (frame + 24 B) × 8 × rate, for runs that copy every frame"
	if left > 0 {
		about += fmt.Sprintf("; %d zero-copy runs (zero_copy on, or copy off) are left out, since no frame byte moves there", left)
	}
	size, _ := frameSize(best)
	about += fmt.Sprintf(". The highest is %s at %g B: %s", best.Path, size, figureText(best, scale{div: 1 / gbit(best), unit: "Gbit/s"}))
	if busy, ok := harnessLimited(best); ok {
		about += fmt.Sprintf(", a rate the harness set (dut_busy %.2f)", busy)
	}
	about += "."
	return &figure{
		name: groupName(ThroughputGbps, scs), title: "Bytes moved, Gbit/s on the wire: " + groupTitle(scs),
		subtitle: subtitle, about: about,
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

// seriesColor is a series' path colour while each path has one series in
// the chart, and the palette by position once a path has several (pmd with
// and without zero copy), so that no two series look alike.
func seriesColor(pc *pathColorer, sr series, all []series) color.Color {
	n := 0
	for _, o := range all {
		if o.scs[0].Path == sr.scs[0].Path {
			n++
		}
	}
	if n == 1 {
		return pc.color(sr.scs[0].Path)
	}
	return colorOf(slices.IndexFunc(all, func(o series) bool { return o.label == sr.label }))
}

// cpuNsPerPacket is the device under test's CPU time per packet in ns:
// its own thread's where the bench measured it, the null port's ns per
// packet (one core forwarding flat out), else the whole process's.
func cpuNsPerPacket(s *result.Scenario) (float64, bool) {
	for _, k := range []struct {
		key string
		f   float64
	}{{"dut_cpu_ns_per_packet", 1}, {"ns_per_packet", 1}, {"dut_cpu_s_per_mpkt", 1e3}, {"cpu_ns_per_packet", 1}} {
		if v, ok := s.Extra[k.key]; ok && v > 0 && finite(v) {
			return v * k.f, true
		}
	}
	return 0, false
}

// cpuPerPacketChart is what each packet costs the device under test at
// full rate, on a log scale: a forwarder that copies and one that does
// not, or pollnet and testpmd, differ by multiples, not percent. One chart
// per scenario name and port.
func cpuPerPacketChart(run *result.Run) ([]*figure, error) {
	var figs []*figure
	for _, scs := range forwarding(run, func(s *result.Scenario) bool {
		_, ok := cpuNsPerPacket(s)
		_, sized := frameSize(s)
		return ok && sized && !offeredLoad(s)
	}) {
		fig, err := cpuChart(scs)
		if err != nil {
			return nil, err
		}
		figs = append(figs, fig)
	}
	return figs, nil
}

func cpuChart(scs []*result.Scenario) (*figure, error) {
	sz := sizes(scs)
	ser, note := capSeries(groupSeries(scs, newLabeler(scs, "size")))
	b := bars{format: formatNs, logValues: true}
	for _, v := range sz {
		b.cats = append(b.cats, fmt.Sprintf("%g B", v))
	}
	var ranges []string
	var pc pathColorer
	for _, sr := range ser {
		b.groups = append(b.groups, sr.label)
		b.colors = append(b.colors, seriesColor(&pc, sr, ser))
		vals := nanSlice(len(sz))
		for _, s := range sr.scs {
			size, _ := frameSize(s)
			if i := slices.Index(sz, size); math.IsNaN(vals[i]) {
				vals[i], _ = cpuNsPerPacket(s)
			}
		}
		b.vals = append(b.vals, vals)
		ranges = append(ranges, sr.label+" "+rangeText(sz, vals))
	}
	p := newPlot()
	addGrid(p, true, false)
	leg := newLegend()
	if err := b.addTo(p, &leg, dataWidth(b.groups)); err != nil {
		return nil, err
	}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks(formatNs)
	p.X.Label.Text = "frame size (bytes without FCS)"
	p.Y.Label.Text = "CPU per packet (log scale)"
	subtitle := "CPU time of the device under test ÷ packets forwarded, at full rate; lower is better"
	if note != "" {
		subtitle += "\n" + note
	}
	if len(ranges) > 6 {
		ranges = append(ranges[:6], fmt.Sprintf("%d more series in the chart", len(ranges)-6))
	}
	return &figure{
		name: groupName(CPUPerPacket, scs), title: "CPU per packet at full rate: " + groupTitle(scs), subtitle: subtitle,
		about:  "CPU time per packet forwarded flat out, by frame size: " + strings.Join(ranges, "; ") + ".",
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

// rangeText spells a series' values over the sizes: "48 ns at 64 B" or
// "48 ns at 64 B to 210 ns at 9000 B" (the smallest and largest value).
func rangeText(sz, vals []float64) string {
	lo, hi := -1, -1
	for i, v := range vals {
		if !finite(v) {
			continue
		}
		if lo < 0 || v < vals[lo] {
			lo = i
		}
		if hi < 0 || v > vals[hi] {
			hi = i
		}
	}
	if lo < 0 {
		return "no figure"
	}
	first := fmt.Sprintf("%s at %g B", formatNs(vals[lo]), sz[lo])
	if lo == hi {
		return first
	}
	return fmt.Sprintf("from %s to %s at %g B", first, formatNs(vals[hi]), sz[hi])
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// latencyKeys are the percentiles the latency chart shows, in bar order.
var latencyKeys = []struct{ pct, label string }{
	{"p50", "p50"},
	{"p99", "p99"},
	{"p999", "p99.9"},
	{"max", "max"},
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

// lightLoad reports whether the scenario ran at a light, offered load:
// the only runs whose latency measures the device rather than a queue the
// generator filled.
func lightLoad(s *result.Scenario) bool { return s.Name == "load" || s.Name == "lowrate" }

// latencyChart shows the tail at light load: p50 to max per scenario on a
// log axis, since a mode can win on CPU and lose by orders of magnitude
// here. Runs at full rate are left out: their latency is the time frames
// wait in a ring the generator keeps full.
func latencyChart(run *result.Run) (*figure, error) {
	scs := pick(run, func(s *result.Scenario) bool {
		if !lightLoad(s) {
			return false
		}
		for _, k := range latencyKeys {
			if _, ok := latencyUs(s, k.pct); ok {
				return true
			}
		}
		return false
	})
	if len(scs) == 0 {
		return nil, nil
	}
	subtitle := "latency percentiles at light load (load and lowrate runs), log scale; lower is better"
	if len(scs) > maxLatencyRows {
		subtitle += fmt.Sprintf(" (first %d of %d scenarios)", maxLatencyRows, len(scs))
		scs = scs[:maxLatencyRows]
	}
	where, rowLabel := lightLoadLabels(scs)
	b := bars{horizontal: true, logValues: true, format: formatNs, colors: latencyColors}
	for _, s := range scs {
		b.cats = append(b.cats, rowLabel(s))
	}
	for _, k := range latencyKeys {
		b.groups = append(b.groups, k.label)
		vals := nanSlice(len(scs))
		for i, s := range scs {
			if v, ok := latencyUs(s, k.pct); ok {
				vals[i] = v * 1e3
			}
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
	// One clause per load, every path's p50/p99 at it.
	var loads []string
	byLoad := map[string][]string{}
	for _, s := range scs {
		p50, ok50 := latencyUs(s, "p50")
		p99, ok99 := latencyUs(s, "p99")
		var t string
		switch {
		case ok50 && ok99:
			t = fmt.Sprintf("%s %s/%s", s.Path, formatNs(p50*1e3), formatNs(p99*1e3))
		case ok99:
			t = fmt.Sprintf("%s p99 %s", s.Path, formatNs(p99*1e3))
		default:
			continue
		}
		w := where(s)
		if _, ok := byLoad[w]; !ok {
			loads = append(loads, w)
		}
		byLoad[w] = append(byLoad[w], t)
	}
	var rows []string
	for _, w := range loads {
		rows = append(rows, w+": "+strings.Join(byLoad[w], ", "))
	}
	return &figure{
		name: Latency, title: "Latency at light load", subtitle: subtitle,
		about:  "Latency from send to receipt while the device had time to spare, p50/p99 per path: " + strings.Join(rows, "; ") + ".",
		panels: []*plot.Plot{p}, legend: leg,
	}, nil
}

// lightLoadLabels names the rows of the latency chart by path and load
// ("pollnet-pmd, load 10% (0.89 Mpps)", "pollnet-napi, lowrate 10 kpps"),
// with the frame size where sizes differ; where returns the load part
// alone. Should two rows still share a label, every label falls back to
// the labeler's, which shows whatever knob sets them apart.
func lightLoadLabels(scs []*result.Scenario) (where, label func(*result.Scenario) string) {
	multiSize := len(sizes(scs)) > 1
	where = func(s *result.Scenario) string {
		var t string
		p := loadPointOf(s)
		rate, hasRate := knobNum(s, "rate")
		switch {
		case finite(p.share) && finite(p.mpps):
			t = fmt.Sprintf("load %s%% (%s Mpps)", strconv.FormatFloat(100*p.share, 'f', -1, 64), short3(p.mpps))
		case finite(p.share):
			t = fmt.Sprintf("load %s%%", strconv.FormatFloat(100*p.share, 'f', -1, 64))
		case finite(p.mpps):
			t = "load " + short3(p.mpps) + " Mpps"
		case hasRate && rate > 0:
			t = s.Name + " " + scaleFor("packets/s", rate).format3(rate)
		default:
			t = s.Name
		}
		if size, ok := frameSize(s); ok && multiSize {
			t += fmt.Sprintf(", %g B", size)
		}
		return t
	}
	label = func(s *result.Scenario) string { return s.Path + ", " + where(s) }
	seen := map[string]bool{}
	for _, s := range scs {
		l := label(s)
		if seen[l] {
			lab := newLabeler(scs)
			return where, lab.label
		}
		seen[l] = true
	}
	return where, label
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
	lo, hi := scs[0], scs[0]
	for _, s := range scs {
		if s.Median < lo.Median {
			lo = s
		}
		if s.Median > hi.Median {
			hi = s
		}
	}
	flat := func(s *result.Scenario) string {
		return s.Path + " with " + strings.ReplaceAll(comboOf(s).label, "\n", ", ")
	}
	about := fmt.Sprintf("Median %s for each offload setting: from %s (%s) to %s (%s), %s apart.",
		scs[0].Metric, sc.format3(lo.Median), flat(lo), sc.format3(hi.Median), flat(hi), ratioText(hi.Median, lo.Median))
	return &figure{
		name: OffloadMatrix, title: "Throughput by offload setting", subtitle: subtitle, about: about,
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
	var rows []string
	for i, c := range cats {
		on, off := tput.vals[0][i], tput.vals[1][i]
		if r := ratioText(on, off); r != "—" {
			rows = append(rows, fmt.Sprintf("%s: sendfile %s of copy's throughput", strings.ReplaceAll(c, "\n", " "), r))
		}
	}
	about := "Throughput with sendfile against read and write copies"
	if len(rows) > 0 {
		about += ": " + strings.Join(rows, "; ")
	}
	return &figure{
		name: SendfileVsCopy, title: "sendfile vs copy", subtitle: subtitle, about: about + ".",
		panels: panels, legend: leg,
	}, nil
}

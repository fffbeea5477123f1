package chart

import (
	"errors"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette is Okabe and Ito's colour-blind-safe set, extended with a few
// muted colours; series past its end repeat colours with a new dash.
var palette = []color.Color{
	color.RGBA{0x00, 0x72, 0xB2, 0xFF}, // blue
	color.RGBA{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	color.RGBA{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	color.RGBA{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	color.RGBA{0xE6, 0x9F, 0x00, 0xFF}, // orange
	color.RGBA{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	color.RGBA{0x33, 0x33, 0x33, 0xFF}, // near black
	color.RGBA{0x8C, 0x56, 0x4B, 0xFF}, // brown
	color.RGBA{0x99, 0x99, 0x99, 0xFF}, // grey
	color.RGBA{0x6A, 0x3D, 0x9A, 0xFF}, // dark purple
}

var shapes = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.RingGlyph{},
	draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{},
}

var dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}

func colorOf(i int) color.Color { return palette[i%len(palette)] }

// lineStyle gives series i a colour, and a dash once colours repeat.
func lineStyle(i int) draw.LineStyle {
	return draw.LineStyle{
		Color:  colorOf(i),
		Width:  vg.Points(1.8),
		Dashes: dashes[(i/len(palette))%len(dashes)],
	}
}

// glyphStyle gives series i a colour and a shape, so lines stay apart in
// greyscale print too.
func glyphStyle(i int) draw.GlyphStyle {
	return draw.GlyphStyle{Color: colorOf(i), Radius: vg.Points(3.5), Shape: shapes[i%len(shapes)]}
}

var gridColor = color.Gray{Y: 0xCC}

// addGrid draws light grid lines at the major ticks of the value axis (and
// of the x axis when vertical is set), behind everything added later.
func addGrid(p *plot.Plot, horizontal, vertical bool) {
	g := plotter.NewGrid()
	ls := draw.LineStyle{Color: gridColor, Width: vg.Points(0.7)}
	g.Horizontal, g.Vertical = ls, ls
	if !horizontal {
		g.Horizontal.Color = nil
	}
	if !vertical {
		g.Vertical.Color = nil
	}
	p.Add(g)
}

// Estimates of the data area, used only to size bars: the axes, header and
// legend take the rest of the canvas.
const (
	axisAllowance   = 60 // y tick labels and axis label, points
	headerAllowance = 95 // title, subtitle, caption and x axis, points
)

// maxLegendText is the widest a legend entry may be; longer labels end in
// an ellipsis so that the data keeps most of the width.
const maxLegendText = 190 * vg.Length(1)

// legendText fits a label to maxLegendText on one line.
func legendText(label string) string {
	l := newLegend()
	return fitLines(l.TextStyle, strings.ReplaceAll(label, "\n", " "), maxLegendText)
}

// legendWidth is the width the legend strip will take for these labels.
func legendWidth(labels []string) vg.Length {
	l := newLegend()
	var w vg.Length
	for _, s := range labels {
		w = max(w, l.ThumbnailWidth+l.TextStyle.Width(" "+legendText(s)))
	}
	return w
}

// dataWidth estimates the width of the data area beside a legend.
func dataWidth(legendLabels []string) vg.Length {
	return Width - 2*margin - legendWidth(legendLabels) - vg.Points(12) - vg.Points(axisAllowance)
}

// dataHeight estimates the height of the data area.
func dataHeight() vg.Length { return Height - vg.Points(headerAllowance) }

// bars is a grouped bar chart: one colour per group, one slot per category.
type bars struct {
	cats   []string // category tick labels, may hold newlines
	groups []string // legend labels
	colors []color.Color
	// catColors, for a chart of one group, colours each category's bar
	// (by path) instead; the category labels then name what the colours
	// mean and the group gets no legend entry.
	catColors  []color.Color
	vals       [][]float64 // [group][category]; NaN where there is no value
	lo, hi     [][]float64 // whisker ends like vals, or nil for no whiskers
	horizontal bool        // categories down the y axis, first at the top
	logValues  bool        // value axis is logarithmic
	format     func(float64) string
}

// addTo adds the bars, their value labels when there is room, and legend
// entries. span is the length of the category axis in points. On a log
// axis the bars rise from the decade below the smallest value.
func (b bars) addTo(p *plot.Plot, leg *plot.Legend, span vg.Length) error {
	nc, ng := len(b.cats), len(b.groups)
	width := min(0.8*span/vg.Length(nc)/vg.Length(ng), vg.Points(48))
	floor := 0.0
	if b.logValues {
		lo, hi := math.Inf(1), 0.0
		for _, vs := range b.vals {
			for _, v := range vs {
				if v > 0 && finite(v) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		if math.IsInf(lo, 1) {
			return errors.New("no positive value for a log axis")
		}
		floor = math.Pow(10, math.Floor(math.Log10(lo)))
		top := math.Pow(10, math.Ceil(math.Log10(hi)))
		if top <= floor {
			top = floor * 10
		}
		if b.horizontal {
			p.X.Min, p.X.Max = floor, top
		} else {
			p.Y.Min, p.Y.Max = floor, top
		}
	}
	base := &plotter.BarChart{Values: make(plotter.Values, nc)}
	for i := range base.Values {
		base.Values[i] = floor
	}
	labelStyle := style(valueSize, color.Black, draw.XCenter, draw.YBottom)
	if b.horizontal {
		labelStyle.XAlign, labelStyle.YAlign = draw.XLeft, draw.YCenter
	}
	showValues := b.format != nil && width >= vg.Points(9)
	if b.logValues {
		// Whiskers may reach below the smallest median.
		for g := range b.lo {
			for _, v := range b.lo[g] {
				if v > 0 && finite(v) && v < floor {
					floor = math.Pow(10, math.Floor(math.Log10(v)))
				}
			}
		}
		for i := range base.Values {
			base.Values[i] = floor
		}
		if b.horizontal {
			p.X.Min = floor
		} else {
			p.Y.Min = floor
		}
	}
	for g := range b.groups {
		c := colorOf(g)
		if g < len(b.colors) {
			c = b.colors[g]
		}
		vals := make(plotter.Values, nc)
		var lab plotter.XYLabels
		var wh whiskers
		for i := range nc {
			v := b.vals[g][i]
			if !finite(v) || (b.logValues && v <= 0) {
				continue
			}
			vals[b.slot(i)] = math.Max(v-floor, 0)
			top := v
			if b.lo != nil && b.hi != nil {
				lo, hi := b.lo[g][i], b.hi[g][i]
				if finite(lo) && finite(hi) && hi > lo {
					if b.logValues {
						lo = math.Max(lo, floor)
					}
					wh.pos = append(wh.pos, float64(b.slot(i)))
					wh.lo = append(wh.lo, lo)
					wh.hi = append(wh.hi, hi)
					top = math.Max(top, hi)
				}
			}
			if showValues {
				if b.horizontal {
					lab.XYs = append(lab.XYs, plotter.XY{X: top, Y: float64(b.slot(i))})
				} else {
					lab.XYs = append(lab.XYs, plotter.XY{X: float64(b.slot(i)), Y: top})
				}
				lab.Labels = append(lab.Labels, b.format(v))
			}
		}
		off := (vg.Length(g) - vg.Length(ng-1)/2) * width
		if b.horizontal {
			off = -off // first group on top, as the legend lists it
		}
		if b.catColors == nil {
			bc, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return err
			}
			bc.Color = c
			bc.LineStyle = draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
			bc.Horizontal = b.horizontal
			bc.StackOn(base)
			bc.Offset = off
			p.Add(bc)
			leg.Add(legendText(b.groups[g]), bc)
		} else {
			// One bar chart per category, each in its path's colour.
			for i := range nc {
				if !(vals[b.slot(i)] > 0) {
					continue
				}
				one := &plotter.BarChart{Values: plotter.Values{floor}, XMin: float64(b.slot(i))}
				bc, err := plotter.NewBarChart(plotter.Values{vals[b.slot(i)]}, width)
				if err != nil {
					return err
				}
				bc.Color = b.catColors[i%len(b.catColors)]
				bc.LineStyle = draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
				bc.Horizontal = b.horizontal
				bc.StackOn(one)
				bc.Offset = off
				p.Add(bc)
			}
		}
		if len(wh.pos) > 0 {
			wh.horizontal, wh.offset = b.horizontal, off
			wh.style = draw.LineStyle{Color: color.Gray{Y: 0x22}, Width: vg.Points(1)}
			wh.cap = min(width*0.6, vg.Points(8))
			p.Add(&wh)
		}
		if len(lab.XYs) > 0 {
			l, err := plotter.NewLabels(lab)
			if err != nil {
				return err
			}
			for i := range l.TextStyle {
				l.TextStyle[i] = labelStyle
			}
			gap := vg.Points(3)
			if len(wh.pos) > 0 {
				gap += vg.Points(3) // clear of the whisker's cap
			}
			if b.horizontal {
				l.Offset = vg.Point{X: gap, Y: off}
			} else {
				l.Offset = vg.Point{X: off, Y: gap - vg.Points(1)}
			}
			p.Add(l)
		}
	}
	names := make([]string, nc)
	for i, n := range b.cats {
		names[b.slot(i)] = n
	}
	// Each category owns the slot from i-0.5 to i+0.5, so the outer bars
	// sit inside the data area and the grid spans them too.
	lo, hi := -0.5, float64(nc)-0.5
	if b.horizontal {
		p.NominalY(names...)
		p.Y.Min, p.Y.Max, p.X.Padding = lo, hi, 0
	} else {
		p.NominalX(names...)
		p.X.Min, p.X.Max, p.Y.Padding = lo, hi, 0
	}
	if !b.logValues {
		if b.horizontal {
			p.X.Min = 0
			p.X.Tick.Marker = niceTicks{}
		} else {
			p.Y.Min = 0
			p.Y.Tick.Marker = niceTicks{}
		}
	}
	return nil
}

// slot is where category i sits on its axis: left to right, or top to
// bottom for horizontal bars (the y axis counts upwards).
func (b bars) slot(i int) int {
	if b.horizontal {
		return len(b.cats) - 1 - i
	}
	return i
}

// decadeTicks marks powers of ten, labelled by label, with unlabelled minor
// ticks between them, for log axes.
func decadeTicks(label func(float64) string) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		if !(lo > 0) || !(hi > lo) {
			return nil
		}
		var ts []plot.Tick
		for e := math.Floor(math.Log10(lo)); ; e++ {
			d := math.Pow(10, e)
			if d > hi*1.0001 {
				break
			}
			if d >= lo*0.9999 {
				ts = append(ts, plot.Tick{Value: d, Label: label(d)})
			}
			for m := 2.0; m < 10; m++ {
				if v := m * d; v > lo && v < hi {
					ts = append(ts, plot.Tick{Value: v})
				}
			}
		}
		return ts
	})
}

// formatNs writes a duration given in nanoseconds with a unit that keeps it
// short: 850 ns, 182 µs, 9.42 ms.
func formatNs(ns float64) string {
	switch a := math.Abs(ns); {
	case a < 1e3:
		return strconv.FormatFloat(ns, 'g', 3, 64) + " ns"
	case a < 1e6:
		return strconv.FormatFloat(ns/1e3, 'g', 3, 64) + " µs"
	case a < 1e9:
		return strconv.FormatFloat(ns/1e6, 'g', 3, 64) + " ms"
	}
	return strconv.FormatFloat(ns/1e9, 'g', 3, 64) + " s"
}

// short3 writes v with three significant digits and no exponent for the
// magnitudes charts show.
func short3(v float64) string {
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if math.Abs(v) >= 1000 && math.Abs(v) < 1e9 {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return s
}

// niceTicks labels a linear axis at 1, 2, 2.5 or 5 times a power of ten,
// aiming at about six labels: gonum's default gives three, too few to read
// a bar's height off.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || !finite(lo) || !finite(hi) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	prec := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if m := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9)); m != math.Trunc(m) {
		prec++ // 2.5, 0.25
	}
	var ts []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		v := i * step
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
		if half := v + step/2; half < hi {
			ts = append(ts, plot.Tick{Value: half}) // minor
		}
	}
	return ts
}

// whiskers draws min..max whiskers at category slots, shifted by the same
// offset as the bars of their group, which gonum's error bars cannot do.
type whiskers struct {
	pos, lo, hi []float64 // slot and whisker ends, in data units
	horizontal  bool      // values along x
	offset      vg.Length // across the category axis
	cap         vg.Length // width of the end caps
	style       draw.LineStyle
}

// Plot implements plot.Plotter.
func (w *whiskers) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, pos := range w.pos {
		var a, b vg.Point
		if w.horizontal {
			y := trY(pos) + w.offset
			a, b = vg.Point{X: trX(w.lo[i]), Y: y}, vg.Point{X: trX(w.hi[i]), Y: y}
			c.StrokeLine2(w.style, a.X, a.Y, b.X, b.Y)
			for _, e := range []vg.Point{a, b} {
				c.StrokeLine2(w.style, e.X, e.Y-w.cap/2, e.X, e.Y+w.cap/2)
			}
			continue
		}
		x := trX(pos) + w.offset
		a, b = vg.Point{X: x, Y: trY(w.lo[i])}, vg.Point{X: x, Y: trY(w.hi[i])}
		c.StrokeLine2(w.style, a.X, a.Y, b.X, b.Y)
		for _, e := range []vg.Point{a, b} {
			c.StrokeLine2(w.style, e.X-w.cap/2, e.Y, e.X+w.cap/2, e.Y)
		}
	}
}

// DataRange implements plot.DataRanger, so the axis reaches the longest
// whisker.
func (w *whiskers) DataRange() (xmin, xmax, ymin, ymax float64) {
	vmin, vmax := math.Inf(1), math.Inf(-1)
	for i := range w.pos {
		vmin, vmax = math.Min(vmin, w.lo[i]), math.Max(vmax, w.hi[i])
	}
	pmin, pmax := slices.Min(w.pos), slices.Max(w.pos)
	if w.horizontal {
		return vmin, vmax, pmin, pmax
	}
	return pmin, pmax, vmin, vmax
}

// pathColors fixes the colour of each path, so pollnet-pmd is the same
// blue in every chart of a run and of every run.
var pathColors = map[string]color.Color{
	"pollnet-pmd":   palette[0],
	"pollnet-napi":  palette[1],
	"kernel":        palette[2],
	"gvisor":        palette[3],
	"dpdk-testpmd":  palette[4],
	"kernel-iperf3": palette[5],
}

// pathColorer hands out path colours: the fixed ones, then the rest of the
// palette to other paths in order of first appearance.
type pathColorer struct{ other map[string]color.Color }

func (pc *pathColorer) color(path string) color.Color {
	if c, ok := pathColors[path]; ok {
		return c
	}
	if pc.other == nil {
		pc.other = map[string]color.Color{}
	}
	if c, ok := pc.other[path]; ok {
		return c
	}
	c := palette[(6+len(pc.other))%len(palette)]
	pc.other[path] = c
	return c
}

// logRange returns the decades that hold every positive finite value of
// vs, for a log axis: [10^floor, 10^ceil], at least one decade apart.
func logRange(vs ...float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), 0
	for _, v := range vs {
		if v > 0 && finite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 0, false
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	top := math.Pow(10, math.Ceil(math.Log10(hi)))
	if top <= lo {
		top = lo * 10
	}
	return lo, top, true
}

// logTicks marks a log axis at 1, 2 and 5 times each power of ten, all
// labelled when the axis spans at most two decades (so a reader can read
// values off it) and only the powers of ten otherwise.
func logTicks(label func(float64) string) plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		ts := decadeTicks(label).Ticks(lo, hi)
		if !(lo > 0) || hi/lo > 100.0001 {
			return ts
		}
		for i, t := range ts {
			if t.Label != "" {
				continue
			}
			m := t.Value / math.Pow(10, math.Floor(math.Log10(t.Value)+1e-9))
			if math.Abs(m-2) < 1e-6 || math.Abs(m-5) < 1e-6 {
				ts[i].Label = label(t.Value)
			}
		}
		return ts
	})
}

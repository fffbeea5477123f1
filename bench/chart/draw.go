package chart

import (
	"errors"
	"image/color"
	"math"
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
	cats       []string // category tick labels, may hold newlines
	groups     []string // legend labels
	colors     []color.Color
	vals       [][]float64 // [group][category]; NaN where there is no value
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
	for g := range b.groups {
		c := colorOf(g)
		if g < len(b.colors) {
			c = b.colors[g]
		}
		vals := make(plotter.Values, nc)
		var lab plotter.XYLabels
		for i := range nc {
			v := b.vals[g][i]
			if !finite(v) || (b.logValues && v <= 0) {
				continue
			}
			vals[b.slot(i)] = math.Max(v-floor, 0)
			if showValues {
				if b.horizontal {
					lab.XYs = append(lab.XYs, plotter.XY{X: v, Y: float64(b.slot(i))})
				} else {
					lab.XYs = append(lab.XYs, plotter.XY{X: float64(b.slot(i)), Y: v})
				}
				lab.Labels = append(lab.Labels, b.format(v))
			}
		}
		bc, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bc.Color = c
		bc.LineStyle = draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
		bc.Horizontal = b.horizontal
		bc.StackOn(base)
		off := (vg.Length(g) - vg.Length(ng-1)/2) * width
		if b.horizontal {
			off = -off // first group on top, as the legend lists it
		}
		bc.Offset = off
		p.Add(bc)
		leg.Add(legendText(b.groups[g]), bc)
		if len(lab.XYs) > 0 {
			l, err := plotter.NewLabels(lab)
			if err != nil {
				return err
			}
			for i := range l.TextStyle {
				l.TextStyle[i] = labelStyle
			}
			if b.horizontal {
				l.Offset = vg.Point{X: vg.Points(3), Y: off}
			} else {
				l.Offset = vg.Point{X: off, Y: vg.Points(2)}
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

// sizeTicks marks exactly the frame sizes measured, which on a log axis
// reads better than powers of two nobody ran. A size too close to the last
// labelled one (60 beside 64, 1518 beside 1024) keeps its tick but not its
// label, so labels never overlap.
func sizeTicks(sz []float64) plot.Ticker {
	ts := make(plot.ConstantTicks, len(sz))
	last := math.Inf(-1)
	for i, v := range sz {
		ts[i] = plot.Tick{Value: v}
		if v > 0 && math.Log2(v)-last >= 0.75 {
			ts[i].Label = strconv.FormatFloat(v, 'f', -1, 64)
			last = math.Log2(v)
		}
	}
	return ts
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

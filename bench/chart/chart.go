// Package chart draws the charts of one benchmark run (result.json) as SVG
// and PNG, and writes an index.html (and, for a README, Markdown) that
// leads with them, each followed by a sentence computed from the run, and
// then gives the ratios between paths and a table of every scenario. A PNG
// still makes sense when pasted on its own: every chart carries the
// machine and the date of the run.
//
// The charts: for each workload (a scenario name at one frame size or
// payload), every path that did that work side by side, pollnet and its
// peers alike, as bars at the median with min..max whiskers; pollnet-pmd
// against pollnet-napi at equal offered load (CPU per packet and latency,
// from the "load" scenarios); the idle cost; CPU per packet at full rate
// on a log scale; latency at light load ("load" and "lowrate" only); bit
// rates only for runs that copy frames; offload and sendfile comparisons
// where scenarios carry those knobs.
//
// Prose follows the data, and where a device under test was busy less than
// 90% of the time (dut_busy below 0.9) it says the harness set the rate
// instead of quoting a throughput ratio. Charts are drawn only from data
// the run has: a run whose scenarios were all skipped gives no chart at
// all rather than empty axes, and files from before repeats and dut_busy
// render as they are.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	// The encoders behind the "svg" and "png" formats of
	// draw.NewFormattedCanvas, the same ones plot.Save uses.
	_ "gonum.org/v1/plot/vg/vgimg"
	_ "gonum.org/v1/plot/vg/vgsvg"

	"github.com/pollnet/pollnet/internal/result"
)

// Width and Height are the size of every chart: 800×500 px in the PNG
// (vgimg draws at 96 dpi) and the same size, in points, in the SVG.
const (
	Width  = 600 * vg.Length(1) // 600 pt = 800 px at 96 dpi
	Height = 375 * vg.Length(1) // 375 pt = 500 px at 96 dpi
)

// Names of the charts, without extension; Render writes NAME.svg and
// NAME.png. The per-workload charts are named
// "paths-<scenario>[-<port>]-<size>B" (or "-payload<n>B"), the idle cost
// "idle[-<size>B]", the PMD/NAPI load charts "load-<size>B"; CPUPerPacket
// and ThroughputGbps are prefixes, followed by "-<scenario>-<port>".
const (
	ThroughputGbps = "throughput-gbps"
	CPUPerPacket   = "cpu-per-packet"
	Latency        = "latency-light-load"
	OffloadMatrix  = "offload-matrix"
	SendfileVsCopy = "sendfile-vs-copy"
)

// one adapts a builder of one chart to the list.
func one(build func(*result.Run) (*figure, error)) func(*result.Run) ([]*figure, error) {
	return func(run *result.Run) ([]*figure, error) {
		f, err := build(run)
		if f == nil || err != nil {
			return nil, err
		}
		return []*figure{f}, nil
	}
}

// builders lists the charts in the order index.html shows them: every
// path side by side on each workload first, then what the two modes pay
// at equal load and when idle, then CPU per packet, latency at light
// load, and bit rates where bytes move.
var builders = []struct {
	name  string
	build func(*result.Run) ([]*figure, error)
}{
	{"workloads", func(r *result.Run) ([]*figure, error) { return workloadCharts(r, false) }},
	{"load", loadCharts},
	{"idle", func(r *result.Run) ([]*figure, error) { return workloadCharts(r, true) }},
	{CPUPerPacket, cpuPerPacketChart},
	{Latency, one(latencyChart)},
	{ThroughputGbps, throughputGbps},
	{OffloadMatrix, one(offloadMatrix)},
	{SendfileVsCopy, one(sendfileVsCopy)},
}

// legacyCharts are charts earlier versions drew, removed from a directory
// that Render redraws so index.html and the directory agree.
var legacyCharts = []string{"throughput-mpps", "cpu-per-mpkt", "latency", "samples"}

// Render writes every chart the run's data supports into dir, each as
// NAME.svg and NAME.png, creating dir if needed, and returns the file names
// written (base names, SVG before PNG, in chart order). A chart without data
// is left out, so a run of skipped scenarios gives no files and no error.
// Charts a previous Render of the same directory drew and this one does
// not (a workload no longer in the run, an old chart name) are removed.
func Render(run *result.Run, dir string) ([]string, error) {
	figs, err := figures(run)
	if err != nil {
		return nil, err
	}
	removeStale(dir, figs)
	if len(figs) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	caption := captionOf(run)
	var written []string
	for _, fig := range figs {
		for _, format := range []string{"svg", "png"} {
			data, err := fig.encode(format, caption)
			if err != nil {
				return written, fmt.Errorf("chart %s.%s: %w", fig.name, format, err)
			}
			file := fig.name + "." + format
			if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
				return written, fmt.Errorf("chart: %w", err)
			}
			written = append(written, file)
		}
	}
	return written, nil
}

// removeStale deletes chart files in dir that Render draws under names it
// owns (the fixed names, the legacy ones, "paths-*", "load-*", "idle")
// but not for this run. Nothing else in dir is touched.
func removeStale(dir string, figs []*figure) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, f := range figs {
		keep[f.name] = true
	}
	owned := func(stem string) bool {
		switch {
		case slices.Contains(legacyCharts, stem), stem == "idle", stem == "load":
			return true
		}
		for _, prefix := range []string{"paths-", "load-", "idle-", CPUPerPacket, ThroughputGbps, Latency, OffloadMatrix, SendfileVsCopy} {
			if strings.HasPrefix(stem, prefix) {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		stem := strings.TrimSuffix(name, ext)
		if e.Type().IsRegular() && (ext == ".svg" || ext == ".png") && owned(stem) && !keep[stem] {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// figures builds every chart the run has data for, without drawing them.
// Names are made unique (a second chart of one name gets "-2").
func figures(run *result.Run) ([]*figure, error) {
	if run == nil {
		return nil, errors.New("chart: no run to draw")
	}
	var figs []*figure
	seen := map[string]bool{}
	for _, b := range builders {
		fs, err := b.build(run)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", b.name, err)
		}
		for _, f := range fs {
			name := f.name
			for i := 2; seen[name]; i++ {
				name = fmt.Sprintf("%s-%d", f.name, i)
			}
			f.name = name
			seen[name] = true
			figs = append(figs, f)
		}
	}
	return figs, nil
}

// figure is one chart before encoding: a header, one or more panels side by
// side, and one legend shared by the panels, kept outside the data area so
// it never hides a point. about is the sentence index.html and the README
// print under the chart: what it shows, in figures computed from the run.
type figure struct {
	name     string
	title    string
	subtitle string // how to read it: the statistic, error bars, omissions
	about    string
	panels   []*plot.Plot
	legend   plot.Legend
}

// Fonts. Liberation Sans is what gonum/plot ships and measures text with;
// it is metric-compatible with Arial, which the SVG names as its fallback.
var (
	sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

	titleSize    = vg.Points(15)
	subtitleSize = vg.Points(10)
	captionSize  = vg.Points(8.5)
	panelSize    = vg.Points(11)
	labelSize    = vg.Points(11)
	tickSize     = vg.Points(10)
	legendSize   = vg.Points(10)
	valueSize    = vg.Points(8)

	margin = vg.Points(8)
	grey   = color.Gray{Y: 0x55}
)

// style returns a text style in the chart font.
func style(size vg.Length, c color.Color, xa draw.XAlignment, ya draw.YAlignment) text.Style {
	return text.Style{
		Color:   c,
		Font:    font.From(sans, size),
		XAlign:  xa,
		YAlign:  ya,
		Handler: plot.DefaultTextHandler,
	}
}

// newPlot returns a plot styled alike for every chart: sans fonts sized to
// read at 800×500 px, and light horizontal grid lines to read values off.
func newPlot() *plot.Plot {
	p := plot.New()
	p.Title.TextStyle.Font = font.From(sans, panelSize)
	p.Title.Padding = vg.Points(4)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sans, labelSize)
		a.Tick.Label.Font = font.From(sans, tickSize)
	}
	return p
}

// newLegend returns an empty legend in the chart font, laid out top-left so
// that it fills the strip beside the panels from the top.
func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font = font.From(sans, legendSize)
	l.Top, l.Left = true, true
	l.Padding = vg.Points(3)
	l.ThumbnailWidth = vg.Points(22)
	return l
}

// encode draws the figure on a canvas of the given format ("svg" or "png")
// and returns the file's bytes.
func (f *figure) encode(format, caption string) ([]byte, error) {
	if len(f.panels) == 0 {
		return nil, errors.New("figure without panels")
	}
	cw, err := draw.NewFormattedCanvas(Width, Height, format)
	if err != nil {
		return nil, err
	}
	dc := draw.New(cw)
	dc.SetColor(color.White) // SVG has no background of its own
	dc.Fill(dc.Rectangle.Path())
	c := draw.Crop(dc, margin, -margin, margin/2, -margin)

	// Header: title, then the subtitle in grey, both centred.
	ts := style(titleSize, color.Black, draw.XCenter, draw.YTop)
	c.FillText(ts, vg.Point{X: c.Center().X, Y: c.Max.Y}, f.title)
	c.Max.Y -= ts.Height(f.title) + vg.Points(3)
	if f.subtitle != "" {
		ss := style(subtitleSize, grey, draw.XCenter, draw.YTop)
		sub := fitLines(ss, f.subtitle, c.Max.X-c.Min.X)
		c.FillText(ss, vg.Point{X: c.Center().X, Y: c.Max.Y}, sub)
		c.Max.Y -= ss.Height(sub)
	}
	c.Max.Y -= vg.Points(8)

	// Footer: machine and date, so a PNG stands alone.
	cs := style(captionSize, grey, draw.XLeft, draw.YBottom)
	capt := fitLines(cs, caption, c.Max.X-c.Min.X)
	c.FillText(cs, vg.Point{X: c.Min.X, Y: c.Min.Y}, capt)
	c.Min.Y += cs.Height(capt) + vg.Points(6)

	// Legend strip on the right, its top level with the panels' tops.
	if lw := f.legend.Rectangle(c).Size().X; lw > 0 {
		lc := c
		lc.Min.X = c.Max.X - lw
		if t := f.panels[0].Title; t.Text != "" {
			lc.Max.Y -= t.TextStyle.Height(t.Text) + t.Padding
		}
		f.legend.Draw(lc)
		c.Max.X -= lw + vg.Points(12)
	}

	if len(f.panels) == 1 {
		f.panels[0].Draw(c)
	} else {
		tiles := draw.Tiles{Rows: 1, Cols: len(f.panels), PadX: vg.Points(18)}
		cs := plot.Align([][]*plot.Plot{f.panels}, tiles, c)
		for i, p := range f.panels {
			p.Draw(cs[0][i])
		}
	}

	var buf bytes.Buffer
	if _, err := cw.WriteTo(&buf); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if format == "svg" {
		out = svgFontFallback(out)
	}
	return out, nil
}

// svgFontFallback gives the SVG's font families generic fallbacks. vgsvg
// names only "Liberation Sans", which most browsers lack and replace with
// their default serif font, wider than the text was measured for; Arial and
// Helvetica have the same metrics as Liberation Sans.
func svgFontFallback(svg []byte) []byte {
	return bytes.ReplaceAll(svg,
		[]byte("font-family:Liberation Sans;"),
		[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
}

// fitLines shortens each line of s with an ellipsis until it fits width, so
// a long command line or CPU name cannot run off the image.
func fitLines(st text.Style, s string, width vg.Length) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if st.Width(l) <= width {
			continue
		}
		// The longest prefix that fits with the ellipsis, by bisection:
		// measuring text is the slow part.
		r := []rune(l)
		lo, hi := 0, len(r) // r[:lo]+"…" fits; r[:hi]+"…" does not
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if st.Width(string(r[:mid])+"…") <= width {
				lo = mid
			} else {
				hi = mid
			}
		}
		lines[i] = strings.TrimRight(string(r[:lo]), " ") + "…"
	}
	return strings.Join(lines, "\n")
}

// captionOf describes where and when the run happened, for the footer of
// every chart.
func captionOf(run *result.Run) string {
	m := run.Machine
	var parts []string
	if m.CPU != "" {
		parts = append(parts, m.CPU)
	}
	if m.Cores > 0 {
		parts = append(parts, fmt.Sprintf("%d cores", m.Cores))
	}
	if m.OS != "" || m.Arch != "" {
		parts = append(parts, strings.Trim(m.OS+"/"+m.Arch, "/"))
	}
	if m.Kernel != "" {
		parts = append(parts, "kernel "+m.Kernel)
	}
	if m.Go != "" {
		parts = append(parts, m.Go)
	}
	if !run.Started.IsZero() {
		parts = append(parts, "run "+run.Started.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if run.Suite != "" {
		parts = append(parts, "suite "+run.Suite)
	}
	if len(parts) == 0 {
		return "machine and date not recorded"
	}
	return strings.Join(parts, " · ")
}

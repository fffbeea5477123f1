package chart

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	stdmaps "maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg/draw"

	"github.com/pollnet/pollnet/internal/result"
)

// hostile is a scenario name that must come out of every file as text.
const hostile = `<script>alert("x")</script>&`

var machine = result.Machine{
	CPU: "Test CPU @ 3.0GHz", Cores: 2, Kernel: "6.1.0", Go: "go1.26.0",
	OS: "linux", Arch: "amd64", GOMAXPROCS: 2, Hostname: "ci",
}

// scenario builds a ran scenario whose summary matches its samples, with
// knobs typed as an in-process bench builds them (ints, not float64).
func scenario(t *testing.T, name, path, metric, unit string, knobs map[string]any, samples ...float64) result.Scenario {
	t.Helper()
	s := result.Scenario{
		Name: name, Path: path, Port: "wire", Knobs: knobs,
		Metric: metric, Unit: unit, Samples: samples,
		Counters: map[string]uint64{}, Extra: map[string]float64{},
	}
	if err := s.Summarise(); err != nil {
		t.Fatal(err)
	}
	return s
}

// ppsScenarios is a pps sweep over sizes for one path, shaped like what
// bench pps writes.
func ppsScenarios(t *testing.T, path string, sizes []int, mpps func(size int) float64) []result.Scenario {
	var out []result.Scenario
	for _, size := range sizes {
		m := mpps(size) * 1e6
		knobs := map[string]any{"size": size, "queues": 1, "mode": strings.TrimPrefix(path, "pollnet-"), "duration_s": 3.0}
		if path == "pollnet-napi" {
			knobs["budget"] = 300
		}
		s := scenario(t, "pps", path, "rx_pps", "packets/s", knobs, m*0.97, m, m*1.02, m*0.99)
		s.CPUSeconds = 1.9
		s.Counters["rx_missed"] = uint64(size) * 1000
		s.Counters["interrupts"] = 12345678
		s.Extra["mpps_median"] = s.Median / 1e6
		s.Extra["gbps_median"] = s.Median * float64(size+24) * 8 / 1e9
		s.Extra["dut_cpu_s_per_mpkt"] = 1 / mpps(size) * 0.9
		s.Extra["dut_cpu_ns_per_packet"] = s.Extra["dut_cpu_s_per_mpkt"] * 1000
		s.Extra["latency_p50_ns"] = 20e3 + float64(size)*10
		s.Extra["latency_p99_ns"] = 150e3 + float64(size)*50
		s.Extra["latency_p999_ns"] = 900e3
		s.Extra["latency_max_ns"] = 4.2e6
		out = append(out, s)
	}
	return out
}

// fullRun has data for every chart, a skipped peer, an idle scenario of
// another metric, and a hostile name.
func fullRun(t *testing.T) *result.Run {
	run := &result.Run{
		Suite: "synthetic", Started: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC),
		Command: "pollnet bench all --out x", Machine: machine,
	}
	sizes := []int{64, 128, 256, 512, 1024, 1518}
	run.Scenarios = append(run.Scenarios, ppsScenarios(t, "pollnet-pmd", sizes, func(s int) float64 { return 12 - float64(s)/200 })...)
	run.Scenarios = append(run.Scenarios, ppsScenarios(t, "pollnet-napi", sizes, func(s int) float64 { return 9 - float64(s)/250 })...)
	run.Scenarios = append(run.Scenarios, ppsScenarios(t, "kernel", sizes[:3], func(s int) float64 { return 1.5 })...)
	run.Scenarios = append(run.Scenarios, result.Scenario{
		Name: "pps", Path: "dpdk-testpmd", Port: "wire", Knobs: map[string]any{"size": 64},
		Metric: "rx_pps", Unit: "packets/s", Skipped: "dpdk-testpmd not installed",
	})
	// Offloads: every on/off combination on the kernel path, half of them
	// on gvisor.
	for i := range 8 {
		gro, tso, csum := i&1 != 0, i&2 != 0, i&4 != 0
		for _, path := range []string{"kernel", "gvisor"} {
			if path == "gvisor" && i%2 == 1 {
				continue
			}
			v := 1e6 * (1 + float64(i))
			run.Scenarios = append(run.Scenarios, scenario(t, "offload", path, "rx_pps", "packets/s",
				map[string]any{"gro": gro, "tso": tso, "csum": csum, "size": 1518}, v, v*1.01))
		}
	}
	// sendfile against read/write copies, as a TCP bench would record them.
	for _, path := range []string{"kernel", "gvisor"} {
		for _, file := range []int{65536, 1 << 20} {
			for _, sf := range []bool{true, false} {
				gbps := 8.0
				if !sf {
					gbps = 5
				}
				if path == "gvisor" {
					gbps /= 2
				}
				s := scenario(t, "tcp-stream", path, "tx_bps", "bits/s",
					map[string]any{"sendfile": sf, "file_size": file}, gbps*1e9, gbps*1.05e9, gbps*0.95e9)
				s.CPUSeconds = 2.5
				s.Extra["wall_seconds"] = 3
				run.Scenarios = append(run.Scenarios, s)
			}
		}
	}
	idle := scenario(t, "idle", "pollnet-pmd", "dut_cpu", "cores", map[string]any{"mode": "pmd"}, 1, 0.99, 1)
	run.Scenarios = append(run.Scenarios, idle)
	run.Scenarios = append(run.Scenarios, scenario(t, hostile, "pollnet-pmd", "rx_pps", "packets/s",
		map[string]any{"size": 64, "note": `"quoted" <b>bold</b>`}, 1e6, 1.1e6))
	return run
}

// checkFiles checks that every chart file exists and decodes: PNGs to
// 800×500, SVGs as XML to the end.
func checkFiles(t *testing.T, dir string, files []string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Fatalf("%s is empty", f)
		}
		switch filepath.Ext(f) {
		case ".png":
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 500 {
				t.Errorf("%s is %dx%d, want 800x500", f, b.Dx(), b.Dy())
			}
		case ".svg":
			checkSVG(t, f, data)
		default:
			t.Errorf("unexpected file %s", f)
		}
	}
}

func checkSVG(t *testing.T, name string, data []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", name, root)
	}
}

// names returns the chart names (without extension) among files.
func names(files []string) []string {
	var out []string
	for _, f := range files {
		if n := strings.TrimSuffix(f, ".svg"); n != f {
			out = append(out, n)
		}
	}
	return out
}

func TestRenderAllCharts(t *testing.T) {
	dir := t.TempDir()
	run := fullRun(t)
	files, err := Render(run, dir)
	if err != nil {
		t.Fatal(err)
	}
	got := names(files)
	for _, want := range []string{
		"paths-pps-64B", "paths-pps-1518B", "paths-offload-1518B", "paths-tcp-stream", "idle",
		"cpu-per-packet-pps-wire", "throughput-gbps-pps-wire", OffloadMatrix, SendfileVsCopy,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("charts %v lack %s", got, want)
		}
	}
	if len(files) != 2*len(got) {
		t.Fatalf("files %v: want an SVG and a PNG per chart", files)
	}
	checkFiles(t, dir, files)
	// The caption names the machine and date so a PNG stands alone; the
	// SVG text shows it.
	svg, err := os.ReadFile(filepath.Join(dir, "paths-pps-64B.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Test CPU", "2 cores", "go1.26.0", "2026-03-01 12:30 UTC", "Arial", "pollnet-pmd", "pollnet-napi", "kernel"} {
		if !bytes.Contains(svg, []byte(s)) {
			t.Errorf("64 B workload SVG lacks %q", s)
		}
	}
	// The labels keep path-only knobs out: napi's budget is constant.
	if bytes.Contains(svg, []byte("budget")) {
		t.Error("bar label names napi's constant budget knob")
	}
	// The hostile name is escaped in the SVG that shows it, and its file
	// name holds no markup.
	for _, f := range got {
		if strings.ContainsAny(f, "<>\"&/ ") {
			t.Errorf("chart file name %q carries unsafe characters", f)
		}
		data, err := os.ReadFile(filepath.Join(dir, f+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("<script")) {
			t.Errorf("%s.svg carries a raw <script> tag", f)
		}
	}
}

func TestRenderRealResult(t *testing.T) {
	// A file from before repeats, dut_busy and the load scenarios.
	run, err := result.Read("testdata/result.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := Render(run, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"paths-pps-64B", "paths-pps-512B", "paths-pps-1518B", "cpu-per-packet-pps-wire", "throughput-gbps-pps-wire"}
	if got := names(files); !slices.Equal(got, want) {
		t.Fatalf("charts %v, want %v", got, want)
	}
	checkFiles(t, dir, files)
	if err := WriteIndex(run, dir, files); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	// pmd and napi ran every size: one ratio row per size.
	if n := bytes.Count(page, []byte("<td>pollnet-pmd</td><td>pollnet-napi</td>")); n != 3 {
		t.Errorf("index has %d pmd/napi ratio rows, want 3", n)
	}
	// Old files call their samples samples, not runs.
	if !bytes.Contains(page, []byte("(samples ")) {
		t.Error("index does not give the spread of an old file's samples")
	}
}

// TestRenderRemovesStaleCharts: a directory redrawn from a run that no
// longer has a chart loses that chart's files (and an old chart name's),
// and keeps files Render does not own.
func TestRenderRemovesStaleCharts(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"paths-gone-64B.svg", "paths-gone-64B.png", "throughput-mpps.png", "photo.png", "notes.svg"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := &result.Run{Scenarios: []result.Scenario{
		scenario(t, "pps", "pollnet-pmd", "rx_pps", "packets/s", map[string]any{"size": 64, "zero_copy": true}, 1e6, 1.1e6),
	}}
	files, err := Render(run, dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := append([]string{"notes.svg", "photo.png"}, files...)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("directory holds %v, want %v", left, want)
	}
}

// TestRenderEachKind renders runs holding the data of one chart each, so
// a chart that leaks into another's data, or needs another's, shows.
func TestRenderEachKind(t *testing.T) {
	full := fullRun(t)
	only := func(keep func(*result.Scenario) bool) *result.Run {
		r := *full
		r.Scenarios = nil
		for _, s := range full.Scenarios {
			if keep(&s) {
				s.Knobs = stdmaps.Clone(s.Knobs) // cases change them
				r.Scenarios = append(r.Scenarios, s)
			}
		}
		return &r
	}
	strip := func(r *result.Run, extra ...string) *result.Run {
		for i := range r.Scenarios {
			s := &r.Scenarios[i]
			s.Extra = maps(s.Extra, extra...)
			s.Samples = s.Samples[:min(1, len(s.Samples))]
		}
		return r
	}
	kernelPPS := func(s *result.Scenario) bool { return s.Name == "pps" && s.Path == "kernel" }
	lowrate := func(r *result.Run) *result.Run {
		for i := range r.Scenarios {
			r.Scenarios[i].Name = "lowrate"
			r.Scenarios[i].Knobs["rate"] = 10000
		}
		return r
	}
	kernelSizes := []string{"paths-pps-64B", "paths-pps-128B", "paths-pps-256B"}
	cases := []struct {
		name string
		run  *result.Run
		want []string
	}{
		{"pps without extras", strip(only(kernelPPS)),
			append(slices.Clone(kernelSizes), "throughput-gbps-pps-wire")},
		{"cpu only", strip(only(kernelPPS), "dut_cpu_s_per_mpkt"),
			append(slices.Clone(kernelSizes), "cpu-per-packet-pps-wire", "throughput-gbps-pps-wire")},
		// Latency at full rate is the queue the generator fills: only a
		// light load gives a latency chart, and no throughput charts.
		{"full-rate latency", strip(only(kernelPPS), "latency_p99_ns"),
			append(slices.Clone(kernelSizes), "throughput-gbps-pps-wire")},
		{"light-load latency", lowrate(strip(only(kernelPPS), "latency_p99_ns")),
			[]string{Latency}},
		{"offload", strip(only(func(s *result.Scenario) bool { return s.Name == "offload" })),
			[]string{"paths-offload-1518B", "throughput-gbps-offload-wire", OffloadMatrix}},
		{"sendfile", strip(only(func(s *result.Scenario) bool { return s.Name == "tcp-stream" })),
			[]string{"paths-tcp-stream", SendfileVsCopy}},
		{"idle", only(func(s *result.Scenario) bool { return s.Name == "idle" }),
			[]string{"idle"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			figs, err := figures(c.run)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range figs {
				got = append(got, f.name)
				// SVG only: the drawing code is the same for PNG, which
				// the other tests decode, and rasterising is slow under
				// the race detector.
				svg, err := f.encode("svg", captionOf(c.run))
				if err != nil {
					t.Fatal(err)
				}
				checkSVG(t, f.name, svg)
				if f.about == "" {
					t.Errorf("%s has no sentence saying what it shows", f.name)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("charts %v, want %v", got, c.want)
			}
		})
	}
}

// maps returns a copy of m holding only keys.
func maps(m map[string]float64, keys ...string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func TestRenderNothingToDraw(t *testing.T) {
	skipped := &result.Run{Suite: "x", Machine: machine, Scenarios: []result.Scenario{
		{Name: "pps", Path: "dpdk-testpmd", Knobs: map[string]any{"size": 64}, Metric: "rx_pps", Unit: "packets/s", Skipped: "no DPDK"},
		{Name: "pps", Path: "gvisor", Knobs: map[string]any{"size": 64, "gro": true, "sendfile": true}, Metric: "rx_pps", Unit: "packets/s",
			Samples: []float64{1, 2}, Median: 1.5, Extra: map[string]float64{"latency_p50_ns": 10}, Skipped: "runsc missing"},
	}}
	for name, run := range map[string]*result.Run{"empty": {}, "skipped only": skipped} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			files, err := Render(run, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 0 {
				t.Fatalf("drew %v from a run with nothing to draw", files)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Render created %s with nothing to put in it (err %v)", dir, err)
			}
			if err := WriteIndex(run, dir, files); err != nil {
				t.Fatal(err)
			}
			page, err := os.ReadFile(filepath.Join(dir, IndexFile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(page, []byte("No charts")) {
				t.Error("index does not say there are no charts")
			}
		})
	}
	if _, err := Render(nil, t.TempDir()); err == nil {
		t.Error("Render(nil) did not fail")
	}
}

// TestRenderOddValues feeds values a log axis or a plotter would choke on:
// zero and missing latency percentiles, NaN summaries, one frame size, a
// zero median.
func TestRenderOddValues(t *testing.T) {
	s := scenario(t, "pps", "pollnet-pmd", "rx_pps", "packets/s", map[string]any{"size": 60}, 5e6)
	s.Extra["dut_cpu_s_per_mpkt"] = math.NaN()
	s.Min, s.Max = math.NaN(), math.Inf(1)
	n := scenario(t, "pps", "pollnet-napi", "rx_pps", "packets/s", map[string]any{"size": 60.0, "zero_copy": "on"}, 0)
	l := scenario(t, "lowrate", "pollnet-pmd", "rx_pps", "packets/s", map[string]any{"size": 60, "rate": 1000}, 1000)
	l.Extra["latency_p50_ns"] = 0
	l.Extra["latency_max_ns"] = 3e9
	run := &result.Run{Scenarios: []result.Scenario{s, n, l}}
	dir := t.TempDir()
	files, err := Render(run, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"paths-pps-60B", Latency, "throughput-gbps-pps-wire"}
	if got := names(files); !slices.Equal(got, want) {
		t.Fatalf("charts %v, want %v", got, want)
	}
	checkFiles(t, dir, files)
}

// TestRenderJSONRoundTrip checks that knobs read back from result.json
// (float64 numbers) chart the same as in-process ones (ints).
func TestRenderJSONRoundTrip(t *testing.T) {
	run := fullRun(t)
	data, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	var back result.Run
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	summary := func(r *result.Run) []string {
		figs, err := figures(r)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range figs {
			out = append(out, f.name+"|"+f.subtitle+"|"+fmt.Sprint(f.legend.Rectangle(draw.Canvas{}).Size()))
		}
		return out
	}
	if a, b := summary(run), summary(&back); !slices.Equal(a, b) {
		t.Fatalf("in-process run gives\n%v\nJSON round trip gives\n%v", a, b)
	}
}

func TestLabeler(t *testing.T) {
	run := fullRun(t)
	scs := ppsBySize(run)
	lab := newLabeler(scs, "size")
	got := map[string]bool{}
	for _, s := range scs {
		got[lab.label(s)] = true
	}
	// The hostile scenario has a different name, so names show; its own
	// "note" knob differs from the other pmd scenarios'.
	for _, want := range []string{"pollnet-pmd pps", "pollnet-napi pps", "kernel pps"} {
		if !got[want] {
			t.Errorf("labels %v lack %q", got, want)
		}
	}
	for l := range got {
		if strings.Contains(l, "budget") || strings.Contains(l, "queues") {
			t.Errorf("label %q names a knob that does not vary within its path", l)
		}
	}
}

func TestKnobReading(t *testing.T) {
	s := &result.Scenario{Knobs: map[string]any{
		"a": 64, "b": 64.0, "c": json.Number("64"), "d": uint16(64), "e": "64",
		"on": "on", "off": "OFF", "t": true, "one": 1, "two": 2.0,
	}}
	for _, k := range []string{"a", "b", "c", "d"} {
		if v, ok := knobNum(s, k); !ok || v != 64 {
			t.Errorf("knobNum(%s) = %v, %v", k, v, ok)
		}
	}
	if _, ok := knobNum(s, "e"); ok {
		t.Error("a string knob read as a number")
	}
	for k, want := range map[string]bool{"on": true, "off": false, "t": true, "one": true} {
		if v, ok := knobBool(s, k); !ok || v != want {
			t.Errorf("knobBool(%s) = %v, %v; want %v", k, v, ok, want)
		}
	}
	if _, ok := knobBool(s, "two"); ok {
		t.Error("2 read as a boolean")
	}
}

func TestScaleAndTicks(t *testing.T) {
	for _, c := range []struct {
		unit string
		max  float64
		want string
	}{
		{"packets/s", 9.1e6, "9.1 Mpps"},
		{"bits/s", 2.5e10, "25 Gbit/s"},
		{"cores", 0.99, "0.99 cores"},
		{"connections/s", 12000, "12 kconn/s"},
		{"", 3, "3"},
	} {
		if got := scaleFor(c.unit, c.max).format(c.max); got != c.want {
			t.Errorf("scaleFor(%q).format(%v) = %q, want %q", c.unit, c.max, got, c.want)
		}
	}
	var labels []string
	for _, tk := range (niceTicks{}).Ticks(0, 0.67) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if want := []string{"0.0", "0.2", "0.4", "0.6"}; !slices.Equal(labels, want) {
		t.Errorf("ticks %v, want %v", labels, want)
	}
	for ns, want := range map[float64]string{850: "850 ns", 182271: "182 µs", 9.42e6: "9.42 ms", 2e9: "2 s"} {
		if got := formatNs(ns); got != want {
			t.Errorf("formatNs(%v) = %q, want %q", ns, got, want)
		}
	}
}

func TestFitLines(t *testing.T) {
	st := style(captionSize, grey, 0, 0)
	long := strings.Repeat("wide ", 400)
	got := fitLines(st, long+"\nshort", Width)
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[1] != "short" || !strings.HasSuffix(lines[0], "…") {
		t.Fatalf("fitLines = %q", got)
	}
	if w := st.Width(lines[0]); w > Width {
		t.Errorf("fitted line is %v wide, more than %v", w, Width)
	}
}

func ExampleRender() {
	run, err := result.Read("testdata/result.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "charts")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	files, err := Render(run, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := WriteIndex(run, dir, files); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(files, " "))
}

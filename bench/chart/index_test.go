package chart

import (
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/internal/result"
)

func TestWriteIndex(t *testing.T) {
	dir := t.TempDir()
	run := fullRun(t)
	figs, err := figures(run) // the page only names the files
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range figs {
		files = append(files, f.name+".svg", f.name+".png")
	}
	if err := WriteIndex(run, dir, files); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)

	if strings.Contains(page, "<script") {
		t.Error("index.html carries a raw <script> tag from a scenario name")
	}
	if strings.Contains(page, "<b>bold") {
		t.Error("index.html carries raw markup from a knob value")
	}
	for _, s := range run.Scenarios {
		if want := "<td>" + template.HTMLEscapeString(s.Name) + "</td><td>" + s.Path + " · " + s.Port + "</td>"; !strings.Contains(page, want) {
			t.Errorf("index lacks the row of %q on %s", s.Name, s.Path)
		}
	}
	for _, want := range []string{
		run.Command, "Test CPU @ 3.0GHz", "2026-03-01 12:30:00 UTC",
		"Skipped:</span> dpdk-testpmd not installed",
		"rx_missed 64,000", "interrupts 12,345,678",
		// pmd against napi at 64 B: 11.62/8.7 Mpps.
		"<tr><td>pps</td><td>64 B</td><td>pollnet-pmd</td><td>pollnet-napi</td>",
		"<strong>1.34×</strong>",
		"4,200,000", // latency_max_ns in full, not 4.2e+06
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	for _, f := range files {
		var want string
		if strings.HasSuffix(f, ".svg") {
			want = `<img src="` + f + `"`
		} else {
			want = `<a href="` + f + `">PNG</a>`
		}
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<link", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html refers to an external asset (%q)", bad)
		}
	}
}

func TestChartRefs(t *testing.T) {
	figs := []*figure{{name: "latency", title: "Latency at light load", about: "It shows latency."}}
	got := chartRefs([]string{"latency.svg", "latency.png", "extra.png", "notes.txt", "latency.svg"}, figs)
	want := []chartRef{
		{Title: "Latency at light load", About: "It shows latency.", Img: "latency.svg", PNG: "latency.png"},
		{Title: "extra", Img: "extra.png", PNG: "extra.png"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chartRefs = %+v, want %+v", got, want)
	}
}

func TestRatiosMatchAcrossPaths(t *testing.T) {
	mk := func(path string, size int, mpps float64, knobs map[string]any) result.Scenario {
		k := map[string]any{"size": size, "mode": path}
		for key, v := range knobs {
			k[key] = v
		}
		s := scenario(t, "pps", path, "rx_pps", "packets/s", k, mpps*1e6)
		s.Extra["dut_cpu_ns_per_packet"] = 100 / mpps
		return s
	}
	run := &result.Run{Scenarios: []result.Scenario{
		mk("pollnet-pmd", 64, 10, nil),
		mk("pollnet-napi", 64, 5, map[string]any{"budget": 300}), // napi-only knob: still a match
		mk("pollnet-napi", 64, 4, map[string]any{"zero_copy": true}),
		mk("pollnet-pmd", 1518, 2, map[string]any{"zero_copy": false}),
		mk("pollnet-napi", 1518, 2, map[string]any{"zero_copy": true}), // differs: no match
	}}
	rows := ratios(run)
	if len(rows) != 2 {
		t.Fatalf("ratios = %+v, want 2 rows", rows)
	}
	if r := rows[0]; r.A != "pollnet-pmd" || r.B != "pollnet-napi" || r.Tput != "2.00×" || r.CPU != "0.50×" {
		t.Errorf("first ratio %+v", r)
	}
	if r := rows[1]; r.Tput != "2.50×" {
		t.Errorf("second ratio %+v", r)
	}
}

// TestLabelerCollision: two scenarios of a path that differ only in a knob
// one of them lacks still get different labels.
func TestLabelerCollision(t *testing.T) {
	a := scenario(t, "pps", "kernel", "rx_pps", "packets/s", map[string]any{"size": 64}, 1)
	b := scenario(t, "pps", "kernel", "rx_pps", "packets/s", map[string]any{"size": 64, "busy_poll": 50}, 1)
	c := scenario(t, "pps", "kernel", "rx_pps", "packets/s", map[string]any{"size": 128}, 1)
	scs := []*result.Scenario{&a, &b, &c}
	lab := newLabeler(scs, "size")
	if la, lb := lab.label(&a), lab.label(&b); la == lb || lb != "kernel busy_poll=50" {
		t.Errorf("labels %q and %q", la, lb)
	}
	// A lone knob stays out when the labels differ anyway, here by name.
	d := scenario(t, "idle", "kernel", "rx_pps", "packets/s", map[string]any{"size": 64}, 1)
	lab = newLabeler([]*result.Scenario{&b, &d}, "size")
	if got := lab.label(&b); got != "kernel pps" {
		t.Errorf("label %q, want %q", got, "kernel pps")
	}
}

func TestWriteMarkdown(t *testing.T) {
	run, err := result.Read("testdata/result.json")
	if err != nil {
		t.Fatal(err)
	}
	run.Scenarios = append(run.Scenarios, result.Scenario{Name: "x|<b>", Path: "kernel", Skipped: "needs root"})
	var b strings.Builder
	if err := WriteMarkdown(&b, run, "reference", []string{"paths-pps-64B.svg", "paths-pps-64B.png"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"![Forwarding rate (pps), 64 B frames](reference/paths-pps-64B.png)", "reference/result.json",
		"skipped: needs root", `x\|&lt;b&gt;`, "| pps |"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

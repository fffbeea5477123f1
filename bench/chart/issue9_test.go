package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"

	"github.com/pollnet/pollnet/internal/result"
)

// suiteScenario builds a scenario as the issue-9 suite writes one: its
// samples are independent runs (Repeat set), with roles, GOMAXPROCS and
// warm-up filled, and dut_busy where busy is not negative.
func suiteScenario(t *testing.T, name, path, port, metric, unit string, knobs map[string]any, busy float64, runs ...float64) result.Scenario {
	t.Helper()
	s := scenario(t, name, path, metric, unit, knobs, runs...)
	s.Port = port
	s.Repeat = len(runs)
	s.WarmupS = 0.5
	s.GOMAXPROCS = 2
	s.Roles = map[string]int{"dut": 1, "generator": 0}
	if busy >= 0 {
		s.DUTBusy = &busy
	}
	return s
}

func mega(vs ...float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = v * 1e6
	}
	return out
}

// suiteRun holds every scenario name the team uses (DESIGN.md, issue 9):
// pps on the null port against testpmd (with and without copies, testpmd
// at one size only), pps on the wire with the harness as the limit,
// zero_loss, load at three shares, idle, lowrate, udp_rr and udp_stream
// with the kernel and gVisor, and tcp_stream counted as goodput.
func suiteRun(t *testing.T) *result.Run {
	run := &result.Run{
		Suite: "full", Started: time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC),
		Command: "pollnet bench --suite full --repeat 3", Machine: machine,
	}
	run.Machine.Commit = "abc1234"
	add := func(s result.Scenario) { run.Scenarios = append(run.Scenarios, s) }
	const none = -1.0 // no dut_busy recorded (peers)

	// pps on the null port: one forwarding core, pollnet against testpmd.
	for _, copy := range []bool{true, false} {
		k := func(size int) map[string]any { return map[string]any{"size": size, "fwd": "macswap", "copy": copy} }
		pmd := suiteScenario(t, "pps", "pollnet-pmd", "null", "rx_pps", "packets/s", k(64), 1, mega(11.2, 11.6, 11.7)...)
		pmd.Extra["ns_per_packet"] = 86
		tpm := suiteScenario(t, "pps", "dpdk-testpmd", "null", "rx_pps", "packets/s", k(64), none, mega(20.1, 20.5, 21)...)
		tpm.Extra["ns_per_packet"] = 49
		big := suiteScenario(t, "pps", "pollnet-pmd", "null", "rx_pps", "packets/s", k(1518), 1, mega(3.9, 4.0, 4.2)...)
		big.Extra["ns_per_packet"] = 250
		add(pmd)
		add(tpm)
		add(big)
	}
	// pps through the wire pipeline: the generator and sink share the
	// cores, and the device idles.
	wire := map[string]any{"size": 64, "queues": 1}
	add(suiteScenario(t, "pps", "pollnet-pmd", "wire", "rx_pps", "packets/s", wire, 0.55, mega(5.0, 5.1, 5.3)...))
	add(suiteScenario(t, "pps", "pollnet-napi", "wire", "rx_pps", "packets/s", wire, 0.62, mega(4.0, 4.2, 4.4)...))
	// Zero-loss rates with a busy device.
	for _, c := range []struct {
		path string
		busy float64
		runs []float64
	}{{"pollnet-pmd", 0.97, mega(11.2, 11.6, 11.7)}, {"pollnet-napi", 0.93, mega(8.7, 8.9, 9.0)}} {
		s := suiteScenario(t, "zero_loss", c.path, "wire", "rx_pps", "packets/s", map[string]any{"size": 64}, c.busy, c.runs...)
		s.Extra["loss_ratio"] = 0.000004
		s.Extra["trials"] = 9
		add(s)
	}
	// Equal offered load: 10, 50 and 90% of napi's zero-loss rate.
	for _, share := range []float64{0.1, 0.5, 0.9} {
		offered := share * 8.9e6
		for _, c := range []struct {
			path     string
			cpu      float64 // ns per packet
			p50, p99 float64 // µs
		}{{"pollnet-pmd", 1e9 / offered, 3, 12}, {"pollnet-napi", 120 - 20*share, 18, 45 + 100*share}} {
			s := suiteScenario(t, "load", c.path, "wire", "cpu_ns_per_packet", "ns",
				map[string]any{"size": 64, "offered_pps": offered, "load_share": share}, 0.3,
				c.cpu*0.95, c.cpu, c.cpu*1.1)
			s.Extra["lat_p50_us"] = c.p50
			s.Extra["lat_p99_us"] = c.p99
			s.Extra["lat_p999_us"] = 3 * c.p99
			add(s)
		}
	}
	add(suiteScenario(t, "idle", "pollnet-pmd", "wire", "cpu_share", "cores", map[string]any{}, none, 0.99, 1, 1))
	add(suiteScenario(t, "idle", "pollnet-napi", "wire", "cpu_share", "cores", map[string]any{}, none, 0.015, 0.02, 0.02))
	for _, path := range []string{"pollnet-pmd", "pollnet-napi"} {
		s := suiteScenario(t, "lowrate", path, "wire", "rx_pps", "packets/s", map[string]any{"size": 64, "rate": 10000}, 0.1, 9990, 10000, 10000)
		s.Extra["latency_p50_ns"] = 2400
		s.Extra["latency_p99_ns"] = 130000
		add(s)
	}
	// UDP with the peers on the same payloads, MTU and batching; the
	// kernel ran one payload only.
	udp := func(payload, batch int) map[string]any {
		return map[string]any{"payload": payload, "mtu": 1500, "batch": batch}
	}
	for _, payload := range []int{16, 1400} {
		f := 1.0
		if payload == 1400 {
			f = 0.7
		}
		add(suiteScenario(t, "udp_rr", "pollnet-pmd", "wire", "transactions_per_s", "transactions/s", udp(payload, 1), none, 210e3*f, 217e3*f, 220e3*f))
		add(suiteScenario(t, "udp_rr", "pollnet-napi", "wire", "transactions_per_s", "transactions/s", udp(payload, 1), none, 9e3*f, 10e3*f, 11e3*f))
		if payload == 16 {
			add(suiteScenario(t, "udp_rr", "kernel", "veth", "transactions_per_s", "transactions/s", udp(payload, 1), none, 40e3, 42e3, 45e3))
		}
		add(suiteScenario(t, "udp_rr", "gvisor", "channel", "transactions_per_s", "transactions/s", udp(payload, 1), none, 70e3*f, 80e3*f, 85e3*f))
	}
	add(suiteScenario(t, "udp_stream", "pollnet-pmd", "wire", "rx_pps", "datagrams/s", udp(64, 32), none, mega(1.6, 1.7, 1.75)...))
	add(suiteScenario(t, "udp_stream", "kernel", "veth", "rx_pps", "datagrams/s", udp(64, 32), none, mega(0.9, 1.0, 1.1)...))
	add(suiteScenario(t, "udp_stream", "gvisor", "channel", "rx_pps", "datagrams/s", udp(64, 1), none, mega(0.4, 0.5, 0.6)...))
	for _, c := range []struct {
		path, port string
		gbit       float64
	}{{"kernel", "loopback", 30}, {"kernel-iperf3", "loopback", 33}, {"gvisor", "channel", 3}} {
		add(suiteScenario(t, "tcp_stream", c.path, c.port, "rx_bps", "bits/s", map[string]any{"cc": "cubic"}, none,
			c.gbit*0.9e9, c.gbit*1e9, c.gbit*1.05e9))
	}
	return run
}

// figureNamed returns the figure of that name.
func figureNamed(t *testing.T, figs []*figure, name string) *figure {
	t.Helper()
	for _, f := range figs {
		if f.name == name {
			return f
		}
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.name)
	}
	t.Fatalf("no chart %s among %v", name, names)
	return nil
}

func TestEveryWorkloadChartShowsEveryPath(t *testing.T) {
	run := suiteRun(t)
	figs, err := figures(run)
	if err != nil {
		t.Fatal(err)
	}
	for chart, paths := range map[string][]string{
		// pollnet ran pps on two ports: two workloads.
		"paths-pps-null-64B":          {"pollnet-pmd", "dpdk-testpmd"},
		"paths-pps-null-1518B":        {"pollnet-pmd"},
		"paths-pps-wire-64B":          {"pollnet-pmd", "pollnet-napi"},
		"paths-zero_loss-64B":         {"pollnet-pmd", "pollnet-napi"},
		"paths-udp_rr-payload16B":     {"pollnet-pmd", "pollnet-napi", "kernel", "gvisor"},
		"paths-udp_rr-payload1400B":   {"pollnet-pmd", "pollnet-napi", "gvisor"},
		"paths-udp_stream-payload64B": {"pollnet-pmd", "kernel", "gvisor"},
		"paths-tcp_stream":            {"kernel", "kernel-iperf3", "gvisor"},
		"idle":                        {"pollnet-pmd", "pollnet-napi"},
	} {
		f := figureNamed(t, figs, chart)
		svg, err := f.encode("svg", captionOf(run))
		if err != nil {
			t.Fatal(err)
		}
		checkSVG(t, chart, svg)
		for _, p := range paths {
			// A bar per path: its label is drawn beside it, and the
			// sentence under the chart gives its figure.
			if !strings.Contains(string(svg), p) {
				t.Errorf("%s: no bar for %s", chart, p)
			}
			if !strings.Contains(f.about, p) {
				t.Errorf("%s: the sentence does not mention %s: %s", chart, p, f.about)
			}
		}
	}
	// Offered-load runs have their own charts, not a bar of their offered
	// rate.
	for _, f := range figs {
		if strings.HasPrefix(f.name, "paths-load") || strings.HasPrefix(f.name, "paths-lowrate") {
			t.Errorf("offered-load scenarios drawn as a throughput chart: %s", f.name)
		}
	}
}

func TestWorkloadSentencesAreComputed(t *testing.T) {
	figs, err := figures(suiteRun(t))
	if err != nil {
		t.Fatal(err)
	}
	for chart, want := range map[string]string{
		// 11.6 / 8.9 = 1.303; both devices busy at least 90%.
		"paths-zero_loss-64B": "pollnet-pmd forwards 64 B frames without loss at up to 11.6 Mpps (runs 11.2..11.7), 1.30× pollnet-napi (8.9 Mpps, runs 8.7..9)",
		// testpmd records no dut_busy: the ratio stands.
		"paths-pps-null-64B": "pollnet-pmd (copy=true) forwards 64 B frames at 11.6 Mpps (runs 11.2..11.7), 0.57× dpdk-testpmd (20.5 Mpps, runs 20.1..21)",
		// The kernel's batch matches; gVisor's does not (64 B stream).
		"paths-udp_stream-payload64B": "not set against gvisor, whose work differs (batch 32 vs 1)",
		"paths-udp_rr-payload16B": "pollnet-pmd completes 217 ktransactions/s (runs 210..220) with 16 B payloads, " +
			"21.70× pollnet-napi (10 ktransactions/s, runs 9..11), 5.17× kernel (42 ktransactions/s, runs 40..45), 2.71× gvisor",
		"idle": "pollnet-pmd burns 1.00 cores (runs 0.99..1) with no traffic, 50.00× pollnet-napi (0.02 cores, runs 0.015..0.02)",
	} {
		if got := figureNamed(t, figs, chart).about; !strings.Contains(got, want) {
			t.Errorf("%s says\n%s\nwant it to contain\n%s", chart, got, want)
		}
	}
}

func TestHarnessLimitedRunsGetNoRatio(t *testing.T) {
	run := suiteRun(t)
	figs, err := figures(run)
	if err != nil {
		t.Fatal(err)
	}
	about := figureNamed(t, figs, "paths-pps-wire-64B").about
	for _, want := range []string{"dut_busy 0.55 < 0.9", "the harness, not the device, set this rate and no ratio is quoted",
		"pollnet-napi forwards 64 B frames at 4.2 Mpps (runs 4..4.4), also harness-limited (dut_busy 0.62)"} {
		if !strings.Contains(about, want) {
			t.Errorf("sentence lacks %q: %s", want, about)
		}
	}
	if strings.Contains(about, "×") {
		t.Errorf("a throughput ratio quoted for a harness-limited run: %s", about)
	}
	var wire []ratioRow
	for _, r := range ratios(run) {
		if r.Name == "pps" && r.A == "pollnet-pmd" && r.B == "pollnet-napi" {
			wire = append(wire, r)
		}
	}
	if len(wire) != 1 || wire[0].Tput != "" || !strings.Contains(wire[0].Note, "harness-limited") {
		t.Fatalf("pmd/napi ratio rows on the wire: %+v", wire)
	}
	if s := harnessSummary(run); !strings.Contains(s, "2 scenarios ran with the device under test busy less than 90%") ||
		!strings.Contains(s, "pps pollnet-pmd (wire) 64 B queues=1 at dut_busy 0.55") {
		t.Errorf("harness summary: %s", s)
	}
	// At equal load the device is meant to idle: CPU ratios stay.
	for _, r := range ratios(run) {
		if r.Name == "load" && r.Tput == "" {
			t.Errorf("load ratio withheld: %+v", r)
		}
	}
}

func TestLoadChartComparesModesAtEqualLoad(t *testing.T) {
	figs, err := figures(suiteRun(t))
	if err != nil {
		t.Fatal(err)
	}
	f := figureNamed(t, figs, "load-64B")
	if len(f.panels) != 2 {
		t.Fatalf("load chart has %d panels, want CPU and latency", len(f.panels))
	}
	// CPU per packet and latency both on log axes.
	for i, p := range f.panels {
		if _, ok := p.Y.Scale.(plot.LogScale); !ok || p.Y.Min <= 0 {
			t.Errorf("panel %d: y axis %T from %v", i, p.Y.Scale, p.Y.Min)
		}
	}
	// pmd at 10% of 8.9 Mpps: 1e9/0.89e6 = 1124 ns; napi 118 ns.
	for _, want := range []string{
		"At 0.89 Mpps (10% of the lower zero-loss rate) pollnet-pmd spends 1.12 µs (runs 1.07 µs..1.24 µs) of CPU per packet and pollnet-napi 118 ns (runs 112 ns..130 ns)",
		// 1e9/0.89e6 ÷ 118 = 9.52.
		"pollnet-pmd/pollnet-napi 9.52×",
		"p99 latency 12 µs against 55 µs",
		"at 8.01 Mpps (90% of the lower zero-loss rate)",
	} {
		if !strings.Contains(f.about, want) {
			t.Errorf("load sentence lacks %q:\n%s", want, f.about)
		}
	}
	svg, err := f.encode("svg", "")
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, f.name, svg)
	// The latency chart holds light-load runs only.
	lat := figureNamed(t, figs, Latency)
	if !strings.Contains(lat.about, "load 10% (0.89 Mpps): pollnet-pmd 3 µs/12 µs, pollnet-napi 18 µs/55 µs") ||
		!strings.Contains(lat.about, "lowrate 10 kpps: pollnet-pmd 2.4 µs/130 µs, pollnet-napi 2.4 µs/130 µs") {
		t.Errorf("latency sentence: %s", lat.about)
	}
	for _, f := range figs {
		if strings.Contains(f.name, "latency") && f.name != Latency {
			t.Errorf("extra latency chart %s", f.name)
		}
	}
}

func TestGbpsOnlyWhereBytesMove(t *testing.T) {
	run := suiteRun(t)
	figs, err := figures(run)
	if err != nil {
		t.Fatal(err)
	}
	f := figureNamed(t, figs, ThroughputGbps+"-pps-null")
	// Three scenarios on the null port ran with copy off.
	if !strings.Contains(f.about, "3 zero-copy runs") {
		t.Errorf("Gbit/s sentence: %s", f.about)
	}
	// The highest is pmd at 1518 B with copies: 4.0 Mpps × (1518+24) × 8.
	if !strings.Contains(f.about, "pollnet-pmd at 1518 B: 49.3 Gbit/s (runs 48.1..51.8)") {
		t.Errorf("Gbit/s sentence: %s", f.about)
	}
	// Copy off everywhere: no Gbit/s chart at all.
	zc := &result.Run{Machine: machine}
	for _, s := range run.Scenarios {
		if s.Port == "null" && s.Knobs["copy"] == false {
			zc.Scenarios = append(zc.Scenarios, s)
		}
	}
	zc.Scenarios = append(zc.Scenarios, scenario(t, "pps", "pollnet-napi", "rx_pps", "packets/s",
		map[string]any{"size": 9000, "zero_copy": true}, 198e9/(9024*8)))
	figs, err = figures(zc)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range figs {
		if strings.HasPrefix(f.name, ThroughputGbps) {
			t.Errorf("Gbit/s chart %s drawn from zero-copy runs only", f.name)
		}
	}
}

func TestPageLeadsWithChartsAndComputedProse(t *testing.T) {
	run := suiteRun(t)
	dir := t.TempDir()
	figs, err := figures(run) // the page only names the files Render writes
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
	fig, table := strings.Index(page, "<figure>"), strings.Index(page, "<table")
	if fig < 0 || table < 0 || fig > table {
		t.Fatalf("index.html: first chart at %d, first table at %d; the charts must come first", fig, table)
	}
	for _, h := range []string{"<h2>Paths compared</h2>", "<h2>Every scenario</h2>"} {
		if i := strings.Index(page, h); i < fig {
			t.Errorf("%s at %d, before the charts at %d", h, i, fig)
		}
	}
	for _, want := range []string{
		"pollnet-pmd forwards 64 B frames without loss at up to 11.6 Mpps (runs 11.2..11.7), 1.30× pollnet-napi (8.9 Mpps, runs 8.7..9)",
		// The run's spread, computed: max/min per scenario, widest
		// udp_stream on gVisor, 0.4..0.6 Mdatagrams/s.
		"at the widest (udp_stream gvisor (channel) payload=64)",
		"1.50× at the widest",
		"Commit</dt><dd><code>abc1234</code>",
		// Counters wrap in their own column instead of running off.
		`<td class="counters">`,
		"table-layout: fixed",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// Every chart on the page has its sentence.
	if n, m := strings.Count(page, "<figure>"), len(files)/2; n != m {
		t.Errorf("%d figures for %d charts", n, m)
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, run, ".", files); err != nil {
		t.Fatal(err)
	}
	readme := md.String()
	img, every := strings.Index(readme, "!["), strings.Index(readme, "## Every scenario")
	if img < 0 || every < img || strings.Index(readme, "## Paths compared") < img {
		t.Error("README does not lead with the charts")
	}
	for _, text := range []string{page, readme} {
		if strings.Contains(text, "factor of two") {
			t.Error("fixed 'factor of two' text is back")
		}
	}
	if !strings.Contains(readme, "1.30× pollnet-napi") {
		t.Error("README lacks the computed ratio sentence")
	}
}

// TestSpreadSummaryFollowsTheData: the run-level spread changes with the
// data, so it cannot be fixed text.
func TestSpreadSummaryFollowsTheData(t *testing.T) {
	mk := func(lo, hi float64) *result.Run {
		s := scenario(t, "pps", "pollnet-pmd", "rx_pps", "packets/s", map[string]any{"size": 64}, lo, (lo+hi)/2, hi)
		s.Repeat = 3
		return &result.Run{Scenarios: []result.Scenario{s}}
	}
	a, b := spreadSummary(mk(1e6, 2e6)), spreadSummary(mk(1e6, 1.1e6))
	if !strings.Contains(a, "2.00× at the median over 1 scenarios") || !strings.Contains(b, "1.10×") {
		t.Errorf("spread summaries:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "independent runs") {
		t.Errorf("repeats not called runs: %s", a)
	}
	if s := spreadSummary(&result.Run{}); s != "" {
		t.Errorf("spread of an empty run: %q", s)
	}
}

// TestWorkloadsSplitByPortOnlyForPollnet: peers on their own ports stay
// beside pollnet; pollnet on two ports makes two workloads.
func TestWorkloadsSplitByPortOnlyForPollnet(t *testing.T) {
	run := suiteRun(t)
	var keys []string
	for _, w := range workloads(pick(run, func(s *result.Scenario) bool { return s.Name == "pps" || s.Name == "udp_rr" })) {
		var paths []string
		for _, s := range w.scs {
			if !slices.Contains(paths, s.Path) {
				paths = append(paths, s.Path)
			}
		}
		keys = append(keys, w.fileName()+":"+strings.Join(paths, ","))
	}
	want := []string{
		"paths-pps-null-64B:pollnet-pmd,dpdk-testpmd",
		"paths-pps-null-1518B:pollnet-pmd",
		"paths-pps-wire-64B:pollnet-pmd,pollnet-napi",
		"paths-udp_rr-payload16B:pollnet-pmd,pollnet-napi,kernel,gvisor",
		"paths-udp_rr-payload1400B:pollnet-pmd,pollnet-napi,gvisor",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("workloads\n%v\nwant\n%v", keys, want)
	}
}

// TestCommittedReferenceStillCharts builds every chart of the committed
// reference run, whatever its format (the one from before repeats and
// dut_busy has peers under other names: l2_fwd, udp_pps), without
// drawing: each chart must have a sentence, and the README must build.
func TestCommittedReferenceStillCharts(t *testing.T) {
	run, err := result.Read("../../results/reference/result.json")
	if err != nil {
		t.Skip(err)
	}
	figs, err := figures(run)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) == 0 {
		t.Fatal("no chart from the reference run")
	}
	for _, f := range figs {
		if f.about == "" || len(f.panels) == 0 {
			t.Errorf("%s: sentence %q, %d panels", f.name, f.about, len(f.panels))
		}
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, run, "reference", nil); err != nil {
		t.Fatal(err)
	}
}

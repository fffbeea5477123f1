package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/internal/result"
)

func TestVethZeroLossRatioIsQuotedOnlyWhenNeitherSearchEndedAtTheHarnessLimit(t *testing.T) {
	sc := func(path string, median, limited, passing float64) result.Scenario {
		return result.Scenario{Path: path, Median: median, Repeat: 2, Knobs: map[string]any{"max_loss": 1e-5},
			Extra: map[string]float64{"harness_limited_runs": limited, "passing_runs": passing, "converged_runs": 2, "top_offered_pps": 5e5}}
	}
	for _, c := range []struct {
		name  string
		a, b  result.Scenario
		ratio float64
		want  string
	}{
		{"both searched below the top", sc("pollnet-pmd", 3e5, 0, 2), sc("dpdk-testpmd", 2e5, 0, 2), 1.5, "1.50x (0.300 vs 0.200 Mpps"},
		{"pollnet's top rate passed", sc("pollnet-pmd", 5e5, 1, 2), sc("dpdk-testpmd", 2e5, 0, 2), 0, "the generator was the limit for pollnet-pmd in 1 of 2 runs"},
		{"testpmd's top rate passed", sc("pollnet-pmd", 3e5, 0, 2), sc("dpdk-testpmd", 5e5, 2, 2), 0, "the generator was the limit for dpdk-testpmd in 2 of 2"},
		{"a search found nothing", sc("pollnet-pmd", 3e5, 0, 1), sc("dpdk-testpmd", 2e5, 0, 2), 0, "no rate passed for pollnet-pmd in 1 of 2 runs"},
	} {
		r, line := vethZeroLossRatio(PortAFPacket, 64, c.a, c.b)
		if r != c.ratio || !strings.Contains(line, c.want) || !strings.HasPrefix(line, "pollnet/testpmd zero-loss on afpacket at 64 B: ") {
			t.Errorf("%s: %v %q, want %v and %q", c.name, r, line, c.ratio, c.want)
		}
	}
	skipped := sc("dpdk-testpmd", 0, 0, 0)
	skipped.Skipped = "no dpdk-testpmd"
	if r, line := vethZeroLossRatio(PortAFPacket, 64, sc("pollnet-pmd", 3e5, 0, 2), skipped); r != 0 || line != "" {
		t.Errorf("testpmd skipped: %v %q, want no line", r, line)
	}
}

func TestTrialLossIsTheShareOfOfferedFramesNotBackAndADuplicateIsNoGain(t *testing.T) {
	for _, c := range []struct {
		offered, got uint64
		want         float64
	}{{1000, 1000, 0}, {1000, 990, 0.01}, {1000, 1003, 0}, {0, 0, 0}, {4, 0, 1}} {
		if l := trialLoss(c.offered, c.got); l < c.want-1e-12 || l > c.want+1e-12 {
			t.Errorf("trialLoss(%d, %d) = %v, want %v", c.offered, c.got, l, c.want)
		}
	}
}

func TestASequenceWindowCountsOnlyTheFramesNumberedBetweenItsMarks(t *testing.T) {
	pool, err := engine.NewPool("zl-win", 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tmpl, err := pktgen.NewTemplate(pktgen.DefaultFlowConfig(64))
	if err != nil {
		t.Fatal(err)
	}
	frames := func(seqs ...uint64) []engine.Mbuf {
		var ms []engine.Mbuf
		for _, s := range seqs {
			m, err := pool.Get()
			if err != nil {
				t.Fatal(err)
			}
			buf, _ := m.Append(tmpl.Len())
			tmpl.Fill(buf, s, 1)
			ms = append(ms, m)
		}
		return ms
	}
	free := func(ms []engine.Mbuf) {
		for _, m := range ms {
			engine.Free(m)
		}
	}
	var w seqWindow
	if m := w.mark(winStart, 10); m.seq != 10 || !w.open {
		t.Fatalf("start mark %+v, open %v", m, w.open)
	}
	late := frames(3, 9, 10, 11)
	w.count(late) // 3 and 9 were sent before the window
	if m := w.mark(winEnd, 20); m.got != 2 {
		t.Errorf("after the end mark: %d counted, want 2", m.got)
	}
	rest := frames(12, 19, 20, 25)
	w.count(rest) // 20 and 25 were sent after it
	junk, _ := pool.Get()
	junk.Append(14) // a bare Ethernet header: no stamp
	w.count([]engine.Mbuf{junk})
	if m := w.mark(winRead, 30); m.got != 4 || w.open {
		t.Errorf("read mark %+v, open %v: want 4 counted and the window closed", m, w.open)
	}
	free(late)
	free(rest)
	engine.Free(junk)
	if allocs := testing.AllocsPerRun(100, func() { w.count(late) }); allocs != 0 {
		t.Errorf("count allocates %v times per burst", allocs)
	}
}

func TestPlanRoutesZeroLossToTheKernelPortsAndRefusesNullOnes(t *testing.T) {
	o := Options{Sizes: []int{64}, Modes: []Mode{ModePMD}, Queues: 1, Duration: time.Second, Repeat: 2,
		RingSize: 1024, GenCore: engine.AnyCore, FwdCore: engine.AnyCore, Warmup: 100 * time.Millisecond}
	for _, port := range []string{PortAFPacket, PortAFXDP, PortTAP} {
		o.Port = port
		js, err := Plan("zero_loss", o)
		if err != nil || len(js) != 1 || js[0].Name != "zero_loss-"+port || js[0].Estimate.Trials == 0 {
			t.Errorf("zero_loss --port %s: %v %+v", port, err, js)
		}
		// In a suite, load takes zero_loss's rates from the wire pair.
		js, err = Plan("load", o)
		if err != nil || len(js) != 2 || js[0].Name != "zero_loss" {
			t.Errorf("load --port %s: %v %+v", port, err, js)
		}
	}
	for _, port := range []string{PortNull, PortDPDK} {
		o.Port = port
		if _, err := Plan("zero_loss", o); err == nil || !strings.Contains(err.Error(), "zero_loss --port "+port) {
			t.Errorf("zero_loss --port %s: %v, want a refusal", port, err)
		}
	}
	o.Port, o.MaxLossSet = PortAFPacket, true
	for _, bad := range []float64{2, -0.01} {
		o.MaxLoss = bad
		if _, err := Plan("zero_loss", o); err == nil || !strings.Contains(err.Error(), "--max-loss") {
			t.Errorf("a loss bound of %v: %v, want a refusal", bad, err)
		}
	}
}

func TestZeroLossOnAVethPairSearchesPollnetAndTestpmdOnAFPacket(t *testing.T) {
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	gen, fwd := DefaultCores()
	cfg := VethZeroLossConfig{VethConfig: VethConfig{Port: PortAFPacket, Sizes: []int{64}, Warmup: 100 * time.Millisecond,
		Repeat: 1, GenCore: gen, FwdCore: fwd}, SearchOptions: SearchOptions{Trial: 100 * time.Millisecond, MaxTrials: 4, MaxLoss: 0.001}}
	start := time.Now()
	rs, err := RunVethZeroLoss(cfg)
	if err != nil {
		if strings.Contains(err.Error(), "veth") && strings.Contains(err.Error(), "not supported") {
			t.Skipf("no veth links here: %v", err)
		}
		t.Fatal(err)
	}
	t.Logf("took %v", time.Since(start))
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1", len(rs))
	}
	var out bytes.Buffer
	FormatVethZeroLoss(&out, rs)
	t.Log("\n" + out.String())
	r := rs[0]
	pn, tp := r.Pollnet, r.Testpmd
	if pn.Name != "zero_loss" || pn.Path != "pollnet-pmd" || tp.Name != "zero_loss" || tp.Path != "dpdk-testpmd" || pn.Port != PortAFPacket || tp.Port != PortAFPacket {
		t.Fatalf("scenario names: %s/%s/%s and %s/%s/%s", pn.Name, pn.Port, pn.Path, tp.Name, tp.Port, tp.Path)
	}
	check := func(sc result.Scenario) {
		if sc.Skipped != "" || len(sc.Samples) != 1 || sc.Repeat != 1 {
			t.Errorf("%s: skipped %q, samples %v", sc.Path, sc.Skipped, sc.Samples)
			return
		}
		n := sc.Extra["trials"]
		if n < 1 || n > 4 || sc.Counters["trials"] != uint64(n) {
			t.Errorf("%s: %v trials (counter %d), want 1..4", sc.Path, n, sc.Counters["trials"])
		}
		if sc.Extra["top_offered_pps"] <= 0 || sc.Extra["run1_trial01_offered_pps"] != sc.Extra["top_offered_pps"] || sc.Extra["run1_trial01_rate_pps"] != 0 {
			t.Errorf("%s: the top trial is not recorded: %v", sc.Path, sc.Extra)
		}
		if sc.Knobs["max_loss"] != 0.001 || sc.Knobs["trial_s"] != 0.1 {
			t.Errorf("%s: knobs %v", sc.Path, sc.Knobs)
		}
		if sc.Extra["passing_runs"] == 1 && (sc.Median <= 0 || sc.Extra["loss_ratio"] > 0.001 || sc.Counters["offered_packets"] == 0) {
			t.Errorf("%s: a passing run without its figures: median %v, extra %v, counters %v", sc.Path, sc.Median, sc.Extra, sc.Counters)
		}
		if sc.DUTBusy == nil || sc.CPUSeconds <= 0 {
			t.Errorf("%s: no dut_busy or CPU time: %v %v", sc.Path, sc.DUTBusy, sc.CPUSeconds)
		}
		if _, err := json.Marshal(sc); err != nil {
			t.Errorf("%s does not encode: %v", sc.Path, err)
		}
	}
	check(pn)
	if pn.Extra["passing_runs"] == 1 && pn.Counters["dut_rx_packets"] == 0 {
		t.Errorf("pollnet's port counted nothing in its passing window: %v", pn.Counters)
	}
	if tp.Skipped != "" {
		t.Logf("testpmd skipped: %s", tp.Skipped)
		return
	}
	check(tp)
	if tp.Counters["dut_rx_packets"] == 0 || tp.Knobs["dpdk"] == nil {
		t.Errorf("testpmd's own figures are missing: %v %v", tp.Counters, tp.Knobs["dpdk"])
	}
	if !strings.Contains(out.String(), "pollnet/testpmd zero-loss on afpacket at 64 B: ") {
		t.Errorf("no ratio line:\n%s", out.String())
	}
}

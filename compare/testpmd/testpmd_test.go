package testpmd

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
)

func parseFile(t *testing.T, name string) *Output {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The testdata files are testpmd 22.11's own output, captured on a 2-vCPU VM.
func TestParseCaptured(t *testing.T) {
	for _, tc := range []struct {
		file    string
		shows   int
		samples []float64 // Rx-pps summed over the two ports
		rxTotal uint64
		txTotal uint64
	}{
		// net_null, 64 bytes, copy=0: 3 prints, the first without rates.
		{"null64-copy0-22.11.out", 3, []float64{24514442 + 24514231, 22637890 + 22638145}, 239081920, 239081920},
		{"null1514-copy1-22.11.out", 3, []float64{6657856 + 6657859, 5799740 + 5799498}, 51217728, 51217728},
		// net_ring with --tx-first: the second print's period began
		// before forwarding got going, and 2 x 32 packets of the first
		// burst are sent but never received.
		{"ring64-txfirst-22.11.out", 3, []float64{73016605 + 73014287, 392665960 + 392668636}, 3656644736, 3656644736 + 64},
	} {
		t.Run(tc.file, func(t *testing.T) {
			o := parseFile(t, tc.file)
			if len(o.Shows) != tc.shows {
				t.Fatalf("%d prints, want %d", len(o.Shows), tc.shows)
			}
			for _, s := range o.Shows {
				if len(s.Ports) != 2 || s.Ports[0].Port != 0 || s.Ports[1].Port != 1 {
					t.Errorf("print ports %+v", s.Ports)
				}
			}
			if o.Shows[0].Ports[0].RxPPS != 0 {
				t.Errorf("first print has a rate: %+v", o.Shows[0])
			}
			got := o.Samples(time.Time{})
			if len(got) != len(tc.samples) {
				t.Fatalf("samples %+v, want %v", got, tc.samples)
			}
			for i, s := range got {
				if s.RxPPS != tc.samples[i] || s.TxPPS <= 0 {
					t.Errorf("sample %d: %+v, want rx %v", i, s, tc.samples[i])
				}
			}
			if o.Total == nil || o.Total.RxPackets != tc.rxTotal || o.Total.TxPackets != tc.txTotal || o.Total.RxDropped != 0 {
				t.Errorf("total %+v, want %d", o.Total, tc.rxTotal)
			}
			if len(o.Forward) != 2 || o.Forward[0].RxPackets+o.Forward[1].RxPackets != tc.rxTotal {
				t.Errorf("forward %+v", o.Forward)
			}
			if !o.Done || len(o.Errors) != 0 {
				t.Errorf("done %v errors %q", o.Done, o.Errors)
			}
		})
	}
}

func TestParseEALError(t *testing.T) {
	o := parseFile(t, "eal-error-22.11.err")
	if len(o.Shows) != 0 || len(o.Samples(time.Time{})) != 0 || o.Done {
		t.Errorf("failed run parsed as a run: %+v", o)
	}
	g := gist(o)
	if !strings.Contains(g, "Cause: Cannot init EAL: Invalid argument") {
		t.Errorf("gist %q", g)
	}
}

// Older releases print no "Port statistics" banner and no bps columns;
// the prints are then told apart by a port repeating. This text follows
// that layout (as in DPDK's testpmd guide), with made-up counts.
func TestParseWithoutBanner(t *testing.T) {
	block := func(port, pps string) string {
		return "\n  ######################## NIC statistics for port " + port + "  ########################\n" +
			"  RX-packets: 100        RX-missed: 3          RX-bytes:  6400\n" +
			"  RX-errors: 0\n  RX-nombuf:  0\n" +
			"  TX-packets: 100        TX-errors: 0          TX-bytes:  6400\n\n" +
			"  Throughput (since last show)\n" +
			"  Rx-pps:   " + pps + "\n  Tx-pps:   " + pps + "\n" +
			"  ############################################################################\n"
	}
	text := block("0", "0") + block("1", "0") + block("0", "1000") + block("1", "2000")
	o, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Shows) != 2 {
		t.Fatalf("%d prints, want 2", len(o.Shows))
	}
	s := o.Samples(time.Time{})
	if len(s) != 1 || s[0].RxPPS != 3000 {
		t.Errorf("samples %+v", s)
	}
	if o.RxMissed() != 6 {
		t.Errorf("rx missed %d", o.RxMissed())
	}
	if len(o.Errors) != 0 {
		t.Errorf("RX-errors counters taken for errors: %q", o.Errors)
	}
}

// Samples that began before the warm-up ended are dropped.
func TestSamplesWarmup(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var p Parser
	for i, pps := range []string{"0", "5", "7"} {
		at := t0.Add(time.Duration(i) * time.Second)
		p.Line("Port statistics ====================================", at)
		p.Line("  ######################## NIC statistics for port 0  ########################", at)
		p.Line("  Rx-pps:   "+pps+"          Rx-bps:   0", at)
	}
	all := p.Output().Samples(t0)
	if len(all) != 2 || all[0].RxPPS != 5 || !all[0].From.Equal(t0) || !all[1].To.Equal(t0.Add(2*time.Second)) {
		t.Errorf("samples %+v", all)
	}
	late := p.Output().Samples(t0.Add(500 * time.Millisecond))
	if len(late) != 1 || late[0].RxPPS != 7 {
		t.Errorf("after warm-up %+v", late)
	}
}

func TestMissingBinary(t *testing.T) {
	p := &Peer{Binary: "/nonexistent/dpdk-testpmd"}
	scs, err := p.Run(context.Background(), workload.Workload{Name: L2Fwd, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 { // net_null at the two default sizes
		t.Fatalf("%d scenarios", len(scs))
	}
	for _, sc := range scs {
		if !strings.Contains(sc.Skipped, "not installed: apt-get install dpdk-dev") || len(sc.Samples) != 0 {
			t.Errorf("skipped %q samples %v", sc.Skipped, sc.Samples)
		}
	}
	if _, err := p.Run(context.Background(), workload.Workload{Name: "udp_pps", Duration: time.Second}); !errors.Is(err, workload.ErrUnknown) {
		t.Errorf("unknown workload: %v", err)
	}
}

func needTestpmd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpdk-testpmd"); err != nil {
		t.Skip("dpdk-testpmd not installed (" + Install + "); the parser tests cover its output")
	}
}

func TestRunNull(t *testing.T) {
	needTestpmd(t)
	p := &Peer{Vdevs: []string{VdevNull}}
	start := time.Now()
	scs, err := p.Run(context.Background(), workload.Workload{Name: L2Fwd, Sizes: []int{64}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 {
		t.Fatalf("%d scenarios", len(scs))
	}
	sc := scs[0]
	t.Logf("%s %s %v in %v: median %.2f Mpps, samples %v, cpu %.2fs, counters %v, extra %v",
		sc.Path, sc.Port, sc.Knobs, time.Since(start).Round(time.Millisecond), sc.Median/1e6, sc.Samples, sc.CPUSeconds, sc.Counters, sc.Extra)
	if sc.Skipped != "" {
		t.Fatalf("skipped: %s", sc.Skipped)
	}
	if len(sc.Samples) == 0 || sc.Extra["mpps_median"] <= 0 || sc.Counters["rx_packets"] == 0 {
		t.Errorf("no rate: %+v", sc)
	}
	if sc.Knobs["vdev"] != "net_null0,size=64,copy=0 net_null1,size=64,copy=0" || !strings.HasPrefix(sc.Knobs["dpdk"].(string), "DPDK ") {
		t.Errorf("knobs %v", sc.Knobs)
	}
}

// net_ring needs --tx-first to have anything to forward; a live run checks
// that the loop starts.
func TestRunRing(t *testing.T) {
	needTestpmd(t)
	p := &Peer{Vdevs: []string{VdevRing}}
	scs, err := p.Run(context.Background(), workload.Workload{Name: L2Fwd, Sizes: []int{64}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Skipped != "" || scs[0].Median <= 0 {
		t.Fatalf("want one measured scenario, got %+v", scs)
	}
	t.Logf("net_ring: %.0f Mpps", scs[0].Median/1e6)
}

// Cancelling the context interrupts testpmd at once and leaves no process.
func TestRunCancel(t *testing.T) {
	needTestpmd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&Peer{}).Run(ctx, workload.Workload{Name: L2Fwd, Sizes: []int{64}, Duration: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > exitLimit {
		t.Errorf("cancelled run took %v", d)
	}
}

// A testpmd that cannot start is a skipped scenario carrying EAL's reason.
func TestRunEALFailure(t *testing.T) {
	needTestpmd(t)
	p := &Peer{Vdevs: []string{VdevNull}, Lcores: "0-1023"}
	scs, err := p.Run(context.Background(), workload.Workload{Name: L2Fwd, Sizes: []int{64}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Skipped == "" || len(scs[0].Samples) != 0 {
		t.Fatalf("want one skipped scenario, got %+v", scs)
	}
	t.Logf("reason: %s", scs[0].Skipped)
	if !strings.Contains(scs[0].Skipped, "EAL") {
		t.Errorf("reason lacks EAL's message: %s", scs[0].Skipped)
	}
}

// The window's rate is counter deltas over testpmd's own clock: each
// interval's RX-packets delta over the time its Rx-pps implies.
func TestWindowCaptured(t *testing.T) {
	for _, tc := range []struct {
		file    string
		packets uint64
		seconds float64
	}{
		// --stats-period 1 printed every two seconds on this VM.
		{"null64-macswap-copy0-22.11.out", 124848896 - 447488,
			float64(62359168-447488)/30949776 + float64(124848896-62359168)/31240426},
		// Interactive "show port stats 0" a second apart.
		{"null64-macswap-copy1-interactive-22.11.out", 101173376 - 41759200,
			float64(72405568-41759200)/30581820 + float64(101173376-72405568)/28663406},
	} {
		t.Run(tc.file, func(t *testing.T) {
			o := parseFile(t, tc.file)
			w := o.Window(time.Time{})
			if w.Intervals != 2 || w.Packets != tc.packets || math.Abs(w.Seconds-tc.seconds) > 1e-9 {
				t.Errorf("window %+v, want 2 intervals, %d packets in %.6f s", w, tc.packets, tc.seconds)
			}
			if r := w.Rate(); r < 28e6 || r > 32e6 {
				t.Errorf("rate %.0f", r)
			}
		})
	}
}

// Without a rate the prints' arrival times time the interval; a counter
// that went backwards drops its interval; prints before notBefore start
// none.
func TestWindowFallbacks(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var p Parser
	show := func(at time.Time, rx, pps string) {
		p.Line("  ######################## NIC statistics for port 0  ########################", at)
		p.Line("  RX-packets: "+rx+"     RX-missed: 0          RX-bytes:  0", at)
		if pps != "" {
			p.Line("  Rx-pps:   "+pps+"          Rx-bps:   0", at)
		}
	}
	show(t0, "100", "0")
	show(t0.Add(2*time.Second), "300", "")         // no rate: 2 s by arrival
	show(t0.Add(3*time.Second), "50", "1")         // reset: left out
	show(t0.Add(4*time.Second), "1050", "1000")    // 1 s by testpmd's clock
	show(t0.Add(5*time.Second), "1060", "10")      // 1 s by testpmd's clock
	show(t0.Add(7*time.Second), "1070", "1000000") // a rate that is not this delta's: 2 s by arrival
	w := p.Output().Window(time.Time{})
	if w.Intervals != 4 || w.Packets != 200+1000+10+10 || w.Seconds != 2+1+1+2 {
		t.Errorf("window %+v", w)
	}
	late := p.Output().Window(t0.Add(3500 * time.Millisecond))
	if late.Intervals != 2 || late.Packets != 20 {
		t.Errorf("window after 3.5 s %+v", late)
	}
	if (Window{}).Rate() != 0 {
		t.Error("an empty window has a rate")
	}
}

func TestFwdLcore(t *testing.T) {
	for lcores, want := range map[string]int{"": 1, "0-1": 1, "0,1": 1, "1,0": 0, "3,5": 5, "2-7": 3, "4": -1, "x,1": -1} {
		if got := (&Peer{Lcores: lcores}).fwdLcore(); got != want {
			t.Errorf("lcores %q: forwarding lcore %d, want %d", lcores, got, want)
		}
	}
}

func TestNullForwardMissingBinary(t *testing.T) {
	p := &Peer{Binary: "/nonexistent/dpdk-testpmd"}
	if !strings.Contains(p.Missing(), "apt-get install dpdk-dev") {
		t.Errorf("missing %q", p.Missing())
	}
	_, err := p.ForwardNull(context.Background(), NullForward{Size: 64, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("err %v", err)
	}
	if _, err := p.ForwardNull(context.Background(), NullForward{}); err == nil {
		t.Error("size 0 accepted")
	}
}

// A live launch: macswap on one net_null port, the rate from three intervals.
func TestForwardNull(t *testing.T) {
	needTestpmd(t)
	p := &Peer{}
	f := NullForward{Size: 64, Copy: true, Warmup: 200 * time.Millisecond, Duration: time.Second}
	start := time.Now()
	r, err := p.ForwardNull(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.2f Mpps over %d intervals (%.3f s, forwarding lcore %.3f s of CPU), %s, in %v", r.Rate()/1e6, r.Intervals,
		r.Seconds, r.FwdCPUSeconds, r.Version, time.Since(start).Round(time.Millisecond))
	if r.Intervals != MinIntervals || r.Seconds < 2 || r.Seconds > 6 || r.Rate() <= 0 || !strings.HasPrefix(r.Version, "DPDK ") {
		t.Errorf("rate %+v", r)
	}
	// The forwarding lcore busy-polls: its CPU time is most of the window.
	if r.FwdCPUSeconds < r.Seconds/4 || r.FwdCPUSeconds > r.Seconds*1.1 {
		t.Errorf("forwarding lcore CPU %.3f s over a window of %.3f s", r.FwdCPUSeconds, r.Seconds)
	}
	k := p.NullKnobs(f)
	if k["vdev"] != "net_null0,size=64,copy=1" || k["fwd"] != "macswap" || k["intervals"] != MinIntervals {
		t.Errorf("knobs %v", k)
	}
}

package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// short is a workload brief enough for a unit test: one 300 ms run.
func short(name string, sizes ...int) workload.Workload {
	return workload.Workload{Name: name, Sizes: sizes, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}
}

// ranOK checks a scenario that must have run: no skip reason, positive
// samples, a summary, CPU time.
func ranOK(t *testing.T, sc result.Scenario) {
	t.Helper()
	if sc.Skipped != "" {
		t.Fatalf("%s %s %s skipped: %s", sc.Path, sc.Name, sc.Port, sc.Skipped)
	}
	if len(sc.Samples) == 0 {
		t.Fatalf("%s %s %s: no samples", sc.Path, sc.Name, sc.Port)
	}
	for i, s := range sc.Samples {
		if s <= 0 {
			t.Errorf("%s %s %s: sample %d is %v", sc.Path, sc.Name, sc.Port, i, s)
		}
	}
	if sc.Median <= 0 || sc.CPUSeconds <= 0 {
		t.Errorf("%s %s %s: median %v cpu %v", sc.Path, sc.Name, sc.Port, sc.Median, sc.CPUSeconds)
	}
	t.Logf("%s %s %s %v: median %.4g %s, cpu %.3fs, counters %v, extra %v",
		sc.Path, sc.Name, sc.Port, sc.Knobs, sc.Median, sc.Unit, sc.CPUSeconds, sc.Counters, sc.Extra)
}

// skipWithoutCC skips a TCP test whose congestion control this user may not
// set: an unprivileged user gets only the algorithms in
// tcp_allowed_congestion_control, and the scenario says so.
func skipWithoutCC(t *testing.T, sc result.Scenario) {
	t.Helper()
	if strings.HasPrefix(sc.Skipped, "TCP congestion control") {
		t.Skip(sc.Skipped)
	}
}

// topologiesHere is loopback, plus veth where the test can make namespaces.
func topologiesHere(t *testing.T) []string {
	if os.Geteuid() != 0 {
		t.Log("not root: the veth topology is not exercised here (CI runs as root)")
		return []string{topoLoopback}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Log("ip not installed: the veth topology is not exercised here")
		return []string{topoLoopback}
	}
	return []string{topoLoopback, topoVeth}
}

// noNetnsLeft asserts `ip netns list` shows none of the namespaces this
// test process made once a run is over. Other processes (go test runs
// packages in parallel, and the bench's tests run this peer too) may have
// theirs up meanwhile: their names carry their own pid.
func noNetnsLeft(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	ours := fmt.Sprintf("%s%d-", NetnsPrefix, os.Getpid())
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, ours) {
			t.Errorf("namespace left behind: %s", strings.TrimSpace(l))
		}
	}
}

// provenance checks the fields every scenario must carry, run or skipped.
func provenance(t *testing.T, sc result.Scenario, w workload.Workload) {
	t.Helper()
	if sc.Roles["client"] != -1 || sc.Roles["server"] != -1 || len(sc.Roles) != 2 {
		t.Errorf("%s %s %s: roles %v, want client and server unpinned (-1)", sc.Path, sc.Name, sc.Port, sc.Roles)
	}
	if sc.GOMAXPROCS < 1 || sc.WarmupS != w.Warmup.Seconds() || sc.Repeat != w.Runs() {
		t.Errorf("%s %s %s: gomaxprocs %d warmup_s %v repeat %d, want >0, %v, %d",
			sc.Path, sc.Name, sc.Port, sc.GOMAXPROCS, sc.WarmupS, sc.Repeat, w.Warmup.Seconds(), w.Runs())
	}
	if sc.Skipped == "" && len(sc.Samples) != w.Runs() {
		t.Errorf("%s %s %s: %d samples from %d runs; want one per run", sc.Path, sc.Name, sc.Port, len(sc.Samples), w.Runs())
	}
}

// wantMTU is the MTU a topology's scenarios must record: pollnet's wire MTU
// on the veth pair, loopback's own on loopback.
func wantMTU(topo string) int {
	if topo == topoVeth {
		return workload.DefaultMTU
	}
	return loopbackMTU()
}

// udpKnobsOK checks the knobs every UDP scenario carries on every path.
func udpKnobsOK(t *testing.T, sc result.Scenario, payload, batch int) {
	t.Helper()
	k := sc.Knobs
	if k["payload"] != payload || k["size"] != payload+udpHeaders || k["batch"] != batch || k["mtu"] != wantMTU(sc.Port) {
		t.Errorf("%s %s: knobs %v, want payload %d, size %d, batch %d, mtu %d", sc.Name, sc.Port, k, payload, payload+udpHeaders, batch, wantMTU(sc.Port))
	}
}

func TestUDPStream(t *testing.T) {
	topos := topologiesHere(t)
	p := &Peer{Topologies: topos}
	w := short(UDPStream, 16)
	w.Repeat = 2
	scs, err := p.Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != len(topos) {
		t.Fatalf("%d scenarios for %d topologies", len(scs), len(topos))
	}
	for i, sc := range scs {
		ranOK(t, sc)
		provenance(t, sc, w)
		if sc.Metric != "rx_pps" || sc.Unit != "datagrams/s" || sc.Path != Path || sc.Knobs["topology"] != topos[i] {
			t.Errorf("scenario labels: %+v", sc)
		}
		udpKnobsOK(t, sc, 16, DefaultBatch)
		if sc.Knobs["rx_batch"] != DefaultBatch {
			t.Errorf("rx_batch %v", sc.Knobs["rx_batch"])
		}
		c := sc.Counters
		if c["received"] == 0 || c["sent"] == 0 {
			t.Errorf("counters %v", c)
		}
		if _, ok := c["rcvbuf_drops"]; !ok {
			t.Errorf("no rcvbuf_drops counter: %v", c)
		}
		// The samples are datagrams read per second of measured time: the
		// pooled count over the pooled time, a weighted mean of them, lies
		// between the least and the greatest (not so if the count took in
		// the warm-up).
		if pooled := float64(c["received"]) / sc.Extra["measured_seconds"]; pooled < 0.99*sc.Min || pooled > 1.01*sc.Max {
			t.Errorf("received %d over %vs is %v/s, outside the runs' %v..%v", c["received"], sc.Extra["measured_seconds"], pooled, sc.Min, sc.Max)
		}
		if sc.Extra["mpps_median"] <= 0 || sc.Extra["cpu_ns_per_packet"] <= 0 {
			t.Errorf("extra %v", sc.Extra)
		}
	}
	if len(topos) > 1 {
		noNetnsLeft(t)
	}
}

// One syscall per datagram is the unbatched baseline; it must work too.
func TestUDPStreamUnbatched(t *testing.T) {
	p := &Peer{Topologies: []string{topoLoopback}, Batch: 1}
	scs, err := p.Run(context.Background(), short(UDPStream, 1472))
	if err != nil {
		t.Fatal(err)
	}
	ranOK(t, scs[0])
	udpKnobsOK(t, scs[0], 1472, 1)
	if scs[0].Knobs["syscalls"] != "write/read" || scs[0].Knobs["size"] != 1514 {
		t.Errorf("knobs %v", scs[0].Knobs)
	}
}

// udpRRChecks checks udp_rr scenarios: transactions, round-trip times over
// at least one transaction and in order, and the knobs.
func udpRRChecks(t *testing.T, scs []result.Scenario, w workload.Workload) {
	t.Helper()
	for _, sc := range scs {
		ranOK(t, sc)
		provenance(t, sc, w)
		if sc.Metric != "transactions_per_s" || sc.Unit != "transactions/s" || sc.Name != UDPRR {
			t.Errorf("labels %s %s %s", sc.Name, sc.Metric, sc.Unit)
		}
		udpKnobsOK(t, sc, sc.Knobs["payload"].(int), 1)
		if sc.Counters["transactions"] == 0 {
			t.Errorf("counters %v", sc.Counters)
		}
		e := sc.Extra
		p50, p99, mx := e["latency_p50_ns"], e["latency_p99_ns"], e["latency_max_ns"]
		if !(p50 > 0 && p50 <= p99 && p99 <= mx) || e["latency_samples"] < 1 {
			t.Errorf("latencies p50 %v p99 %v max %v over %v", p50, p99, mx, e["latency_samples"])
		}
		// One outstanding request: a transaction takes at least the
		// median round trip, so the rate cannot beat 1/p50 by much.
		if sc.Median > 2e9/p50 {
			t.Errorf("%v transactions/s with a median round trip of %vns", sc.Median, p50)
		}
		if e["latency_samples"] > float64(sc.Counters["transactions"])+float64(w.Runs()) {
			t.Errorf("%v round trips kept for %d measured transactions", e["latency_samples"], sc.Counters["transactions"])
		}
	}
}

// udp_rr between two namespaces joined by a veth pair with pollnet's MTU:
// the kernel's request/response beside pollnet's.
func TestUDPRRVeth(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces; TestUDPRRLoopback runs udp_rr without them")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not installed (apt-get install iproute2); TestUDPRRLoopback runs udp_rr without it")
	}
	w := short(UDPRR, 16, 8000)
	w.Repeat = 2
	scs, err := (&Peer{Topologies: []string{topoVeth}}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 || scs[0].Port != topoVeth || scs[1].Knobs["payload"] != 8000 {
		t.Fatalf("want two veth scenarios, 16 and 8000 bytes: %+v", scs)
	}
	udpRRChecks(t, scs, w)
	noNetnsLeft(t)
}

func TestUDPRRLoopback(t *testing.T) {
	w := short(UDPRR, 64)
	scs, err := (&Peer{Topologies: []string{topoLoopback}}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 {
		t.Fatalf("%d scenarios", len(scs))
	}
	udpRRChecks(t, scs, w)
}

// A payload too short for the sequence number is skipped with the reason.
func TestUDPRRShortPayload(t *testing.T) {
	w := short(UDPRR, 4)
	scs, err := (&Peer{Topologies: []string{topoLoopback}}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || !strings.Contains(scs[0].Skipped, "sequence number") {
		t.Fatalf("want one skipped scenario naming the sequence number: %+v", scs)
	}
	provenance(t, scs[0], w)
}

func TestTCPStream(t *testing.T) {
	topos := topologiesHere(t)
	p := &Peer{Topologies: topos}
	w := short(TCPStream)
	scs, err := p.Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != len(topos) {
		t.Fatalf("%d scenarios for %d topologies", len(scs), len(topos))
	}
	for _, sc := range scs {
		skipWithoutCC(t, sc)
		ranOK(t, sc)
		provenance(t, sc, w)
		if sc.Metric != "rx_bps" || sc.Unit != "bits/s" || sc.Knobs["cc"] != DefaultCC || sc.Knobs["mtu"] != wantMTU(sc.Port) {
			t.Errorf("labels %s %v", sc.Metric, sc.Knobs)
		}
		c := sc.Counters
		if c["bytes_sent"] == 0 || c["bytes_received"] == 0 {
			t.Errorf("counters %v", c)
		}
		// The metric is what the receiver read, not what the sender wrote.
		if got, want := sc.Median, float64(c["bytes_received"])*8/sc.Extra["measured_seconds"]; math.Abs(got-want) > 0.01*want {
			t.Errorf("rx_bps %v, but %d bytes read over %vs is %v", got, c["bytes_received"], sc.Extra["measured_seconds"], want)
		}
	}
	if len(topos) > 1 {
		noNetnsLeft(t)
	}
}

func TestConnectRate(t *testing.T) {
	p := &Peer{}
	scs, err := p.Run(context.Background(), short(ConnectRate))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Port != topoLoopback {
		t.Fatalf("want one loopback scenario, got %+v", scs)
	}
	sc := scs[0]
	ranOK(t, sc)
	// The two counters are read one after the other at each edge of the
	// window: a connection may fall on either side of it.
	if sc.Metric != "conn_per_s" || sc.Counters["connections"] == 0 || sc.Counters["accepted"]+1 < sc.Counters["connections"] {
		t.Errorf("metric %s counters %v", sc.Metric, sc.Counters)
	}
}

func TestIperf3(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed (apt-get install iperf3); TestIperf3Missing covers the skipped scenario")
	}
	topos := topologiesHere(t)
	p := &Iperf3{Topologies: topos}
	scs, err := p.Run(context.Background(), short(TCPStream))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != len(topos) {
		t.Fatalf("%d scenarios for %d topologies", len(scs), len(topos))
	}
	for _, sc := range scs {
		skipWithoutCC(t, sc)
		ranOK(t, sc)
		if sc.Path != IperfPath || sc.Metric != "rx_bps" || sc.Knobs["cc"] != DefaultCC || sc.Knobs["cc_receiver"] != DefaultCC {
			t.Errorf("path %s knobs %v", sc.Path, sc.Knobs)
		}
	}
	if len(topos) > 1 {
		noNetnsLeft(t)
	}
}

// Without the tools a peer still answers, with scenarios that say what to
// install, never with nothing and never with a number.
func TestIperf3Missing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	scs, err := (&Iperf3{}).Run(context.Background(), short(TCPStream))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("want a scenario per topology, got %d", len(scs))
	}
	for _, sc := range scs {
		if sc.Skipped == "" || len(sc.Samples) != 0 {
			t.Errorf("%s: want skipped without samples, got skipped=%q samples=%v", sc.Port, sc.Skipped, sc.Samples)
		}
	}
	// Loopback lacks only iperf3; veth lacks root or ip first.
	if !strings.Contains(scs[0].Skipped, "apt-get install iperf3") {
		t.Errorf("loopback reason %q", scs[0].Skipped)
	}
	if r := scs[1].Skipped; !strings.Contains(r, "root") && !strings.Contains(r, "iproute2") {
		t.Errorf("veth reason %q", r)
	}
}

func TestVethSkippedWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: the no-root reason cannot be provoked")
	}
	scs, err := (&Peer{Topologies: []string{topoVeth}}).Run(context.Background(), short(UDPRR, 18, 1472))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scs {
		if sc.Skipped != "needs root for network namespaces" {
			t.Errorf("reason %q", sc.Skipped)
		}
		if sc.Knobs["mtu"] != workload.DefaultMTU || sc.Knobs["batch"] != 1 {
			t.Errorf("a skipped scenario still says what it would have run with: %v", sc.Knobs)
		}
	}
}

func TestUnknownWorkload(t *testing.T) {
	for _, p := range []interface {
		Run(context.Context, workload.Workload) ([]result.Scenario, error)
	}{&Peer{}, &Iperf3{}} {
		_, err := p.Run(context.Background(), short("l2_fwd"))
		if !errors.Is(err, workload.ErrUnknown) {
			t.Errorf("%T: err %v, want ErrUnknown", p, err)
		}
	}
	if _, err := (&Peer{}).Run(context.Background(), workload.Workload{Name: UDPStream}); err == nil {
		t.Error("a zero duration was accepted")
	}
}

// A cancelled context ends a run promptly with the context's error.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	w := workload.Workload{Name: UDPStream, Sizes: []int{18}, Duration: 30 * time.Second}
	start := time.Now()
	_, err := (&Peer{Topologies: []string{topoLoopback}}).Run(ctx, w)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelled run took %v", d)
	}
}

// The figure of an iperf3 run is the receiver's: end.sum_received, not
// sum_sent and not the sender-side intervals.
func TestParseIperf3(t *testing.T) {
	for _, tc := range []struct {
		file             string
		rxBPS, rxBytes   float64
		txBytes, retrans float64
		omittedIntervals int
	}{
		{"iperf3-3.12-loopback-cubic.json", 48790936303.790985, 6102581248, 6102581248, 8, 0},
		// With -O 1: the first interval is the warm-up; the receiver
		// read more than the sender wrote after the warm-up.
		{"iperf3-3.12-loopback-cubic-omit1.json", 26573462006.28802, 3333292032, 3327918080, 9, 1},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := parseIperf3(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		r := rep.End.SumReceived
		if r.BitsPerSecond != tc.rxBPS || r.Bytes != tc.rxBytes {
			t.Errorf("%s: sum_received %+v, want %v bits/s over %v bytes", tc.file, r, tc.rxBPS, tc.rxBytes)
		}
		if rep.End.SumSent.BitsPerSecond == r.BitsPerSecond {
			t.Errorf("%s: golden sample cannot tell sender from receiver", tc.file)
		}
		if rep.End.SumSent.Bytes != tc.txBytes || rep.End.SumSent.Retransmits != tc.retrans {
			t.Errorf("%s: sum_sent %+v", tc.file, rep.End.SumSent)
		}
		if rep.End.SenderCC != "cubic" || rep.End.ReceiverCC != "cubic" || rep.Start.Version != "iperf 3.12" {
			t.Errorf("%s: cc %q/%q version %q", tc.file, rep.End.SenderCC, rep.End.ReceiverCC, rep.Start.Version)
		}
	}

	data, err := os.ReadFile("testdata/iperf3-3.12-refused.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseIperf3(data); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("refused report: err %v", err)
	}
	if _, err := parseIperf3([]byte("iperf3: error - unable to start")); err == nil {
		t.Error("non-JSON output accepted")
	}
	if _, err := parseIperf3([]byte(`{"end":{"sum_sent":{"bytes":10,"seconds":1,"bits_per_second":80}}}`)); err == nil {
		t.Error("a report without the receiver's figure accepted")
	}
}

// One run is one sample: its events over its measured window, the warm-up
// and its counters left out.
func TestMeasureWindow(t *testing.T) {
	var n atomic.Uint64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				n.Add(1)
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	w := workload.Workload{Name: "x", Duration: 100 * time.Millisecond, Warmup: 50 * time.Millisecond}
	var on []bool
	win, err := measureWindow(context.Background(), w, probe{
		count:     n.Load,
		snap:      func() map[string]uint64 { return map[string]uint64{"n": n.Load()} },
		measuring: func(b bool) { on = append(on, b) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if win.span < w.Duration || win.events == 0 || win.counters["n"] < win.events || win.counters["n"] >= n.Load() {
		t.Errorf("window %+v: the counter delta should cover the window only (total now %d)", win, n.Load())
	}
	if len(on) != 2 || !on[0] || on[1] {
		t.Errorf("measuring calls %v, want [true false]", on)
	}
	// With a key, the events are that counter's increase: both from the
	// same reads.
	keyed, err := measureWindow(context.Background(), w, probe{
		count: func() uint64 { return 0 }, key: "n",
		snap: func() map[string]uint64 { return map[string]uint64{"n": n.Load()} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if keyed.events == 0 || keyed.events != keyed.counters["n"] {
		t.Errorf("keyed window: events %d, counter n %d", keyed.events, keyed.counters["n"])
	}
	var rs runs
	rs.add(win, 8)
	if want := float64(win.events) * 8 / win.span.Seconds(); rs.samples[0] != want {
		t.Errorf("sample %v, want %v", rs.samples[0], want)
	}
	rs.add(window{rate: 42, events: 1, span: time.Second}, 8)
	if rs.samples[1] != 42 {
		t.Errorf("a tool's own figure was replaced: %v", rs.samples)
	}
}

func TestSnmpField(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 100 2 3 400 17 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
UdpLite: 0 0 0 0 99 0
`
	if v := snmpField(snmp, "Udp", "RcvbufErrors"); v != 17 {
		t.Errorf("Udp RcvbufErrors %d, want 17", v)
	}
	if v := snmpField(snmp, "Udp", "Nothing"); v != 0 {
		t.Errorf("missing field %d", v)
	}
	if v := udpRcvbufErrors(""); v > 1<<62 {
		t.Errorf("this namespace's RcvbufErrors %d", v)
	}
}

func TestNearestRank(t *testing.T) {
	s := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]int64{50: 5, 99: 10, 10: 1, 11: 2, 100: 10} {
		if got := nearestRank(s, p); got != want {
			t.Errorf("p%v = %d, want %d", p, got, want)
		}
	}
}

// A namespace left by a killed run (its PID gone) is deleted by the next.
func TestReapStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not installed: apt-get install iproute2")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%d-0-tx", NetnsPrefix, dead.Process.Pid)
	if err := runIP(context.Background(), "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runIP(context.Background(), "netns", "del", name) })
	reapStale(context.Background())
	noNetnsLeft(t)
}

// A veth end counts as ready only once linkwatch has attached its qdisc and
// set it operationally up (lines as `ip -o link show` prints them).
func TestLinkReady(t *testing.T) {
	for line, want := range map[string]bool{
		"2: veth0@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000":                  false,
		"2: veth0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noop state UP mode DEFAULT group default qlen 1000":        false,
		"2: veth0@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 9000 qdisc noqueue state LOWERLAYERDOWN mode DEFAULT group default": false,
		"2: veth0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noqueue state UP mode DEFAULT group default qlen 1000":     true,
	} {
		if got := linkReady(line); got != want {
			t.Errorf("%q: ready %v, want %v", line, got, want)
		}
	}
}

// needVeth skips a test that needs the veth topology where the machine
// cannot give it (CI runs as root with iproute2, so there it runs).
func needVeth(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not installed: apt-get install iproute2")
	}
}

// tcp_stream as `pollnet bench tcp` runs it: 1 and 4 parallel connections
// over a veth pair at MTU 1500, cubic on every socket, goodput summed.
func TestTCPStreamStreamsAtMTU1500(t *testing.T) {
	needVeth(t)
	w := short(TCPStream)
	w.Streams, w.MTU = []int{1, 4}, 1500
	scs, err := (&Peer{Topologies: []string{topoVeth}}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("%d scenarios, want one per stream count", len(scs))
	}
	for i, sc := range scs {
		skipWithoutCC(t, sc)
		ranOK(t, sc)
		provenance(t, sc, w)
		k := sc.Knobs
		if k["streams"] != w.Streams[i] || k["mtu"] != 1500 || k["cc"] != "cubic" || sc.Port != topoVeth {
			t.Errorf("knobs %v port %s, want streams %d, mtu 1500, cc cubic on veth", k, sc.Port, w.Streams[i])
		}
		c := sc.Counters
		if got, want := sc.Median, float64(c["bytes_received"])*8/sc.Extra["measured_seconds"]; c["bytes_received"] == 0 || math.Abs(got-want) > 0.01*want {
			t.Errorf("rx_bps %v, but %d bytes read over %vs is %v", got, c["bytes_received"], sc.Extra["measured_seconds"], want)
		}
	}
	noNetnsLeft(t)
}

// vethTopology opens the veth topology at mtu, closed when t ends, and checks
// then that no namespace is left.
func vethTopology(t *testing.T, mtu int) *topology {
	t.Helper()
	topo, err := openTopology(context.Background(), topoVeth, mtu)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Error(err)
		}
		noNetnsLeft(t)
	})
	return topo
}

// The veth pair carries the workload's MTU, not the default.
func TestVethFollowsMTU(t *testing.T) {
	needVeth(t)
	topo := vethTopology(t, 1500)
	for _, end := range [][2]string{{topo.txNS, "veth0"}, {topo.rxNS, "veth1"}} {
		out, err := exec.Command("ip", "-n", end[0], "-o", "link", "show", "dev", end[1]).Output()
		if err != nil || !strings.Contains(string(out), " mtu 1500 ") {
			t.Errorf("%s in %s: %v %s, want mtu 1500", end[1], end[0], err, out)
		}
	}
}

// crrChecks checks tcp_crr scenarios: transactions, the knobs, and
// TIME_WAIT on the server's side only.
func crrChecks(t *testing.T, scs []result.Scenario, w workload.Workload, mtu int) {
	t.Helper()
	for _, sc := range scs {
		skipWithoutCC(t, sc)
		ranOK(t, sc)
		provenance(t, sc, w)
		k := sc.Knobs
		if sc.Name != TCPCRR || sc.Metric != "conn_per_s" || sc.Unit != "connections/s" {
			t.Errorf("labels %s %s %s", sc.Name, sc.Metric, sc.Unit)
		}
		if k["in_flight"] != 8 || k["request_bytes"] != 64 || k["response_bytes"] != 64 || k["closer"] != "server" || k["cc"] != "cubic" {
			t.Errorf("knobs %v", k)
		}
		if sc.Port == topoVeth && k["mtu"] != mtu {
			t.Errorf("veth mtu knob %v, want %d", k["mtu"], mtu)
		}
		c := sc.Counters
		if c["transactions"] == 0 || c["accepted"] == 0 || c["served"] == 0 {
			t.Errorf("counters %v", c)
		}
		// The two counters are read one after the other at each edge of
		// the window; in-flight transactions may fall on either side.
		if c["transactions"] > c["served"]+CRRInFlight {
			t.Errorf("%d transactions completed but %d served", c["transactions"], c["served"])
		}
		if c["time_wait_server"] == 0 || c["time_wait_client"] > crrFailed(c) {
			t.Errorf("TIME_WAIT: %d on the server's side, %d on the client's; want all on the server's", c["time_wait_server"], c["time_wait_client"])
		}
		if sc.Extra["cpu_us_per_conn"] <= 0 {
			t.Errorf("extra %v", sc.Extra)
		}
	}
}

// crrFailed is the number of transactions of a tcp_crr window that failed.
// Only a failed one may leave TIME_WAIT on the client's side: the client
// gave up and closed first.
func crrFailed(c map[string]uint64) uint64 {
	return c["client_errors"] + c["server_errors"]
}

func TestTCPCRR(t *testing.T) {
	topos := topologiesHere(t)
	w := short(TCPCRR)
	w.Repeat, w.MTU = 2, 1500
	scs, err := (&Peer{Topologies: topos}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != len(topos) {
		t.Fatalf("%d scenarios for %d topologies", len(scs), len(topos))
	}
	crrChecks(t, scs, w, 1500)
	if len(topos) > 1 {
		noNetnsLeft(t)
	}
}

// ssTimeWait counts the TIME_WAIT sockets ss sees in namespace ns.
func ssTimeWait(t *testing.T, ns string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-tanH", "state", "time-wait").Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", ns, err)
	}
	return strings.Count(string(out), "\n")
}

// The server closes first, so TIME_WAIT is in the server's namespace and
// none in the client's, as ss sees it, not only as the peer counts it.
func TestTCPCRRTimeWaitOnServer(t *testing.T) {
	needVeth(t)
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss not installed: apt-get install iproute2")
	}
	topo := vethTopology(t, 9000)
	win, err := (&Peer{}).crrOnce(context.Background(), topo, short(TCPCRR))
	if err != nil && strings.HasPrefix(skipReason(err), "TCP congestion control") {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := ssTimeWait(t, topo.rxNS), ssTimeWait(t, topo.txNS)
	t.Logf("%d transactions in %v; ss: %d TIME_WAIT on the server's side, %d on the client's; counters %v",
		win.events, win.span, srv, cli, win.counters)
	if srv == 0 || uint64(cli) > crrFailed(win.counters) {
		t.Errorf("ss: %d TIME_WAIT in the server's namespace, %d in the client's", srv, cli)
	}
	if uint64(srv) != win.counters["time_wait_server"] {
		t.Errorf("ss counts %d TIME_WAIT on the server's side, the peer %d", srv, win.counters["time_wait_server"])
	}
	if uint64(srv) < win.counters["transactions"] {
		t.Errorf("%d TIME_WAIT for %d measured transactions", srv, win.counters["transactions"])
	}
}

func TestCountTimeWait(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 020012C6:A1B2 010012C6:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   1: 020012C6:A1B2 010012C6:1F91 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   2: 010012C6:1F90 020012C6:A1B2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: 020012C6:A1B2 010012C6:1F92 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000
   4: 020012C6:0050 010012C6:1F93 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`
	local, remote, err := countTimeWait(bufio.NewScanner(strings.NewReader(tcp)), 0xA1B2)
	if err != nil || local != 2 || remote != 1 {
		t.Errorf("local %d remote %d err %v, want 2 and 1", local, remote, err)
	}
}

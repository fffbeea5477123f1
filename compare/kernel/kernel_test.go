package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// short is a workload brief enough for a unit test: one 300 ms sample.
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

// noNetnsLeft asserts `ip netns list` shows none of this package's
// namespaces once a run is over.
func noNetnsLeft(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, NetnsPrefix) {
			t.Errorf("namespace left behind: %s", strings.TrimSpace(l))
		}
	}
}

func TestUDPPPS(t *testing.T) {
	topos := topologiesHere(t)
	p := &Peer{Topologies: topos}
	scs, err := p.Run(context.Background(), short(UDPPPS, 18))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != len(topos) {
		t.Fatalf("%d scenarios for %d topologies", len(scs), len(topos))
	}
	for i, sc := range scs {
		ranOK(t, sc)
		if sc.Metric != "rx_pps" || sc.Unit != "packets/s" || sc.Path != Path || sc.Knobs["topology"] != topos[i] {
			t.Errorf("scenario labels: %+v", sc)
		}
		if sc.Knobs["batch"] != DefaultBatch || sc.Knobs["size"] != 60 {
			t.Errorf("knobs %v", sc.Knobs)
		}
		c := sc.Counters
		if c["received"] == 0 || c["sent"] < c["received"] || c["drops"] != c["sent"]-c["received"] {
			t.Errorf("counters %v", c)
		}
		if sc.Extra["mpps_median"] <= 0 || sc.Extra["cpu_ns_per_packet"] <= 0 {
			t.Errorf("extra %v", sc.Extra)
		}
	}
	if len(topos) > 1 {
		noNetnsLeft(t)
	}
}

// One syscall per packet is the unbatched baseline; it must work too.
func TestUDPPPSUnbatched(t *testing.T) {
	p := &Peer{Topologies: []string{topoLoopback}, Batch: 1}
	scs, err := p.Run(context.Background(), short(UDPPPS, 1472))
	if err != nil {
		t.Fatal(err)
	}
	ranOK(t, scs[0])
	if scs[0].Knobs["syscalls"] != "write/read" || scs[0].Knobs["size"] != 1514 {
		t.Errorf("knobs %v", scs[0].Knobs)
	}
}

func TestTCPStream(t *testing.T) {
	topos := topologiesHere(t)
	p := &Peer{Topologies: topos}
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
		if sc.Metric != "tx_bps" || sc.Knobs["cc"] != DefaultCC {
			t.Errorf("labels %s %v", sc.Metric, sc.Knobs)
		}
		if sc.Counters["bytes_sent"] == 0 || sc.Counters["bytes_received"] != sc.Counters["bytes_sent"] {
			t.Errorf("counters %v: the receiver should read every byte written", sc.Counters)
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
	if sc.Metric != "conn_per_s" || sc.Counters["connections"] == 0 || sc.Counters["accepted"] < sc.Counters["connections"] {
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
		if sc.Path != IperfPath || sc.Knobs["cc"] != DefaultCC || sc.Knobs["cc_receiver"] != DefaultCC {
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
	scs, err := (&Peer{Topologies: []string{topoVeth}}).Run(context.Background(), short(UDPPPS, 18, 1472))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scs {
		if sc.Skipped != "needs root for network namespaces" {
			t.Errorf("reason %q", sc.Skipped)
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
	if _, err := (&Peer{}).Run(context.Background(), workload.Workload{Name: UDPPPS}); err == nil {
		t.Error("a zero duration was accepted")
	}
}

// A cancelled context ends a run promptly with the context's error.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	w := workload.Workload{Name: UDPPPS, Sizes: []int{18}, Duration: 30 * time.Second}
	start := time.Now()
	_, err := (&Peer{Topologies: []string{topoLoopback}}).Run(ctx, w)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelled run took %v", d)
	}
}

func TestParseIperf3(t *testing.T) {
	data, err := os.ReadFile("testdata/iperf3-3.12-loopback-cubic.json")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := parseIperf3(data)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.samples()
	if len(s) != 2 || s[0] != 45713075388.11018 || s[1] != 51913230212.20207 {
		t.Errorf("samples %v", s)
	}
	if rep.End.SenderCC != "cubic" || rep.End.ReceiverCC != "cubic" || rep.Start.Version != "iperf 3.12" {
		t.Errorf("cc %q/%q version %q", rep.End.SenderCC, rep.End.ReceiverCC, rep.Start.Version)
	}
	if rep.End.SumSent.Bytes != 6102581248 || rep.End.SumSent.Retransmits != 8 {
		t.Errorf("sum_sent %+v", rep.End.SumSent)
	}

	data, err = os.ReadFile("testdata/iperf3-3.12-refused.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseIperf3(data); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("refused report: err %v", err)
	}
	if _, err := parseIperf3([]byte("iperf3: error - unable to start")); err == nil {
		t.Error("non-JSON output accepted")
	}
}

func TestSampleRatesShortDuration(t *testing.T) {
	var n uint64
	w := workload.Workload{Name: "x", Duration: 50 * time.Millisecond}
	win, err := sampleRates(context.Background(), w, func() uint64 { n += 10; return n })
	if err != nil {
		t.Fatal(err)
	}
	if len(win.samples) != 1 || win.events != 10 || win.span < 50*time.Millisecond {
		t.Errorf("window %+v", win)
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

package compare

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/pollnet/pollnet/internal/result"
)

// fakePeer records what it was asked to run; it stands in for a real peer
// so the dispatch can be tested without traffic.
type fakePeer struct {
	name  string
	works []string
	ran   []string
}

func (f *fakePeer) Name() string        { return f.name }
func (f *fakePeer) Workloads() []string { return f.works }
func (f *fakePeer) Run(_ context.Context, w Workload) ([]result.Scenario, error) {
	f.ran = append(f.ran, w.Name)
	return []result.Scenario{{Name: w.Name, Path: f.name, Skipped: "fake"}}, nil
}

func TestPeers(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Peers() {
		if p.Name() == "" || len(p.Workloads()) == 0 {
			t.Errorf("%T: name %q workloads %v", p, p.Name(), p.Workloads())
		}
		if seen[p.Name()] {
			t.Errorf("two peers named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	for _, want := range []string{"kernel", "kernel-iperf3", "dpdk-testpmd"} {
		if !seen[want] {
			t.Errorf("no peer %q", want)
		}
	}
}

func TestRunDispatch(t *testing.T) {
	a := &fakePeer{name: "a", works: []string{"udp_stream", "tcp_stream"}}
	b := &fakePeer{name: "b", works: []string{"l2_fwd"}}
	w := Workload{Name: "udp_stream", Duration: time.Second}
	scs, err := Run(context.Background(), []Peer{a, b}, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Path != "a" || len(a.ran) != 1 || len(b.ran) != 0 {
		t.Errorf("scenarios %+v, a ran %v, b ran %v", scs, a.ran, b.ran)
	}
	w.Name = "nothing"
	if _, err := Run(context.Background(), []Peer{a, b}, w); !errors.Is(err, ErrUnknownWorkload) {
		t.Errorf("unknown workload: err %v", err)
	}
	if _, err := Run(context.Background(), []Peer{a}, Workload{Name: "udp_stream"}); err == nil {
		t.Error("zero duration accepted")
	}
}

// The gVisor peer, built and run as the suite runs it, reports the UDP
// workloads under the names every path uses, and TCP as goodput read by
// the receiver, with the MTU and batching in the knobs.
func TestGVisor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gVisor peer")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command: the gVisor peer builds from source")
	}
	g := &GVisor{}
	want := map[string]string{"udp_rr": "transactions_per_s", "udp_stream": "rx_pps", "tcp_stream": "rx_bps", "tcp_crr": "conn_per_s"}
	for _, name := range g.Workloads() {
		w := Workload{Name: name, Sizes: []int{64}, Duration: 150 * time.Millisecond, Warmup: 50 * time.Millisecond, Repeat: 2}
		scs, err := g.Run(context.Background(), w)
		if err != nil {
			t.Fatal(err)
		}
		if len(scs) != 1 {
			t.Fatalf("%s: %d scenarios", name, len(scs))
		}
		sc := scs[0]
		if sc.Skipped != "" {
			t.Fatalf("%s skipped: %s", name, sc.Skipped)
		}
		t.Logf("%s %v: median %.4g %s, samples %v", name, sc.Knobs, sc.Median, sc.Unit, sc.Samples)
		if sc.Name != name || sc.Path != "gvisor" || sc.Metric != want[name] || len(sc.Samples) != 2 || sc.Median <= 0 {
			t.Errorf("%s: name %s path %s metric %s samples %v", name, sc.Name, sc.Path, sc.Metric, sc.Samples)
		}
		// JSON numbers come back as float64.
		if sc.Knobs["mtu"] != float64(DefaultMTU) {
			t.Errorf("%s: mtu knob %v, want %d", name, sc.Knobs["mtu"], DefaultMTU)
		}
		tcp := name == "tcp_stream" || name == "tcp_crr"
		if !tcp && (sc.Knobs["batch"] != 1.0 || sc.Knobs["payload"] != 64.0) {
			t.Errorf("%s: knobs %v, want batch 1 and payload 64", name, sc.Knobs)
		}
		if tcp && sc.Knobs["cc"] != "cubic" {
			t.Errorf("%s: cc %v", name, sc.Knobs["cc"])
		}
		if name == "tcp_stream" && sc.Knobs["streams"] != 1.0 {
			t.Errorf("tcp_stream: streams %v, want 1 by default", sc.Knobs["streams"])
		}
		if name == "tcp_crr" && (sc.Knobs["in_flight"] != 8.0 || sc.Knobs["closer"] != "server") {
			t.Errorf("tcp_crr: knobs %v", sc.Knobs)
		}
		if sc.Repeat != 2 || sc.WarmupS != 0.05 || sc.GOMAXPROCS < 1 || sc.Roles["client"] != -1 || sc.P99 != nil {
			t.Errorf("%s: repeat %d warmup %v gomaxprocs %d roles %v p99 %v", name, sc.Repeat, sc.WarmupS, sc.GOMAXPROCS, sc.Roles, sc.P99)
		}
		if sc.Knobs["gvisor"] == "unknown" || sc.Knobs["gvisor"] == nil {
			t.Errorf("%s: gvisor version knob %v", name, sc.Knobs["gvisor"])
		}
	}
}

// tcp_stream's stream counts and MTU reach the gVisor program: a scenario
// per stream count, at the workload's MTU.
func TestGVisorStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gVisor peer")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command: the gVisor peer builds from source")
	}
	w := Workload{Name: "tcp_stream", Duration: 150 * time.Millisecond, Warmup: 50 * time.Millisecond, MTU: 1500, Streams: []int{1, 4}}
	scs, err := (&GVisor{}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("%d scenarios, want one per stream count", len(scs))
	}
	for i, sc := range scs {
		if sc.Skipped != "" {
			t.Fatalf("skipped: %s", sc.Skipped)
		}
		if sc.Knobs["streams"] != float64(w.Streams[i]) || sc.Knobs["mtu"] != 1500.0 || sc.Median <= 0 {
			t.Errorf("knobs %v median %v, want streams %d at mtu 1500", sc.Knobs, sc.Median, w.Streams[i])
		}
	}
	// A peer that cannot build still names each stream count it skipped.
	scs, err = (&GVisor{Dir: t.TempDir()}).Run(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 || scs[1].Skipped == "" || scs[1].Knobs["streams"] != 4 {
		t.Errorf("skipped scenarios %+v", scs)
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
)

// Both workloads in both modes, two rounds each at MTU 1500: every run
// moves data or completes transactions, one sample per run, the knobs the
// peers carry, the TCP counters of both stacks over the window, TIME-WAIT
// on the server's side only, the modes interleaved, and the stacks closed
// clean.
func TestRunTCPBothWorkloadsBothModes(t *testing.T) {
	var progress strings.Builder
	cfg := TCPConfig{Workloads: []string{TCPStream, TCPCRR}, MTUs: []int{1500}, Streams: []int{1}, Modes: []Mode{ModePMD, ModeNAPI},
		// 400 ms: a crowded machine can starve a shard until its ring drops
		// and a connection waits out a 200 ms retransmission timeout.
		Duration: 400 * time.Millisecond, Warmup: 50 * time.Millisecond, Repeat: 2, ClientCore: engine.AnyCore,
		ServerCore: engine.AnyCore, Progress: &progress}
	scs, err := RunTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 4 {
		t.Fatalf("%d scenarios, want 4", len(scs))
	}
	for _, sc := range scs {
		name := sc.Name + " " + sc.Path
		if sc.Skipped != "" || sc.Median <= 0 || len(sc.Samples) != 2 || sc.Repeat != 2 || sc.Port != "wire" {
			t.Errorf("%s: skipped %q median %v samples %v repeat %d port %s", name, sc.Skipped, sc.Median, sc.Samples, sc.Repeat, sc.Port)
		}
		if sc.Knobs["mtu"] != 1500 || sc.Knobs["cc"] != "cubic" || sc.GOMAXPROCS < 4 || sc.WarmupS != 0.05 {
			t.Errorf("%s: knobs %v gomaxprocs %d warmup %v", name, sc.Knobs, sc.GOMAXPROCS, sc.WarmupS)
		}
		for _, side := range []string{"client", "server"} {
			for _, c := range []string{"InSegs", "OutSegs", "RetransSegs", "TCPSackRecovery", "TCPLossProbes", "TCPTimeouts", "DelayedACKs"} {
				if _, ok := sc.Counters[side+"_"+c]; !ok {
					t.Errorf("%s: no counter %s_%s", name, side, c)
				}
			}
			if sc.Counters[side+"_InSegs"] == 0 || sc.Counters[side+"_shard0_rx_frames"] == 0 {
				t.Errorf("%s: %s took in no segment in the window: %v", name, side, sc.Counters)
			}
		}
		switch sc.Name {
		case TCPStream:
			if sc.Metric != "rx_bps" || sc.Unit != "bits/s" || sc.Knobs["streams"] != 1 || sc.Knobs["write_bytes"] != 128<<10 {
				t.Errorf("%s: metric %s %s knobs %v", name, sc.Metric, sc.Unit, sc.Knobs)
			}
			// The samples are bits read over the window: the bytes the
			// reader counted, times 8, over the measured seconds.
			bits := 8 * float64(sc.Counters["bytes_received"]) / sc.Extra["measured_seconds"]
			if bits < 0.9*sc.Min || bits > 1.1*sc.Max {
				t.Errorf("%s: %d bytes read over %vs is %v bit/s, outside the runs' %v..%v", name, sc.Counters["bytes_received"],
					sc.Extra["measured_seconds"], bits, sc.Min, sc.Max)
			}
			if sc.Counters["bytes_sent"] < sc.Counters["bytes_received"]/2 {
				t.Errorf("%s: sent %d, received %d", name, sc.Counters["bytes_sent"], sc.Counters["bytes_received"])
			}
		case TCPCRR:
			if sc.Metric != "conn_per_s" || sc.Knobs["in_flight"] != 8 || sc.Knobs["request_bytes"] != 64 ||
				sc.Knobs["response_bytes"] != 64 || sc.Knobs["closer"] != "server" {
				t.Errorf("%s: metric %s knobs %v", name, sc.Metric, sc.Knobs)
			}
			c := sc.Counters
			if c["transactions"] == 0 || c["client_errors"] != 0 || c["server_errors"] != 0 {
				t.Errorf("%s: %d transactions, %d client and %d server errors", name, c["transactions"], c["client_errors"], c["server_errors"])
			}
			// The server closes first: TIME-WAIT is the server's, a
			// connection per transaction of the runs (warm-ups included).
			if c["time_wait_client"] != 0 || c["time_wait_server"] < c["transactions"] {
				t.Errorf("%s: TIME-WAIT on the client %d, on the server %d for %d transactions", name, c["time_wait_client"],
					c["time_wait_server"], c["transactions"])
			}
			// Connections in flight as a window opens or closes count on
			// one side of the edge and not the other: 8 per edge and run.
			slack := uint64(2 * crrInFlight * cfg.Repeat)
			if c["client_ActiveOpens"]+slack < c["transactions"] || c["server_PassiveOpens"]+slack < c["transactions"] {
				t.Errorf("%s: %d active and %d passive opens for %d transactions", name, c["client_ActiveOpens"], c["server_PassiveOpens"], c["transactions"])
			}
		}
	}
	// The runs interleave: pmd 1/2, napi 1/2 of every scenario, then 2/2.
	inOrder(t, progress.String(), "tcp_stream pmd  mtu 1500 s1 1/2", "tcp_stream napi mtu 1500 s1 1/2", "tcp_crr    pmd  mtu 1500 c8 1/2",
		"tcp_stream pmd  mtu 1500 s1 2/2", "tcp_crr    napi mtu 1500 c8 2/2")
	var b strings.Builder
	FormatTCP(&b, scs)
	t.Log("\n" + b.String())
	if !strings.Contains(b.String(), "pollnet-pmd/pollnet-napi tcp_stream mtu 1500 streams 1: ") {
		t.Errorf("no pmd/napi ratio:\n%s", b.String())
	}
}

// fakePeer returns one scenario per call with a sample of its own, or a
// skipped one; it counts its calls.
type fakePeer struct {
	name  string
	skip  string
	calls int
}

func (p *fakePeer) Name() string        { return p.name }
func (p *fakePeer) Workloads() []string { return []string{TCPStream} }
func (p *fakePeer) Run(_ context.Context, w compare.Workload) ([]result.Scenario, error) {
	p.calls++
	if w.Repeat != 1 || w.MTU != 1500 || len(w.Streams) != 1 {
		return nil, fmt.Errorf("asked for %+v, want one run at MTU 1500 of one stream count", w)
	}
	sc := result.Scenario{Name: w.Name, Path: p.name, Port: "veth", Knobs: map[string]any{"mtu": w.MTU, "streams": w.Streams[0]},
		Metric: "rx_bps", Unit: "bits/s", Repeat: 1, Skipped: p.skip}
	if p.skip == "" {
		sc.Samples = []float64{float64(p.calls) * 1e9}
		sc.CPUSeconds = 0.5
		sc.Counters = map[string]uint64{"retransmits": 2}
		sc.Extra = map[string]float64{"measured_seconds": float64(p.calls), "cpu_ns_per_kib": 100 * float64(p.calls)}
		if err := sc.Summarise(); err != nil {
			return nil, err
		}
	}
	return []result.Scenario{sc}, nil
}

// The peers run once per round, beside pollnet's runs, and their rounds
// pool into one scenario each: samples in order, counters and CPU summed,
// other figures weighted by measured time. A peer that skips is not asked
// again, and its scenario says why.
func TestRunTCPPoolsThePeersRounds(t *testing.T) {
	kernel, broken := &fakePeer{name: "kernel"}, &fakePeer{name: "gvisor", skip: "no go command"}
	cfg := TCPConfig{Workloads: []string{TCPStream}, MTUs: []int{1500}, Streams: []int{1}, Modes: []Mode{ModeNAPI},
		Duration: 100 * time.Millisecond, Repeat: 3, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore,
		Peers: []compare.Peer{kernel, broken}}
	scs, err := RunTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if kernel.calls != 3 || broken.calls != 1 {
		t.Fatalf("kernel asked %d times, the skipping peer %d; want 3 and 1", kernel.calls, broken.calls)
	}
	var paths []string
	for _, sc := range scs {
		paths = append(paths, sc.Path)
	}
	if strings.Join(paths, " ") != "pollnet-napi kernel gvisor" {
		t.Fatalf("paths %v", paths)
	}
	k, g := scs[1], scs[2]
	if fmt.Sprint(k.Samples) != "[1e+09 2e+09 3e+09]" || k.Repeat != 3 || k.Median != 2e9 || k.CPUSeconds != 1.5 ||
		k.Counters["retransmits"] != 6 || k.Extra["measured_seconds"] != 6 {
		t.Errorf("kernel pooled: samples %v repeat %d median %v cpu %v counters %v extra %v", k.Samples, k.Repeat, k.Median,
			k.CPUSeconds, k.Counters, k.Extra)
	}
	// (100·1 + 200·2 + 300·3) / 6
	if v := k.Extra["cpu_ns_per_kib"]; v < 233.3 || v > 233.4 {
		t.Errorf("cpu_ns_per_kib %v, want the runs' figures weighted by measured time, 233.3", v)
	}
	if g.Skipped != "no go command" || len(g.Samples) != 0 {
		t.Errorf("skipping peer: %q %v", g.Skipped, g.Samples)
	}
	var b strings.Builder
	FormatTCP(&b, scs)
	if !strings.Contains(b.String(), "pollnet-napi/kernel tcp_stream mtu 1500 streams 1: ") || !strings.Contains(b.String(), "skipped: no go command") {
		t.Errorf("table:\n%s", b.String())
	}
}

// A peer that fails a later round skips the whole scenario, saying which
// round, rather than pooling fewer samples than the others have.
func TestPeerPoolSkipsOnAFailedRound(t *testing.T) {
	var p peerPool
	ok := result.Scenario{Name: TCPStream, Path: "kernel", Samples: []float64{1}, Extra: map[string]float64{"measured_seconds": 1}}
	p.add(ok)
	p.add(result.Scenario{Name: TCPStream, Path: "kernel", Skipped: "failed: connect: refused"})
	p.add(ok)
	sc, err := p.scenario()
	if err != nil {
		t.Fatal(err)
	}
	if sc.Skipped != "round 2: failed: connect: refused" || sc.Samples != nil || sc.Repeat != 3 {
		t.Errorf("pooled %+v", sc)
	}
}

// Validate names the flag and the range of each value out of range.
func TestTCPValidateNamesTheFlag(t *testing.T) {
	good := TCPConfig{Workloads: []string{TCPStream, TCPCRR}, MTUs: []int{1500}, Streams: []int{1}, Modes: []Mode{ModePMD},
		Duration: time.Second, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*TCPConfig)
		want string
	}{
		{func(c *TCPConfig) { c.MTUs = []int{9001} }, "--mtu 9001 is out of range: use 576..9000"},
		{func(c *TCPConfig) { c.MTUs = []int{500} }, "--mtu 500"},
		{func(c *TCPConfig) { c.MTUs = nil }, "--mtu"},
		{func(c *TCPConfig) { c.Streams = []int{0} }, "--streams 0 is out of range: use 1..64"},
		{func(c *TCPConfig) { c.Streams = []int{65} }, "--streams 65"},
		{func(c *TCPConfig) { c.Workloads = []string{"tcp_rr"} }, "tcp_rr"},
		{func(c *TCPConfig) { c.Duration = time.Millisecond }, "--duration"},
	} {
		cfg := good
		c.edit(&cfg)
		err := cfg.Validate()
		var fe *FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	if _, err := TCPPeers([]string{"kernel", "bsd"}); err == nil || !strings.Contains(err.Error(), `--peers: unknown peer "bsd"`) {
		t.Errorf("unknown peer: %v", err)
	}
	if ps, err := TCPPeers(ParsePeers(" kernel, gvisor ,")); err != nil || len(ps) != 2 || ps[0].Name() != "kernel" || ps[1].Name() != "gvisor" {
		t.Errorf("kernel,gvisor: %v %v", ps, err)
	}
	if ps, err := TCPPeers(ParsePeers("none")); err != nil || len(ps) != 0 {
		t.Errorf("none: %v %v", ps, err)
	}
}

// The full suite runs tcp with the peers beside it, and leaves tcp_stream
// out of the peers job, which would measure the kernel's twice.
func TestFullSuiteRunsTCPAndThePeersLeaveTCPStreamToIt(t *testing.T) {
	o := Options{Modes: []Mode{ModePMD, ModeNAPI}, Queues: 1, Warmup: 500 * time.Millisecond, RingSize: 1024, GenCore: -1, FwdCore: -1}
	jobs, err := Plan("full", o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "udp,tcp,peers") {
		t.Fatalf("full runs %v", names)
	}
	for _, w := range o.peerWorkloads(true) {
		if w.Name == TCPStream {
			t.Errorf("the peers job still runs tcp_stream beside the tcp job")
		}
	}
	if len(o.peerWorkloads(false)) != 4 {
		t.Errorf("without the tcp job the peers run %v", o.peerWorkloads(false))
	}
	// A single workload runs alone, with the flags' MTUs and streams.
	o.Duration = time.Second
	o.MTUs, o.MTUsSet, o.Streams, o.StreamsSet, o.Peers, o.PeersSet = []int{9000}, true, []int{2}, true, "none", true
	jobs, err = Plan("tcp_stream", o)
	if err != nil || len(jobs) != 1 || jobs[0].Name != "tcp_stream" || jobs[0].Estimate.Unknown || jobs[0].Estimate.Runs != 2*DefaultRepeat {
		t.Fatalf("tcp_stream: %+v %v", jobs, err)
	}
}

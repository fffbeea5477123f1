package bench

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack"
)

// TestRunUDP runs both workloads in both modes briefly, two independent
// runs each; each must complete transactions or deliver datagrams, carry
// one sample per run and the knobs every path carries, and the stacks must
// close clean (every mbuf back in its pool).
func TestRunUDP(t *testing.T) {
	var progress strings.Builder
	cfg := UDPConfig{Sizes: []int{16, 3000}, Modes: []Mode{ModePMD, ModeNAPI}, Duration: 200 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Repeat: 2, Queues: 1, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore, Progress: &progress}
	procs := runtime.GOMAXPROCS(0)
	rs, err := RunUDP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOMAXPROCS(0) != procs {
		t.Errorf("GOMAXPROCS left at %d, was %d", runtime.GOMAXPROCS(0), procs)
	}
	if len(rs) != 8 {
		t.Fatalf("%d results, want 8", len(rs))
	}
	for _, r := range rs {
		sc := r.Scenario
		name := fmt.Sprintf("%s %s %d B", r.Workload, r.Mode, r.Size)
		if sc.Median <= 0 || sc.Counters["total"] == 0 {
			t.Errorf("%s %s %d: median %v, total %d", r.Workload, r.Mode, r.Size, sc.Median, sc.Counters["total"])
		}
		if len(sc.Samples) != 2 || sc.Repeat != 2 || sc.P99 != nil {
			t.Errorf("%s: samples %v repeat %d p99 %v; want one sample per run and no p99", name, sc.Samples, sc.Repeat, sc.P99)
		}
		if sc.Roles["client"] != engine.AnyCore || sc.Roles["server"] != engine.AnyCore || sc.GOMAXPROCS < 4 || sc.WarmupS != 0.05 {
			t.Errorf("%s: roles %v gomaxprocs %d warmup %v", name, sc.Roles, sc.GOMAXPROCS, sc.WarmupS)
		}
		batch := 1
		if r.Workload == "udp_stream" {
			batch = udpBatch
			if sc.Metric != "rx_pps" || sc.Knobs["rx_batch"] != 1 {
				t.Errorf("%s: metric %s knobs %v", name, sc.Metric, sc.Knobs)
			}
		} else if sc.Metric != "transactions_per_s" {
			t.Errorf("%s: metric %s", name, sc.Metric)
		}
		if sc.Knobs["mtu"] != wire.DefaultMTU || sc.Knobs["batch"] != batch || sc.Knobs["payload"] != r.Size || sc.Knobs["size"] != r.Size+42 {
			t.Errorf("%s: knobs %v, want mtu %d batch %d", name, sc.Knobs, wire.DefaultMTU, batch)
		}
		// The pooled count over the pooled measured time is a weighted
		// mean of the runs' rates, so it lies between the least and the
		// greatest: a count that took in the warm-up would not.
		if pooled := float64(sc.Counters["total"]) / sc.Extra["wall_seconds"]; pooled < 0.99*sc.Min || pooled > 1.01*sc.Max {
			t.Errorf("%s: %d over %vs is %v/s, outside the runs' %v..%v", name, sc.Counters["total"], sc.Extra["wall_seconds"], pooled, sc.Min, sc.Max)
		}
		if r.Workload == "udp_rr" {
			// A round trip completing as a run's window opens or closes
			// may be timed and not counted: at most one at each edge.
			n := sc.Extra["latency_samples"]
			if sc.Extra["latency_p50_ns"] <= 0 || n < 1 || n > float64(sc.Counters["total"]+2*uint64(cfg.Repeat)) {
				t.Errorf("%s: %v round-trip times for %d measured transactions, p50 %v", name, n, sc.Counters["total"], sc.Extra["latency_p50_ns"])
			}
		}
		if r.Mode == ModeNAPI && sc.Counters["parks"] == 0 {
			t.Errorf("napi %s: applications never parked", r.Workload)
		}
		// One queue is the scenario as before shards: no queues knob, so
		// its rows match older results; one shard's counters.
		if _, ok := sc.Knobs["queues"]; ok || r.Queues != 1 {
			t.Errorf("%s: knobs %v queues %d; one queue records no queues knob", name, sc.Knobs, r.Queues)
		}
		if _, ok := sc.Counters["server_shard0_udp_in"]; !ok {
			t.Errorf("%s: no counters of shard 0: %v", name, sc.Counters)
		}
		if _, ok := sc.Counters["server_shard1_udp_in"]; ok {
			t.Errorf("%s: counters of a shard 1 with one queue", name)
		}
	}
	// The runs interleave: pmd 1/2, napi 1/2, pmd 2/2, napi 2/2.
	inOrder(t, progress.String(), "udp_rr     pmd     16B q1 1/2", "udp_rr     napi    16B q1 1/2", "udp_rr     pmd     16B q1 2/2", "udp_rr     napi    16B q1 2/2")
	var b strings.Builder
	FormatUDP(&b, rs)
	t.Log("\n" + b.String())
	if !strings.Contains(b.String(), "pmd/napi udp_rr at 16 B") {
		t.Fatalf("no ratios:\n%s", b.String())
	}
	bad := cfg
	bad.Sizes = []int{8}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Fatalf("8-byte payload: %v", err)
	}
}

// inOrder fails t unless every label is in out, each after the one before.
func inOrder(t *testing.T, out string, labels ...string) {
	t.Helper()
	last := -1
	for _, label := range labels {
		i := strings.Index(out, label)
		if i < 0 || i < last {
			t.Fatalf("run %q missing or out of order (at %d, previous at %d):\n%s", label, i, last, out)
		}
		last = i
	}
}

// With two queues each stack runs two shards and the applications a flow on
// each, in both modes: both server shards receive the stream, every flow
// completes transactions, and the counters carry each shard's figures.
func TestRunUDPWithTwoQueuesRunsAFlowPerShard(t *testing.T) {
	var progress strings.Builder
	// Both stacks asked on one core: with several queues no shard is
	// pinned, so this is no conflict.
	core := engine.AnyCore
	if cores, err := engine.Cores(); err == nil && len(cores) > 0 {
		core = cores[0]
	}
	cfg := UDPConfig{Sizes: []int{64}, Modes: []Mode{ModePMD, ModeNAPI}, Duration: 400 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Repeat: 1, Queues: 2, ClientCore: core, ServerCore: core, Progress: &progress}
	rs, err := RunUDP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4", len(rs))
	}
	for _, r := range rs {
		sc := r.Scenario
		name := fmt.Sprintf("%s %s", r.Workload, r.Mode)
		if sc.Median <= 0 || sc.Counters["total"] == 0 {
			t.Errorf("%s: median %v, total %d", name, sc.Median, sc.Counters["total"])
		}
		if r.Queues != 2 || sc.Knobs["queues"] != 2 {
			t.Errorf("%s: queues %d, knobs %v", name, r.Queues, sc.Knobs)
		}
		// Every shard unpinned, whatever cores were asked for.
		if sc.Roles["client"] != engine.AnyCore || sc.Roles["server"] != engine.AnyCore || sc.GOMAXPROCS < 6 {
			t.Errorf("%s: roles %v gomaxprocs %d", name, sc.Roles, sc.GOMAXPROCS)
		}
		for _, st := range []string{"client", "server"} {
			for i := range 2 {
				for _, c := range []string{"rx_frames", "tx_frames", "tx_dropped", "udp_in", "steered_out", "steered_in", "handed_off", "direct_sends"} {
					k := fmt.Sprintf("%s_shard%d_%s", st, i, c)
					if _, ok := sc.Counters[k]; !ok {
						t.Errorf("%s: no counter %s", name, k)
					}
				}
				// Each flow lives on one shard at both ends: nothing is
				// steered in software, every shard receives its flow.
				p := fmt.Sprintf("%s_shard%d_", st, i)
				if sc.Counters[p+"steered_out"] != 0 || sc.Counters[p+"steered_in"] != 0 {
					t.Errorf("%s: %s steered %d out, %d in", name, p, sc.Counters[p+"steered_out"], sc.Counters[p+"steered_in"])
				}
				// Both server shards hear the stream. (Not asked of
				// udp_rr: four busy workers time-sharing two cores can
				// leave one flow's round trips waiting out the window.)
				if st == "server" && r.Workload == "udp_stream" && sc.Counters[p+"udp_in"] == 0 {
					t.Errorf("%s: %sudp_in is 0: its flow never arrived", name, p)
				}
			}
		}
		if r.Workload == "udp_rr" {
			if n := sc.Extra["latency_samples"]; n < 1 || n > float64(sc.Counters["total"]+2*uint64(r.Queues)) {
				// A flow's round trip completing as the window opens or
				// closes may be timed and not counted: one per flow and edge.
				t.Errorf("%s: %v round-trip times for %d transactions", name, n, sc.Counters["total"])
			}
		}
	}
	if !strings.Contains(progress.String(), "udp_stream napi    64B q2 1/1") {
		t.Errorf("progress lines do not name the queues:\n%s", progress.String())
	}
	var b strings.Builder
	FormatUDP(&b, rs)
	t.Log("\n" + b.String())
	if !strings.Contains(b.String(), "per shard") || !strings.Contains(b.String(), "[1] rx") {
		t.Errorf("no per-shard lines:\n%s", b.String())
	}
}

// Validate refuses no queues and more than the ports can have, naming the
// flag and the range.
func TestUDPValidateRefusesQueuesOutOfRange(t *testing.T) {
	cfg := UDPConfig{Sizes: []int{64}, Modes: []Mode{ModePMD}, Duration: time.Second, Queues: 1,
		ClientCore: engine.AnyCore, ServerCore: engine.AnyCore}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("one queue: %v", err)
	}
	for _, q := range []int{0, -1, MaxQueues + 1} {
		cfg.Queues = q
		err := cfg.Validate()
		var fe *FlagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), fmt.Sprintf("--queues %d", q)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("%d..%d", MinQueues, MaxQueues)) {
			t.Errorf("%d queues: %v", q, err)
		}
	}
	// Several queues leave every shard unpinned, so one core for both
	// stacks is no conflict there.
	cores, err := engine.Cores()
	if err != nil || len(cores) == 0 {
		return
	}
	cfg.Queues, cfg.ClientCore, cfg.ServerCore = 2, cores[0], cores[0]
	if err := cfg.Validate(); err != nil {
		t.Errorf("two queues, both stacks asked on core %d: %v", cores[0], err)
	}
	cfg.Queues = 1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--fwd-core") {
		t.Errorf("one queue, both stacks pinned to core %d in pmd mode: %v", cores[0], err)
	}
}

// The applications' buffers come from the pools at the sizes asked for and
// go back when the run is over.
func TestUDPAppBuffers(t *testing.T) {
	const flows = 2
	a := newUDPApp("udp_stream", 1400, &udpRig{cs: make([]*stack.UDPConn, flows), ss: make([]*stack.UDPConn, flows)})
	if len(a.flows) != flows {
		t.Fatalf("%d flows, want %d", len(a.flows), flows)
	}
	for _, f := range a.flows {
		if len(f.payload) != 1400 || len(f.bufs[udpBatch-1]) != 1400 || len(f.reply) != udpReadBuf || len(f.serverBuf) != udpReadBuf {
			t.Fatalf("buffer sizes %d %d %d %d", len(f.payload), len(f.bufs[udpBatch-1]), len(f.reply), len(f.serverBuf))
		}
		for _, b := range f.bufs {
			for _, c := range b {
				if c != 0 {
					t.Fatal("a pooled payload was not cleared")
				}
			}
		}
	}
	if len(a.pooled) != flows*(udpBatch+3) {
		t.Errorf("%d buffers from the pools, want %d", len(a.pooled), flows*(udpBatch+3))
	}
	a.release()
	if a.pooled != nil || a.flows[0].payload != nil || a.flows[1].serverBuf != nil {
		t.Error("release kept the buffers")
	}
}

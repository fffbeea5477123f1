package bench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
)

// TestRunUDP runs both workloads in both modes briefly, two independent
// runs each; each must complete transactions or deliver datagrams, carry
// one sample per run and the knobs every path carries, and the stacks must
// close clean (every mbuf back in its pool).
func TestRunUDP(t *testing.T) {
	var progress strings.Builder
	cfg := UDPConfig{Sizes: []int{16, 3000}, Modes: []Mode{ModePMD, ModeNAPI}, Duration: 200 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Repeat: 2, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore, Progress: &progress}
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
			n := sc.Extra["latency_samples"]
			if sc.Extra["latency_p50_ns"] <= 0 || n < 1 || n > float64(sc.Counters["total"]) {
				t.Errorf("%s: %v round-trip times for %d measured transactions, p50 %v", name, n, sc.Counters["total"], sc.Extra["latency_p50_ns"])
			}
		}
		if r.Mode == ModeNAPI && sc.Counters["parks"] == 0 {
			t.Errorf("napi %s: applications never parked", r.Workload)
		}
	}
	// The runs interleave: pmd 1/2, napi 1/2, pmd 2/2, napi 2/2.
	out := progress.String()
	last := -1
	for _, label := range []string{"udp_rr     pmd     16B 1/2", "udp_rr     napi    16B 1/2", "udp_rr     pmd     16B 2/2", "udp_rr     napi    16B 2/2"} {
		i := strings.Index(out, label)
		if i < 0 || i < last {
			t.Fatalf("run %q missing or out of order (at %d, previous at %d):\n%s", label, i, last, out)
		}
		last = i
	}
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

// The applications' buffers come from the pools at the sizes asked for and
// go back when the run is over.
func TestUDPAppBuffers(t *testing.T) {
	a := newUDPApp("udp_stream", 1400, &udpRig{})
	if len(a.payload) != 1400 || len(a.bufs[udpBatch-1]) != 1400 || len(a.reply) != udpReadBuf || len(a.serverBuf) != udpReadBuf {
		t.Fatalf("buffer sizes %d %d %d %d", len(a.payload), len(a.bufs[udpBatch-1]), len(a.reply), len(a.serverBuf))
	}
	if len(a.pooled) != udpBatch+3 {
		t.Errorf("%d buffers from the pools, want %d", len(a.pooled), udpBatch+3)
	}
	for _, b := range a.bufs {
		for _, c := range b {
			if c != 0 {
				t.Fatal("a pooled payload was not cleared")
			}
		}
	}
	a.release()
	if a.pooled != nil || a.payload != nil {
		t.Error("release kept the buffers")
	}
}

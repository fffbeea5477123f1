package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

// TestRunUDP runs both workloads in both modes briefly; each must complete
// transactions or deliver datagrams, and the stacks must close clean (every
// mbuf back in its pool).
func TestRunUDP(t *testing.T) {
	cfg := UDPConfig{Sizes: []int{16, 3000}, Modes: []Mode{ModePMD, ModeNAPI}, Duration: 300 * time.Millisecond,
		Warmup: 50 * time.Millisecond, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore}
	rs, err := RunUDP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 8 {
		t.Fatalf("%d results, want 8", len(rs))
	}
	for _, r := range rs {
		sc := r.Scenario
		if sc.Median <= 0 || sc.Counters["total"] == 0 {
			t.Errorf("%s %s %d: median %v, total %d", r.Workload, r.Mode, r.Size, sc.Median, sc.Counters["total"])
		}
		if r.Workload == "udp_rr" && sc.Extra["latency_p50_ns"] <= 0 {
			t.Errorf("%s %s %d: no round-trip times", r.Workload, r.Mode, r.Size)
		}
		if r.Mode == ModeNAPI && sc.Counters["parks"] == 0 {
			t.Errorf("napi %s: applications never parked", r.Workload)
		}
	}
	var b strings.Builder
	FormatUDP(&b, rs)
	if !strings.Contains(b.String(), "pmd/napi udp_rr at 16 B") {
		t.Fatalf("no ratios:\n%s", b.String())
	}
	bad := cfg
	bad.Sizes = []int{8}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Fatalf("8-byte payload: %v", err)
	}
}

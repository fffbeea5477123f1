//go:build dpdk

package bench

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/dpdk"
)

// startEAL starts this test process's one EAL, the bench's own, or skips.
func startEAL(t *testing.T) {
	t.Helper()
	if err := dpdk.InitEAL(benchEAL); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("the EAL did not start: %v (not root: run as root)", err)
		}
		t.Fatal(err)
	}
}

// A short run of `pps --port dpdk`: pollnet forwards on a pmd/dpdk port on
// net_null, dpdk-testpmd on net_null in the same run, and both scenarios
// carry the DPDK port kind, their rates and their counters.
func TestPPSOnADPDKPortRunsBesideTestpmd(t *testing.T) {
	startEAL(t)
	cfg := NullConfig{Sizes: []int{64}, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Repeat: 1,
		Core: DefaultNullCore(), Modes: []Mode{ModePMD}, Port: PortDPDK}
	rs, err := RunNull(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results", len(rs))
	}
	pn, tp := rs[0].Pollnet, rs[0].Testpmd
	if pn.Name != "pps" || pn.Path != "pollnet-pmd" || pn.Port != PortDPDK || pn.Skipped != "" {
		t.Fatalf("pollnet %s %s %s skipped %q", pn.Name, pn.Path, pn.Port, pn.Skipped)
	}
	if pn.Repeat != 1 || len(pn.Samples) != 1 || pn.Median <= 0 || pn.Counters["rx_packets"] == 0 ||
		pn.Extra["ns_per_packet"] <= 0 || pn.Knobs["device"] != dpdkDevice || pn.Knobs["size"] != 64 {
		t.Errorf("pollnet %+v", pn)
	}
	// Every frame received was sent back: rx and tx agree to within what
	// was forwarded between the two counters' reads (a DPDK port's RxStats
	// reads the device's counters too, a cgo call, while the worker runs).
	if rx, tx := pn.Counters["rx_packets"], pn.Counters["tx_packets"]; tx+64*engine.Burst < rx || rx+64*engine.Burst < tx {
		t.Errorf("rx %d tx %d", rx, tx)
	}
	if tp.Path != testpmd.Path || tp.Port != PortDPDK || tp.Knobs["vdev"] != "net_null0,size=64,copy=0" {
		t.Errorf("testpmd %s %s knobs %v", tp.Path, tp.Port, tp.Knobs)
	}
	if m := (&testpmd.Peer{}).Missing(); m != "" {
		if tp.Skipped == "" {
			t.Errorf("testpmd is missing (%s) but its scenario is not skipped", m)
		}
		t.Logf("testpmd not compared: %s", m)
	} else if tp.Skipped != "" || tp.Repeat != 1 || tp.Median <= 0 || tp.Counters["rx_packets"] == 0 {
		t.Errorf("testpmd %+v", tp)
	}
	var b strings.Builder
	FormatNull(&b, rs)
	if !strings.Contains(b.String(), "pollnet-pmd") || !strings.Contains(b.String(), "dpdk-testpmd") {
		t.Errorf("table:\n%s", b.String())
	}
	// The vdev went with the port: the next run probes it afresh.
	if _, err := RunNull(NullConfig{Sizes: []int{128}, Copy: true, Duration: 100 * time.Millisecond, Repeat: 1,
		Core: cfg.Core, Modes: []Mode{ModePMD}, Port: PortDPDK, Testpmd: &testpmd.Peer{Binary: "/nonexistent/dpdk-testpmd"}}); err != nil {
		t.Errorf("a second run: %v", err)
	}
}

// --port dpdk turns the pps scenario into pps-dpdk and adds it to the quick
// suite beside pps-null.
func TestPlanDPDK(t *testing.T) {
	o := Options{Sizes: []int{64}, Modes: []Mode{ModePMD}, Queues: 1, Duration: time.Second, Repeat: 3,
		RingSize: 1024, GenCore: engine.AnyCore, FwdCore: engine.AnyCore, Port: PortDPDK}
	names := func(js []Job) []string {
		var n []string
		for _, j := range js {
			n = append(n, j.Name)
		}
		return n
	}
	js, err := Plan("pps", o)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(js); len(n) != 1 || n[0] != "pps-dpdk" {
		t.Errorf("pps --port dpdk: %v", n)
	}
	js, err = Plan("quick", o)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(js); !slices.Contains(n, "pps-null") || !slices.Contains(n, "pps-dpdk") {
		t.Errorf("quick --port dpdk: %v", n)
	}
	if p, err := ParsePort("dpdk"); p != PortDPDK || err != nil {
		t.Errorf("ParsePort(dpdk) = %q, %v", p, err)
	}
}

package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/internal/result"
)

func smokeVeth(t *testing.T, port string) VethResult {
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	gen, fwd := DefaultCores()
	cfg := VethConfig{Port: port, Sizes: []int{64}, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Repeat: 1, GenCore: gen, FwdCore: fwd}
	rs, err := RunVeth(cfg)
	if err != nil {
		if strings.Contains(err.Error(), "veth") && strings.Contains(err.Error(), "not supported") {
			t.Skipf("no veth links here: %v", err)
		}
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1", len(rs))
	}
	r := rs[0]
	var out bytes.Buffer
	FormatVeth(&out, rs)
	t.Log("\n" + out.String())
	pn, tp := r.Pollnet, r.Testpmd
	if pn.Name != "pps" || pn.Port != port || pn.Path != "pollnet-pmd" || tp.Path != "dpdk-testpmd" || tp.Port != port {
		t.Fatalf("scenario names: %s/%s/%s and %s/%s", pn.Name, pn.Port, pn.Path, tp.Port, tp.Path)
	}
	if pn.Skipped != "" || len(pn.Samples) != 1 || pn.Median <= 0 {
		t.Errorf("pollnet path: skipped %q, samples %v", pn.Skipped, pn.Samples)
	}
	if pn.DUTBusy == nil || *pn.DUTBusy <= 0 || pn.Extra["dut_cpu_ns_per_packet"] <= 0 || pn.Counters["dut_rx_packets"] == 0 {
		t.Errorf("pollnet path lacks dut_busy, CPU per packet or the DUT's count: %+v %v", pn.Extra, pn.Counters)
	}
	if _, ok := pn.Extra["dut_input_loss"]; !ok {
		t.Errorf("pollnet path lacks dut_input_loss: %v", pn.Extra)
	}
	if tp.Skipped == "" {
		if tp.Median <= 0 || tp.Extra["dut_cpu_ns_per_packet"] <= 0 || tp.DUTBusy == nil {
			t.Errorf("testpmd path ran but lacks figures: median %v extra %v busy %v", tp.Median, tp.Extra, tp.DUTBusy)
		}
		if pn.Extra["ratio_vs_testpmd"] <= 0 || !strings.Contains(out.String(), "pollnet/testpmd on "+port) {
			t.Errorf("no ratio printed or recorded:\n%s", out.String())
		}
	} else {
		t.Logf("testpmd skipped: %s", tp.Skipped)
	}
	for _, sc := range []any{pn, tp} {
		if _, err := json.Marshal(sc); err != nil {
			t.Errorf("result does not encode: %v", err)
		}
	}
	return r
}

func TestPPSOnAVethPairRunsPollnetAndTestpmdOnAFPacket(t *testing.T) {
	if r := smokeVeth(t, PortAFPacket); r.Pollnet.Knobs["link"] != "veth" {
		t.Errorf("link knob %v, want veth", r.Pollnet.Knobs["link"])
	}
}

func TestPPSOnAVethPairRunsPollnetAndTestpmdOnAFXDP(t *testing.T) { smokeVeth(t, PortAFXDP) }

func TestVethValidateRefusesOtherPortsAndJumboFrames(t *testing.T) {
	for _, port := range []string{PortAFPacket, PortAFXDP, PortTAP} {
		if p, err := ParsePort(port); err != nil || p != port {
			t.Errorf("ParsePort(%q) = %q, %v", port, p, err)
		}
		ok := VethConfig{Port: port, Sizes: []int{64}, Duration: time.Second, Repeat: 1, GenCore: -1, FwdCore: -1}
		if err := ok.Validate(); err != nil {
			t.Errorf("%s: %v", port, err)
		}
	}
	for _, c := range []VethConfig{
		{Port: "null", Sizes: []int{64}, Duration: time.Second, Repeat: 1, GenCore: -1, FwdCore: -1},
		{Port: PortAFXDP, Sizes: []int{9000}, Duration: time.Second, Repeat: 1, GenCore: -1, FwdCore: -1},
		{Port: PortAFXDP, Sizes: []int{64}, Duration: time.Second, Repeat: 0, GenCore: -1, FwdCore: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestVethVerdictNamesWhichSideSetEachRate(t *testing.T) {
	sc := func(loss, b float64) result.Scenario {
		return result.Scenario{Extra: map[string]float64{"dut_input_loss": loss}, DUTBusy: &b}
	}
	for _, c := range []struct {
		a, b result.Scenario
		want string
	}{
		{sc(0.30, 0.01), sc(0.05, 0.02), "both device sides"},
		{sc(0, 0.95), sc(0, 0.97), "both device sides"},
		{sc(0.01, 0.2), sc(0.005, 0.3), "the generator set both"},
		{sc(0.30, 0.01), sc(0.001, 0.2), "upper bound"},
		{sc(0.001, 0.2), sc(0.30, 0.01), "lower bound"},
	} {
		if got := vethVerdict(c.a, c.b); !strings.Contains(got, c.want) {
			t.Errorf("loss %v/%v busy %v/%v: %q, want %q", c.a.Extra, c.b.Extra, *c.a.DUTBusy, *c.b.DUTBusy, got, c.want)
		}
	}
}

func TestPPSOnATAPRunsPollnetOnPmdTapAndTestpmdOnNetTap(t *testing.T) {
	r := smokeVeth(t, PortTAP)
	pn, tp := r.Pollnet, r.Testpmd
	if pn.Knobs["link"] != "tap" || tp.Knobs["link"] != "tap" {
		t.Errorf("link knobs %v and %v, want tap", pn.Knobs["link"], tp.Knobs["link"])
	}
	// testpmd's port must answer to the MAC the generator addresses, the
	// one the TAP's kernel side has.
	if v, _ := tp.Knobs["vdev"].(string); v != "net_tap0,iface=pn-dut,mac=02:70:6e:00:00:01" {
		t.Errorf("testpmd's vdev %q", v)
	}
	if tp.Skipped == "" && tp.Counters["dut_rx_packets"] == 0 {
		t.Errorf("testpmd's port counted nothing received: %v", tp.Counters)
	}
}

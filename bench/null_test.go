package bench

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/null"
)

func TestMacswapSwapsTheAddresses(t *testing.T) {
	pool, err := engine.NewPool("macswap", 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var cs engine.Caches
	defer cs.Close()
	frame := []byte{1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 0x08, 0x00, 0xee}
	short := []byte{1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15}
	var ms []engine.Mbuf
	for _, b := range [][]byte{frame, short} {
		m, err := cs.Alloc(pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.AppendBytes(m, pool, b); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	macswap(ms)
	if got, want := ms[0].Data(), []byte{11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 0x08, 0x00, 0xee}; !bytes.Equal(got, want) {
		t.Errorf("swapped % x, want % x", got, want)
	}
	if !bytes.Equal(ms[1].Data(), short) {
		t.Errorf("a frame shorter than two addresses was changed: % x", ms[1].Data())
	}
	macswap(ms)
	if !bytes.Equal(ms[0].Data(), frame) {
		t.Errorf("swapped twice % x, want the frame back", ms[0].Data())
	}
	cs.FreeBulk(ms)
}

func testNullConfig() NullConfig {
	return NullConfig{Sizes: []int{64}, Duration: 150 * time.Millisecond, Repeat: 2, Core: engine.AnyCore,
		Modes: []Mode{ModePMD, ModeNAPI}, Testpmd: &testpmd.Peer{Binary: "/nonexistent/dpdk-testpmd"}}
}

func TestNullValidateNamesTheFlag(t *testing.T) {
	for _, c := range []struct {
		mod  func(*NullConfig)
		flag string
	}{
		{func(c *NullConfig) { c.Sizes = []int{null.MinSize - 1} }, "--size"},
		{func(c *NullConfig) { c.Sizes = []int{null.MaxSize + 1} }, "--size"},
		{func(c *NullConfig) { c.Sizes = nil }, "--size"},
		{func(c *NullConfig) { c.Repeat = 0 }, "--repeat"},
		{func(c *NullConfig) { c.Duration = time.Millisecond }, "--duration"},
		{func(c *NullConfig) { c.Warmup = -time.Second }, "--warmup"},
		{func(c *NullConfig) { c.Core = 4096 }, "--fwd-core"},
		{func(c *NullConfig) { c.Modes = nil }, "--mode"},
	} {
		cfg := testNullConfig()
		c.mod(&cfg)
		var fe *FlagError
		if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("want a FlagError naming %s, got %v", c.flag, err)
		}
	}
	if _, err := ParsePort("nic"); err == nil || !strings.Contains(err.Error(), "--port") {
		t.Errorf("--port nic: %v", err)
	}
}

// Without testpmd the pollnet runs still happen; the peer and NAPI are
// skipped with their reasons, and every scenario carries its provenance.
func TestRunNullWithoutTestpmd(t *testing.T) {
	cfg := testNullConfig()
	cfg.Copy = true
	rs, err := RunNull(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results", len(rs))
	}
	r := rs[0]
	pn := r.Pollnet
	if pn.Skipped != "" || len(pn.Samples) != 2 || pn.Repeat != 2 || pn.Median <= 0 || pn.Counters["rx_packets"] == 0 {
		t.Fatalf("pollnet %+v", pn)
	}
	if pn.Name != "pps" || pn.Path != "pollnet-pmd" || pn.Port != "null" || pn.Metric != "rx_pps" ||
		pn.Knobs["fwd"] != "macswap" || pn.Knobs["copy"] != true || pn.Knobs["size"] != 64 {
		t.Errorf("pollnet names %s %s %s %s %v", pn.Name, pn.Path, pn.Port, pn.Metric, pn.Knobs)
	}
	if pn.Roles["dut"] != engine.AnyCore || pn.GOMAXPROCS < 2 || pn.DUTBusy == nil || pn.Extra["ns_per_packet"] <= 0 {
		t.Errorf("pollnet provenance roles %v gomaxprocs %d busy %v extra %v", pn.Roles, pn.GOMAXPROCS, pn.DUTBusy, pn.Extra)
	}
	// The port copied every frame in and out, and the worker forwarded
	// whole bursts: received and sent agree to within what was in flight
	// when the window closed.
	if rx, tx := pn.Counters["rx_packets"], pn.Counters["tx_packets"]; tx+4*engine.Burst < rx || rx+4*engine.Burst < tx {
		t.Errorf("rx %d tx %d", rx, tx)
	}
	tp := r.Testpmd
	if tp.Path != "dpdk-testpmd" || !strings.Contains(tp.Skipped, "not installed") || len(tp.Samples) != 0 ||
		tp.Knobs["vdev"] != "net_null0,size=64,copy=1" {
		t.Errorf("testpmd %+v", tp)
	}
	if r.NAPI == nil || r.NAPI.Path != "pollnet-napi" || !strings.Contains(r.NAPI.Skipped, "interrupts") {
		t.Errorf("napi %+v", r.NAPI)
	}
	var b strings.Builder
	FormatNull(&b, rs)
	if !strings.Contains(b.String(), "pollnet-pmd") || !strings.Contains(b.String(), "skipped: dpdk-testpmd not installed") {
		t.Errorf("table:\n%s", b.String())
	}
}

// The quick suite runs the null port beside the wire; --port null turns
// the pps scenario into it.
func TestPlanNull(t *testing.T) {
	o := Options{Sizes: []int{64, 128}, Modes: []Mode{ModePMD}, Queues: 1, Duration: time.Second, Repeat: 3,
		RingSize: 1024, GenCore: engine.AnyCore, FwdCore: engine.AnyCore}
	names := func(js []Job) []string {
		var n []string
		for _, j := range js {
			n = append(n, j.Name)
		}
		return n
	}
	js, err := Plan("quick", o)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(js); !slices.Contains(n, "pps-null") || !slices.Contains(n, "zero_loss") {
		t.Errorf("quick: %v", n)
	}
	o.Port = PortNull
	js, err = Plan("pps", o)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(js); len(n) != 1 || n[0] != "pps-null" {
		t.Errorf("pps --port null: %v", n)
	}
	o.SizesSet, o.Sizes = true, []int{9000}
	if _, err := Plan("pps", o); err == nil || !strings.Contains(err.Error(), "--size 9000") {
		t.Errorf("pps --port null --size 9000: %v", err)
	}
}

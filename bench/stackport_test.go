package bench

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
)

func TestUDPAndTCPRefusePortsThatCarryNoTrafficBetweenTwoStacks(t *testing.T) {
	for _, c := range []struct{ kind, why string }{
		{PortNull, "a null port carries no traffic between two stacks"},
		{PortDPDK, "net_null"},
		{"tap", "kernel's stack"},
		{"nic", "no port kind"},
	} {
		for _, scenario := range []string{"udp", "tcp", "tcp_stream", "tcp_crr"} {
			o := Options{Modes: []Mode{ModePMD, ModeNAPI}, Queues: 1, Duration: time.Second, GenCore: engine.AnyCore,
				FwdCore: engine.AnyCore, Port: c.kind, Peers: "none", PeersSet: true}
			_, err := Plan(scenario, o)
			var fe *FlagError
			if !errors.As(err, &fe) {
				t.Fatalf("%s --port %s: %v, want a flag error", scenario, c.kind, err)
			}
			for _, want := range []string{"--port " + c.kind, stackPortKinds, c.why} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s --port %s: %q does not say %q", scenario, c.kind, err, want)
				}
			}
		}
	}
}

func TestUDPOnAVethRefusesMoreThanOneQueue(t *testing.T) {
	c := UDPConfig{Sizes: []int{64}, Modes: []Mode{ModePMD}, Duration: time.Second, Queues: 2, ClientCore: engine.AnyCore,
		ServerCore: engine.AnyCore, Port: PortAFXDP}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--queues 2") {
		t.Fatalf("got %v, want --queues refused", err)
	}
}

func TestASuiteRunsUDPAndTCPOnThePortOnlyWhenTheyTakeIt(t *testing.T) {
	for _, c := range []struct {
		port, want string
		noted      bool
	}{
		{PortAFPacket, PortAFPacket, false},
		{PortAFXDP, PortAFXDP, false},
		{PortWire, PortWire, false},
		{PortNull, PortWire, true},
		{PortDPDK, PortWire, true},
	} {
		o := Options{Port: c.port}
		got, note := o.stackPort("udp", true)
		if got != c.want || (note != "") != c.noted {
			t.Errorf("suite --port %s: udp on %q, note %q; want %q, noted %v", c.port, got, note, c.want, c.noted)
		}
		if c.noted && !strings.Contains(note, "--port "+c.port) {
			t.Errorf("note %q does not name the port", note)
		}
		// Alone, the scenario takes the kind as given, for Validate.
		if got, note := o.stackPort("udp", false); got != c.port || note != "" {
			t.Errorf("udp alone --port %s: %q, %q", c.port, got, note)
		}
	}
	var b strings.Builder
	withNote("udp ran on the wire pair", func(w io.Writer) { fmt.Fprint(w, "table\n") })(&b)
	if b.String() != "udp ran on the wire pair\ntable\n" {
		t.Errorf("noted table %q", b.String())
	}
	// A suite plans udp and tcp whatever the port, on it or beside it.
	for _, port := range []string{PortNull, PortAFXDP} {
		o := Options{Modes: []Mode{ModePMD, ModeNAPI}, Queues: 1, Warmup: 500 * time.Millisecond, RingSize: 1024,
			GenCore: -1, FwdCore: -1, Port: port}
		jobs, err := Plan("full", o)
		if err != nil {
			t.Fatalf("full suite with --port %s: %v", port, err)
		}
		var names []string
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		if !strings.Contains(strings.Join(names, ","), "udp,tcp") {
			t.Errorf("full suite with --port %s runs %v", port, names)
		}
	}
}

// vethUsable skips where a stack link of kind cannot be made.
func vethUsable(t *testing.T, kind string) {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("skipping: no ethtool, which turns the veth's offloads off: apt-get install ethtool")
	}
	if kind == PortAFXDP {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Skipf("skipping: this kernel has no AF_XDP sockets: %v", err)
		}
		unix.Close(fd)
	}
}

// vethDuration is each smoke run's window: short, but long enough that a
// run starved by other tests on a crowded machine still moves something.
func vethDuration() time.Duration { return 300 * time.Millisecond }

func TestBenchUDPRunsBothStacksOnAVethPort(t *testing.T) {
	for _, kind := range []string{PortAFPacket, PortAFXDP} {
		t.Run(kind, func(t *testing.T) {
			vethUsable(t, kind)
			var progress strings.Builder
			rs, err := RunUDP(UDPConfig{Sizes: []int{64}, Modes: []Mode{ModePMD, ModeNAPI}, Duration: vethDuration(),
				Warmup: 50 * time.Millisecond, Repeat: 1, Queues: 1, ClientCore: engine.AnyCore, ServerCore: engine.AnyCore,
				Port: kind, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 4 {
				t.Fatalf("%d results, want udp_rr and udp_stream in two modes", len(rs))
			}
			for _, r := range rs {
				sc := r.Scenario
				name := fmt.Sprintf("%s %s", r.Workload, r.Mode)
				t.Logf("%s on %s: %.0f %s, cpu %.0f ns/op, client rx %d tx %d, server rx %d tx %d", name, kind, sc.Median, sc.Unit,
					sc.Extra["cpu_ns_per_op"], sc.Counters["client_shard0_rx_frames"], sc.Counters["client_shard0_tx_frames"],
					sc.Counters["server_shard0_rx_frames"], sc.Counters["server_shard0_tx_frames"])
				if sc.Median <= 0 || sc.Counters["total"] == 0 {
					t.Errorf("%s: median %v total %d", name, sc.Median, sc.Counters["total"])
				}
				if sc.Port != kind || sc.Knobs["link"] != "veth" || sc.Knobs["csum_offload"] != false || sc.Knobs["mtu"] != 1500 {
					t.Errorf("%s: port %q knobs %v; want %s, link veth, no checksum offload, mtu 1500", name, sc.Port, sc.Knobs, kind)
				}
				// Both stacks saw the traffic: the server received and the
				// client sent; in udp_rr each also answered.
				c := sc.Counters
				if c["server_shard0_rx_frames"] == 0 || c["client_shard0_tx_frames"] == 0 || c["server_shard0_udp_in"] == 0 {
					t.Errorf("%s: counters %v", name, c)
				}
				if r.Workload == "udp_rr" && (c["client_shard0_rx_frames"] == 0 || c["server_shard0_tx_frames"] == 0) {
					t.Errorf("%s: no answers: counters %v", name, c)
				}
			}
			var out strings.Builder
			FormatUDP(&out, rs)
			t.Logf("\n%s", out.String())
		})
	}
}

func TestBenchTCPRunsBothStacksOnAVethPort(t *testing.T) {
	for _, kind := range []string{PortAFPacket, PortAFXDP} {
		t.Run(kind, func(t *testing.T) {
			vethUsable(t, kind)
			mtus := []int{1500}
			if kind == PortAFXDP {
				mtus = append(mtus, 9000) // more than a UMEM frame holds: skipped
			}
			var progress strings.Builder
			scs, err := RunTCP(TCPConfig{Workloads: []string{TCPStream, TCPCRR}, MTUs: mtus, Streams: []int{1},
				Modes: []Mode{ModePMD, ModeNAPI}, Duration: vethDuration(), Warmup: 50 * time.Millisecond, Repeat: 1,
				ClientCore: engine.AnyCore, ServerCore: engine.AnyCore, Port: kind, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if len(scs) != 4*len(mtus) {
				t.Fatalf("%d scenarios, want %d", len(scs), 4*len(mtus))
			}
			for _, sc := range scs {
				name := fmt.Sprintf("%s %s mtu %v", sc.Name, sc.Path, sc.Knobs["mtu"])
				if sc.Port != kind || sc.Knobs["link"] != "veth" || sc.Knobs["csum_offload"] != false {
					t.Errorf("%s: port %q knobs %v", name, sc.Port, sc.Knobs)
				}
				if sc.Knobs["mtu"] == 9000 {
					if !strings.Contains(sc.Skipped, "UMEM") || sc.Samples != nil {
						t.Errorf("%s: skipped %q samples %v; want skipped for the UMEM frame", name, sc.Skipped, sc.Samples)
					}
					continue
				}
				c := sc.Counters
				t.Logf("%s on %s: %.4g %s, client InSegs %d OutSegs %d, server InSegs %d OutSegs %d, retrans %d", name, kind,
					sc.Median, sc.Unit, c["client_InSegs"], c["client_OutSegs"], c["server_InSegs"], c["server_OutSegs"],
					c["client_RetransSegs"]+c["server_RetransSegs"])
				if sc.Skipped != "" || sc.Median <= 0 {
					t.Errorf("%s: skipped %q median %v", name, sc.Skipped, sc.Median)
				}
				if c["client_InSegs"] == 0 || c["server_InSegs"] == 0 || c["client_OutSegs"] == 0 || c["server_OutSegs"] == 0 {
					t.Errorf("%s: a stack saw no segments: %v", name, c)
				}
			}
			var out strings.Builder
			FormatTCP(&out, scs)
			t.Logf("\n%s", out.String())
		})
	}
}

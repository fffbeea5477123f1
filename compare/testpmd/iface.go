package testpmd

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Forwarding on one kernel interface: the peer of pollnet's pps scenario on
// an AF_PACKET, AF_XDP or TAP port. testpmd drives the interface through
// net_af_packet, net_af_xdp or net_tap, one queue pair, one forwarding lcore that
// receives a burst, swaps the MACs and sends it back out of the same port.
// The launch is measured as ForwardNull's is; with --record-burst-stats the
// forwarding totals also say what share of the lcore's receive polls came
// back empty, the figure pollnet reports as dut_busy.

// The interface PMDs.
const (
	VdevAFPacket = "net_af_packet"
	VdevAFXDP    = "net_af_xdp"
	// VdevTAP attaches to the TAP of that name, or makes it. A TAP made
	// beforehand must be a multi-queue one (ip tuntap ... multi_queue):
	// net_tap opens it with IFF_MULTI_QUEUE, which the kernel wants to
	// match the TAP's.
	VdevTAP = "net_tap"
)

// IfaceForward is one launch forwarding on one interface.
type IfaceForward struct {
	Vdev     string        // VdevAFPacket, VdevAFXDP or VdevTAP
	Iface    string        // the interface, in the namespace testpmd starts in
	Size     int           // frame bytes without FCS, for the record (the generator sets it)
	Warmup   time.Duration // forwarding before the first statistics request
	Duration time.Duration // measured time; at least MinIntervals intervals
	// MAC is net_tap's address (VdevTAP only). net_tap gives it to the
	// TAP's kernel side too, so the MAC the kernel side already has keeps
	// that side unchanged under a sender opened before testpmd. Zero lets
	// net_tap pick a random one.
	MAC [6]byte
}

// IfaceRate is what one launch measured.
type IfaceRate struct {
	NullRate
	// First and Last are when the window's first and last statistics
	// prints were read: a meter outside testpmd measures over the same
	// span.
	First, Last time.Time
	// RxEmptyShare is the share of receive bursts that returned nothing,
	// over the whole forwarding run; -1 when testpmd did not print it.
	RxEmptyShare float64
}

// IfaceVdev is the --vdev argument of the launch.
func IfaceVdev(f IfaceForward) (string, error) {
	if f.Iface == "" || strings.ContainsAny(f.Iface, ", \t\n=") {
		return "", fmt.Errorf("testpmd: interface name %q", f.Iface)
	}
	switch f.Vdev {
	case VdevAFPacket:
		// qdisc_bypass as pollnet's port (PACKET_QDISC_BYPASS).
		return fmt.Sprintf("net_af_packet0,iface=%s,qpairs=1,qdisc_bypass=1", f.Iface), nil
	case VdevAFXDP:
		// Copy mode, queue 0: what veth offers, and what pollnet's port binds.
		return fmt.Sprintf("net_af_xdp0,iface=%s,start_queue=0,queue_count=1,force_copy=1", f.Iface), nil
	case VdevTAP:
		v := "net_tap0,iface=" + f.Iface
		if f.MAC != ([6]byte{}) {
			if f.MAC[0]&1 != 0 {
				return "", fmt.Errorf("testpmd: net_tap MAC %x is a multicast address", f.MAC)
			}
			m := f.MAC
			v += fmt.Sprintf(",mac=%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
		}
		return v, nil
	}
	return "", fmt.Errorf("testpmd: interface PMD %q unknown (use %s, %s or %s)", f.Vdev, VdevAFPacket, VdevAFXDP, VdevTAP)
}

func (p *Peer) ifaceApp() []string {
	return []string{"-i", "--auto-start", "--forward-mode=" + ModeMacswap, "--nb-cores=1",
		"--rxq=1", "--txq=1", "--burst=32", "--record-burst-stats", "--total-num-mbufs=" + strconv.Itoa(p.mbufs())}
}

// IfaceKnobs are the launch's settings, for a result file.
func (p *Peer) IfaceKnobs(f IfaceForward) map[string]any {
	v, _ := IfaceVdev(f)
	nf := NullForward{Duration: f.Duration}
	return map[string]any{
		"size": f.Size, "fwd": ModeMacswap, "vdev": v, "ports": 1, "fwd_cores": 1, "lcores": p.lcores(),
		"no_huge": true, "memory_mb": p.memory(), "mbufs": p.mbufs(), "burst": 32,
		"intervals": nf.intervals(), "interval_s": Interval.Seconds(), "args": strings.Join(p.ifaceApp(), " "),
	}
}

// ForwardIface launches testpmd once on the interface, in the calling
// thread's network namespace (run it from a thread locked into the
// namespace), and measures its rate after the warm-up.
func (p *Peer) ForwardIface(ctx context.Context, f IfaceForward) (IfaceRate, error) {
	v, err := IfaceVdev(f)
	if err != nil {
		return IfaceRate{RxEmptyShare: -1}, err
	}
	var mu sync.Mutex
	empty := -1.0
	onLine := func(l string) {
		if s, ok := parseEmptyBursts(l); ok {
			mu.Lock()
			empty = s
			mu.Unlock()
		}
	}
	nf := NullForward{Size: max(f.Size, 1), Mode: ModeMacswap, Warmup: f.Warmup, Duration: f.Duration}
	r, o, err := p.forward(ctx, nf, []string{v}, p.ifaceApp(), onLine)
	mu.Lock()
	out := IfaceRate{NullRate: r, RxEmptyShare: empty}
	mu.Unlock()
	if o != nil && len(o.Shows) > 0 {
		out.First, out.Last = o.Shows[0].At, o.Shows[len(o.Shows)-1].At
	}
	return out, err
}

// rxBursts matches testpmd's burst statistics line, whose first entry is
// always the share of empty bursts: "RX-bursts : 123 [45% of 0 pkts + ...".
var rxBursts = regexp.MustCompile(`RX-bursts\s*:\s*(\d+)\s*\[\s*(\d+)% of 0 pkts`)

// parseEmptyBursts reads the share of empty receive bursts from a line.
func parseEmptyBursts(l string) (float64, bool) {
	m := rxBursts.FindStringSubmatch(l)
	if m == nil {
		return 0, false
	}
	n, err1 := strconv.ParseUint(m[1], 10, 64)
	pc, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil || n == 0 || pc > 100 {
		return 0, false
	}
	return float64(pc) / 100, true
}

package bench

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/afpacket"
	"github.com/pollnet/pollnet/pmd/afxdp"
	"github.com/pollnet/pollnet/pmd/wire"
)

// The udp and tcp scenarios run two pollnet stacks that talk to each other
// over a link: by default the in-memory wire pair, with --port afpacket or
// afxdp a veth pair in a namespace the run makes and deletes, each stack on
// a port of that kind at one end. Nothing else is on the veth: both ends
// are in the namespace with no address and IPv6 off, so its kernel answers
// nothing, and its forwarding is off.

// stackPortKinds names the kinds the udp and tcp scenarios take.
const stackPortKinds = "wire (the default), afpacket or afxdp"

// checkStackPort refuses a port kind the udp and tcp scenarios cannot run
// on, saying why.
func checkStackPort(scenario, kind string) error {
	why := ""
	switch kind {
	case "", PortWire, PortAFPacket, PortAFXDP:
		return nil
	case PortNull:
		why = "a null port carries no traffic between two stacks: it frees what is sent and makes up what is received"
	case PortDPDK:
		why = "the bench's DPDK port is net_null, which carries no traffic between two stacks"
	case PortTAP:
		why = "a TAP port's other end is the kernel's stack, not a second pollnet stack"
	default:
		why = "it is no port kind they know"
	}
	return flagErr("--port %s: %s runs two pollnet stacks talking to each other, on %s; %s", kind, scenario, stackPortKinds, why)
}

// stackPort is the port kind a udp or tcp job of a plan runs on: --port
// when the scenario takes it; in a suite, the wire for a kind meant for
// another scenario (pps), with a note saying so; run alone, the kind as
// given, for Validate to refuse.
func (o Options) stackPort(scenario string, suite bool) (kind, note string) {
	if !suite || checkStackPort(scenario, o.Port) == nil {
		return o.Port, ""
	}
	return PortWire, fmt.Sprintf("%s ran on the wire pair: --port %s is not for it (it runs on %s)", scenario, o.Port, stackPortKinds)
}

// withNote prints note, when there is one, before a job's table.
func withNote(note string, table func(io.Writer)) func(io.Writer) {
	if note == "" {
		return table
	}
	return func(w io.Writer) {
		fmt.Fprintln(w, note)
		table(w)
	}
}

// stackLinkConfig is the link a pair of stacks runs over.
type stackLinkConfig struct {
	kind     string    // PortWire (or ""), PortAFPacket or PortAFXDP
	names    [2]string // the ports' names on the wire
	queues   int       // receive queues per port (wire only; a veth link has one)
	mtu      int       // 0: the link's default (the wire's 9000, a veth's 1500)
	poolSize int       // each port's receive pool; 0: the driver's default
	// csumOffload asks the wire pair to fill checksums, as veth does for
	// the kernel; a veth port offers no offload to a pollnet stack.
	csumOffload bool
}

// stackLink is the two ports of a stack pair, ports[0] the client's and
// ports[1] the server's, both of one kind.
type stackLink struct {
	kind  string
	ports [2]engine.Port
	ns    *netns.NS // the veth's namespace; nil on the wire
}

// Veth ends of a stack link, both in the link's namespace.
const (
	stackVethClient = "pn-cl"
	stackVethServer = "pn-sv"
	// afxdpMaxMTU is the largest MTU an AF_XDP port's 4096-byte UMEM frame
	// holds after the kernel's headroom and the Ethernet header.
	afxdpMaxMTU = 4096 - unix.XDP_PACKET_HEADROOM - 14
	// afxdpSmallMTU is the largest with the default 2048-byte frames.
	afxdpSmallMTU = afxdp.DefaultFrameSize - unix.XDP_PACKET_HEADROOM - 14
)

// linkCarries says why a link of kind cannot carry an MTU, or "".
func linkCarries(kind string, mtu int) string {
	if kind == PortAFXDP && mtu > afxdpMaxMTU {
		return fmt.Sprintf("an AF_XDP port's UMEM frame (4096 bytes) holds frames of an MTU up to %d, not %d", afxdpMaxMTU, mtu)
	}
	return ""
}

// csumOffload is what the link does with checksums: true when the ports
// fill them (the wire with offload on), false when the stacks sum every
// frame themselves.
func (l *stackLink) csumOffload() bool {
	return l.ports[0].Info().Features.TxChecksum && l.ports[1].Info().Features.TxChecksum
}

// newStackLink makes the link: a wire pair, or a namespace with a veth pair
// and a port of the kind on each end.
func newStackLink(c stackLinkConfig) (*stackLink, error) {
	switch c.kind {
	case "", PortWire:
		w, err := wire.NewPair(wire.Config{Names: c.names, Queues: c.queues, MTU: c.mtu, PoolSize: c.poolSize,
			ChecksumOffload: c.csumOffload})
		if err != nil {
			return nil, err
		}
		return &stackLink{kind: PortWire, ports: [2]engine.Port{w.Ports[0], w.Ports[1]}}, nil
	case PortAFPacket, PortAFXDP:
		return newVethStackLink(c)
	}
	return nil, checkStackPort("the scenario", c.kind)
}

// newVethStackLink is the veth link, its offloads off on both ends (TSO,
// GSO and GRO would hand a port frames beyond its MTU; an AF_XDP port sees
// the bytes as they are, so its transmit checksum offload is off too).
func newVethStackLink(c stackLinkConfig) (_ *stackLink, err error) {
	if c.queues > 1 {
		return nil, flagErr("--queues %d: a veth link carries one queue per stack here; give --queues 1", c.queues)
	}
	if why := linkCarries(c.kind, c.mtu); why != "" {
		return nil, flagErr("--mtu %d: %s", c.mtu, why)
	}
	if err := netns.Usable(); err != nil {
		return nil, fmt.Errorf("--port %s: %w", c.kind, err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		return nil, fmt.Errorf("--port %s: no ethtool, which turns the veth's offloads off: apt-get install ethtool (make deps does)", c.kind)
	}
	ns, err := netns.New("pnstk")
	if err != nil {
		return nil, err
	}
	l := &stackLink{kind: c.kind, ns: ns}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.close())
		}
	}()
	off := []string{"tso", "off", "gso", "off", "gro", "off"}
	if c.kind == PortAFXDP {
		off = append(off, "tx", "off")
	}
	devs := []string{stackVethClient, stackVethServer}
	cmds := [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "link", "add", stackVethClient, "type", "veth", "peer", "name", stackVethServer},
	}
	for _, d := range devs {
		cmds = append(cmds, append([]string{"ethtool", "-K", d}, off...))
		if c.mtu > 0 {
			cmds = append(cmds, []string{"ip", "link", "set", d, "mtu", strconv.Itoa(c.mtu)})
		}
		cmds = append(cmds, []string{"ip", "link", "set", d, "up"})
	}
	for _, cmd := range cmds {
		if _, err := ns.Exec(cmd...); err != nil {
			return nil, err
		}
	}
	frame := afxdp.DefaultFrameSize
	if c.mtu > afxdpSmallMTU {
		frame = 4096
	}
	for i, d := range devs {
		// Each stack's one interface is its index 0.
		err := ns.Do(func() error {
			var p engine.Port
			var err error
			if c.kind == PortAFXDP {
				p, err = afxdp.Open(afxdp.Config{Interface: d, FrameSize: frame, PoolSize: c.poolSize})
			} else {
				p, err = afpacket.Open(afpacket.Config{Name: d, PoolSize: c.poolSize})
			}
			if err == nil {
				l.ports[i] = p
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("--port %s on a veth: %w", c.kind, err)
		}
	}
	return l, nil
}

// close closes the ports, then deletes the namespace and the veth in it;
// every error is kept.
func (l *stackLink) close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, p := range l.ports {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if l.ns != nil {
		errs = append(errs, l.ns.Delete())
	}
	return errors.Join(errs...)
}

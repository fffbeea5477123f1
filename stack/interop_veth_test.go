package stack

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/afpacket"
	"github.com/pollnet/pollnet/pmd/afxdp"
)

// vethPort is a kind of port our stack runs on at one end of a veth pair.
type vethPort struct {
	name           string
	ourDev, kerDev string
	// offloadsOff are the ethtool features turned off on the kernel's end.
	// Neither port takes TSO or GSO super-frames (a port with an MTU drops
	// them). AF_PACKET completes the partial checksums the kernel leaves
	// to a veth (see pmd/afpacket); XDP sees the bytes as they are, so for
	// AF_XDP the kernel fills them itself (tx off).
	offloadsOff []string
	// usable skips the test where the kernel lacks what the port needs.
	usable func(t *testing.T)
	// open opens the port on dev, in our end's namespace; where
	// mayFail, a failure means the kernel lacks what the port needs and
	// the test skips.
	open    func(dev string) (engine.Port, error)
	mayFail bool
}

var vethPorts = []vethPort{
	{name: "afpacket", ourDev: "afpu", kerDev: "afpk", offloadsOff: []string{"tso", "off", "gso", "off"},
		usable: func(*testing.T) {},
		open:   func(dev string) (engine.Port, error) { return afpacket.Open(afpacket.Config{Name: dev}) }},
	{name: "afxdp", ourDev: "xs0", kerDev: "xk0", offloadsOff: []string{"tx", "off", "tso", "off", "gso", "off"},
		usable: func(t *testing.T) {
			fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Skipf("skipping: this kernel has no AF_XDP sockets: %v", err)
			}
			unix.Close(fd)
		},
		open:    func(dev string) (engine.Port, error) { return afxdp.Open(afxdp.Config{Interface: dev}) },
		mayFail: true},
}

// forVethPorts runs f for every veth port kind in both modes.
func forVethPorts(t *testing.T, f func(t *testing.T, vp vethPort, mode Mode)) {
	for _, vp := range vethPorts {
		t.Run(vp.name, func(t *testing.T) {
			forModes(t, func(t *testing.T, mode Mode) { f(t, vp, mode) })
		})
	}
}

// newVethLink is our stack on a vp port on one end of a veth pair, the
// kernel on the other end with kernelAddr, each end in a namespace of its
// own (so that the host's own daemons stay off the link; our end's
// namespace has no address and IPv6 off, so its kernel answers nothing).
func newVethLink(t *testing.T, vp vethPort, mode Mode) (*kernelLink, engine.Port) {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("no ethtool, which turns offloads off on the kernel's veth end: apt-get install ethtool (make deps does)")
	}
	vp.usable(t)
	kns, err := netns.New("pn-vk")
	if err != nil {
		t.Fatal(err)
	}
	k := &kernelLink{ns: kns}
	ours, err := netns.New("pn-vu")
	if err != nil {
		kns.Delete()
		t.Fatal(err)
	}
	var p engine.Port
	t.Cleanup(func() {
		if k.st != nil {
			if err := k.st.Close(); err != nil {
				t.Errorf("stack close: %v", err)
			}
		}
		if p != nil {
			if err := p.Close(); err != nil {
				t.Errorf("%s close: %v", vp.name, err)
			}
		}
		for _, ns := range []*netns.NS{ours, kns} {
			if err := ns.Delete(); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		}
	})
	for _, cmd := range [][]string{
		{"ip", "-n", ours.Name, "link", "add", vp.ourDev, "type", "veth", "peer", "name", vp.kerDev, "netns", kns.Name},
		{"ip", "netns", "exec", ours.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", kns.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		append([]string{"ip", "netns", "exec", kns.Name, "ethtool", "-K", vp.kerDev}, vp.offloadsOff...),
		{"ip", "-n", kns.Name, "addr", "add", kernelAddr.String(), "dev", vp.kerDev},
		{"ip", "-n", ours.Name, "link", "set", vp.ourDev, "up"},
		{"ip", "-n", kns.Name, "link", "set", vp.kerDev, "up"},
	} {
		if _, err := netns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if err := ours.Do(func() (err error) {
		p, err = vp.open(vp.ourDev)
		return err
	}); err != nil {
		p = nil // a typed nil from a failed open: nothing to close
		if vp.mayFail {
			t.Skipf("skipping: cannot open an %s port here: %v", vp.name, err)
		}
		t.Fatal(err)
	}
	k.st, err = New(Config{Name: "interop-" + vp.name, Interfaces: []Interface{{Port: p, Addr: ourAddr}},
		ARP: ARPConfig{RetryInterval: 200 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.st.Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	return k, p
}

func TestKernelPingsUsOverAVethPort(t *testing.T) {
	forVethPorts(t, func(t *testing.T, vp vethPort, mode Mode) {
		k, _ := newVethLink(t, vp, mode)
		out, err := k.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", ourAddr.Addr().String())
		if err != nil {
			if strings.Contains(err.Error(), "executable file not found") {
				t.Skip("no ping: apt-get install iputils-ping (make deps does)")
			}
			t.Fatalf("kernel ping got no replies: %v (stack %+v)", err, k.st.Stats())
		}
		if !strings.Contains(out, "3 received") {
			t.Fatalf("ping output:\n%s", out)
		}
		if st := k.st.Stats(); st.ICMPOutEchoReps < 3 || st.ARPOutReplies == 0 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestUDPWithTheKernelOverAVethPort(t *testing.T) {
	forVethPorts(t, func(t *testing.T, vp vethPort, mode Mode) {
		k, _ := newVethLink(t, vp, mode)
		kfd := k.kernelSocket(t, 9000)
		ours, err := k.st.ListenUDP(netip.AddrPortFrom(ourAddr.Addr(), 9001))
		if err != nil {
			t.Fatal(err)
		}
		exchangeUDPWithTheKernel(t, k.st, ours, kfd, 5, 1472, 4000) // the last is fragmented
		if st := k.st.Stats(); st.IPFragOKs < 1 || st.ReasmOKs < 1 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestTCPWithTheKernelOverAVethPortBothWays(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss: apt-get install iproute2 (make deps does)")
	}
	size := 4 << 20
	if raceEnabled {
		size = 1 << 20
	}
	forVethPorts(t, func(t *testing.T, vp vethPort, mode Mode) {
		for _, kernelDials := range []bool{true, false} {
			t.Run(map[bool]string{true: "kernel dials", false: "we dial"}[kernelDials], func(t *testing.T) {
				k, port := newVethLink(t, vp, mode)
				kc, ours := k.connect(t, kernelDials)
				start := time.Now()
				exchange(t, kc, ours, size)
				k.checkClosed(t, kc, ours, true)
				t.Logf("%d bytes each way in %v; our TCP %+v; port tx %+v", size, time.Since(start).Round(time.Millisecond),
					k.st.Stats().TCP, port.TxStats(0))
				// Frames an AF_XDP socket's rings lost under load show as
				// retransmits above and as the kernel's ring drops here.
				if xp, ok := port.(*afxdp.Port); ok {
					xs, err := xp.Stats(0)
					if err != nil {
						t.Error(err)
					}
					t.Logf("AF_XDP %+v", xs)
				}
			})
		}
	})
}

package stack

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/afpacket"
)

// The kernel's end of the veth pair and ours.
const (
	afpKernelDev = "afpk"
	afpOurDev    = "afpu"
)

// newAFPacketLink is our stack on an AF_PACKET port on one end of a veth
// pair, the kernel on the other end, each end in a namespace of its own (so
// that the host's own daemons stay off the link; the kernel of our end's
// namespace has no address and IPv6 off, so it answers nothing). The
// kernel's end sends no TSO or GSO super-frames (ethtool -K tso off gso
// off), which a port with an MTU must drop; it keeps its transmit checksum
// offload, whose partial checksums the port completes (see pmd/afpacket).
func newAFPacketLink(t *testing.T, mode Mode) *kernelLink {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("no ethtool, which turns TSO off on the kernel's veth end: apt-get install ethtool (make deps does)")
	}
	kns, err := netns.New("pn-afpk")
	if err != nil {
		t.Fatal(err)
	}
	k := &kernelLink{ns: kns}
	ours, err := netns.New("pn-afpu")
	if err != nil {
		kns.Delete()
		t.Fatal(err)
	}
	var p *afpacket.Port
	t.Cleanup(func() {
		if k.st != nil {
			if err := k.st.Close(); err != nil {
				t.Errorf("stack close: %v", err)
			}
		}
		if p != nil {
			if err := p.Close(); err != nil {
				t.Errorf("afpacket close: %v", err)
			}
		}
		for _, ns := range []*netns.NS{ours, kns} {
			if err := ns.Delete(); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		}
	})
	for _, cmd := range [][]string{
		{"ip", "-n", ours.Name, "link", "add", afpOurDev, "type", "veth", "peer", "name", afpKernelDev, "netns", kns.Name},
		{"ip", "netns", "exec", ours.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", kns.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", kns.Name, "ethtool", "-K", afpKernelDev, "tso", "off", "gso", "off"},
		{"ip", "-n", kns.Name, "addr", "add", kernelAddr.String(), "dev", afpKernelDev},
		{"ip", "-n", ours.Name, "link", "set", afpOurDev, "up"},
		{"ip", "-n", kns.Name, "link", "set", afpKernelDev, "up"},
	} {
		if _, err := netns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if err := ours.Do(func() (err error) {
		p, err = afpacket.Open(afpacket.Config{Name: afpOurDev})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	k.st, err = New(Config{Name: "interop-afpacket", Interfaces: []Interface{{Port: p, Addr: ourAddr}},
		ARP: ARPConfig{RetryInterval: 200 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.st.Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKernelPingsUsOverAFPacket(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newAFPacketLink(t, mode)
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

func TestUDPWithTheKernelOverAFPacket(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newAFPacketLink(t, mode)
		kfd := k.kernelSocket(t, 9000)
		ours, err := k.st.ListenUDP(netip.AddrPortFrom(ourAddr.Addr(), 9001))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 70000)
		for _, size := range []int{5, 1472, 4000} { // the last is fragmented
			msg := randomBytes(size, uint64(size))
			if _, err := ours.WriteToUDPAddrPort(msg, netip.AddrPortFrom(kernelAddr.Addr(), 9000)); err != nil {
				t.Fatal(err)
			}
			n, from, err := unix.Recvfrom(kfd, buf, 0)
			if err != nil {
				t.Fatalf("%d bytes to the kernel: %v (stack %+v)", size, err, k.st.Stats())
			}
			if sa := from.(*unix.SockaddrInet4); !bytes.Equal(buf[:n], msg) || sa.Port != 9001 {
				t.Fatalf("kernel got %d bytes from port %d", n, sa.Port)
			}
			// The kernel's datagrams leave their checksum to the veth
			// (unless fragmented): the port completes it.
			if err := unix.Sendto(kfd, msg, 0, &unix.SockaddrInet4{Port: 9001, Addr: ourAddr.Addr().As4()}); err != nil {
				t.Fatal(err)
			}
			got, src := readWithin(t, ours, 5*time.Second)
			if !bytes.Equal(got, msg) || src != netip.AddrPortFrom(kernelAddr.Addr(), 9000) {
				t.Fatalf("we got %d bytes from %v, want %d", len(got), src, size)
			}
		}
		if st := k.st.Stats(); st.IPFragOKs < 1 || st.ReasmOKs < 1 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestTCPWithTheKernelOverAFPacketBothWays(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss: apt-get install iproute2 (make deps does)")
	}
	size := 4 << 20
	if raceEnabled {
		size = 1 << 20
	}
	forModes(t, func(t *testing.T, mode Mode) {
		for _, kernelDials := range []bool{true, false} {
			t.Run(map[bool]string{true: "kernel dials", false: "we dial"}[kernelDials], func(t *testing.T) {
				k := newAFPacketLink(t, mode)
				kc, ours := k.connect(t, kernelDials)
				start := time.Now()
				exchange(t, kc, ours, size)
				k.checkClosed(t, kc, ours, true)
				t.Logf("%d bytes each way in %v; our TCP %+v", size, time.Since(start).Round(time.Millisecond), k.st.Stats().TCP)
			})
		}
	})
}

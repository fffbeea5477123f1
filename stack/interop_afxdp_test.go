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
	"github.com/pollnet/pollnet/pmd/afxdp"
)

// newAFXDPLink is our stack on an AF_XDP port bound to one end of a veth
// pair, in a namespace of its own; the other end sits in a second namespace
// with kernelAddr, where the Linux stack answers as a neighbour.
func newAFXDPLink(t *testing.T, mode Mode) (*kernelLink, *afxdp.Port) {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("no ethtool, which turns offloads off on the kernel's veth end: apt-get install ethtool (make deps does)")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("skipping: this kernel has no AF_XDP sockets: %v", err)
	}
	unix.Close(fd)
	ours, err := netns.New("pn-xsk")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := netns.New("pn-stack")
	if err != nil {
		ours.Delete()
		t.Fatal(err)
	}
	k := &kernelLink{ns: theirs}
	var port *afxdp.Port
	t.Cleanup(func() {
		if k.st != nil {
			if err := k.st.Close(); err != nil {
				t.Errorf("stack close: %v", err)
			}
		}
		if port != nil {
			if err := port.Close(); err != nil {
				t.Errorf("afxdp close: %v", err)
			}
		}
		for _, ns := range []*netns.NS{theirs, ours} {
			if err := ns.Delete(); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		}
	})
	for _, cmd := range [][]string{
		{"ip", "netns", "exec", ours.Name, "ip", "link", "add", "xs0", "type", "veth", "peer", "name", "xk0", "netns", theirs.Name},
		{"ip", "netns", "exec", ours.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", ours.Name, "ip", "link", "set", "xs0", "up"},
		{"ip", "netns", "exec", theirs.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", theirs.Name, "ip", "addr", "add", kernelAddr.String(), "dev", "xk0"},
		{"ip", "netns", "exec", theirs.Name, "ip", "link", "set", "xk0", "up"},
	} {
		if _, err := netns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	// A veth offers checksum offload, so the kernel's frames leave with
	// CHECKSUM_PARTIAL, the sum not yet filled in; XDP sees the bytes as
	// they are, so have the kernel fill it in before sending. That takes TSO
	// off with it; GSO too, said outright: a TCP super-frame of 64 KiB
	// would not fit a UMEM frame.
	if _, err := netns.Run("ip", "netns", "exec", theirs.Name, "ethtool", "-K", "xk0", "tx", "off", "tso", "off", "gso", "off"); err != nil {
		t.Fatal(err)
	}
	err = ours.Do(func() error {
		var err error
		port, err = afxdp.Open(afxdp.Config{Interface: "xs0"})
		return err
	})
	if err != nil {
		t.Skipf("skipping: cannot open an AF_XDP port here (BPF or AF_XDP missing?): %v", err)
	}
	k.st, err = New(Config{Name: "interop-afxdp", Interfaces: []Interface{{Port: port, Addr: ourAddr}},
		ARP: ARPConfig{RetryInterval: 200 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.st.Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	return k, port
}

func TestKernelPingsUsOverAFXDP(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k, _ := newAFXDPLink(t, mode)
		out, err := k.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", ourAddr.Addr().String())
		if err != nil {
			if strings.Contains(err.Error(), "executable file not found") {
				t.Skip("no ping: apt-get install iputils-ping (make deps does)")
			}
			t.Fatalf("kernel ping got no replies over AF_XDP: %v", err)
		}
		if !strings.Contains(out, "3 received") {
			t.Fatalf("ping output:\n%s", out)
		}
		if st := k.st.Stats(); st.ICMPOutEchoReps < 3 || st.ARPOutReplies == 0 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestUDPWithTheKernelOverAFXDP(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k, _ := newAFXDPLink(t, mode)
		kfd := k.kernelSocket(t, 9000)
		ours, err := k.st.ListenUDP(netip.AddrPortFrom(ourAddr.Addr(), 9001))
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{5, 1472, 4000} { // the last is fragmented
			msg := bytes.Repeat([]byte{byte(size)}, size)
			for i := range msg {
				msg[i] += byte(i)
			}
			if _, err := ours.WriteToUDPAddrPort(msg, netip.AddrPortFrom(kernelAddr.Addr(), 9000)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 70000)
			n, from, err := unix.Recvfrom(kfd, buf, 0)
			if err != nil {
				t.Fatalf("%d bytes to the kernel: %v (stack %+v)", size, err, k.st.Stats())
			}
			if sa := from.(*unix.SockaddrInet4); !bytes.Equal(buf[:n], msg) || sa.Port != 9001 || sa.Addr != ourAddr.Addr().As4() {
				t.Fatalf("kernel got %d bytes from %v:%d", n, sa.Addr, sa.Port)
			}
			if err := unix.Sendto(kfd, msg, 0, &unix.SockaddrInet4{Port: 9001, Addr: ourAddr.Addr().As4()}); err != nil {
				t.Fatal(err)
			}
			got, src := readWithin(t, ours, 5*time.Second)
			if !bytes.Equal(got, msg) || src != netip.AddrPortFrom(kernelAddr.Addr(), 9000) {
				t.Fatalf("we got %d bytes from %v, want %d (stack %+v)", len(got), src, size, k.st.Stats())
			}
		}
	})
}

func TestTCPWithTheKernelOverAFXDPBothWays(t *testing.T) {
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
				k, port := newAFXDPLink(t, mode)
				kc, ours := k.connect(t, kernelDials)
				start := time.Now()
				exchange(t, kc, ours, size)
				k.checkClosed(t, kc, ours, true)
				// Frames the rings lost under load show as retransmits
				// here and as the kernel's ring drops below.
				xs, err := port.Stats(0)
				if err != nil {
					t.Error(err)
				}
				t.Logf("%d bytes each way in %v; our TCP %+v; AF_XDP %+v, tx %+v", size, time.Since(start).Round(time.Millisecond),
					k.st.Stats().TCP, xs, port.TxStats(0))
			})
		}
	})
}

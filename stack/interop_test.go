package stack

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/tap"
)

// The kernel's end of the link and ours, inside 198.18.0.0/15.
var (
	kernelAddr = netip.MustParsePrefix("198.18.0.1/24")
	ourAddr    = netip.MustParsePrefix("198.18.0.2/24")
)

// kernelLink is our stack on a TAP port whose interface sits in a network
// namespace of its own, where the Linux stack answers as a neighbour.
type kernelLink struct {
	ns *netns.NS
	p  *tap.Port
	st *Stack
}

func newKernelLink(t *testing.T, mode Mode) *kernelLink {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun (%v): modprobe tun", err)
	}
	ns, err := netns.New("pn-stack")
	if err != nil {
		t.Fatal(err)
	}
	k := &kernelLink{ns: ns}
	t.Cleanup(func() {
		if k.st != nil {
			if err := k.st.Close(); err != nil {
				t.Errorf("stack close: %v", err)
			}
		}
		if k.p != nil {
			if err := k.p.Close(); err != nil {
				t.Errorf("tap close: %v", err)
			}
		}
		if err := ns.Delete(); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	if k.p, err = tap.Open(tap.Config{Name: "pns%d"}); err != nil {
		t.Fatal(err)
	}
	name := k.p.Name()
	for _, cmd := range [][]string{
		{"ip", "link", "set", name, "netns", ns.Name},
		{"ip", "netns", "exec", ns.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", ns.Name, "ip", "addr", "add", kernelAddr.String(), "dev", name},
		{"ip", "netns", "exec", ns.Name, "ip", "link", "set", name, "up"},
	} {
		if _, err := netns.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	k.st, err = New(Config{Name: "interop", Interfaces: []Interface{{Port: k.p, Addr: ourAddr}},
		ARP: ARPConfig{RetryInterval: 200 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.st.Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	return k
}

// kernelSocket opens a kernel UDP socket bound to kernelAddr:port in the
// namespace, with a receive timeout.
func (k *kernelLink) kernelSocket(t *testing.T, port int) int {
	t.Helper()
	var fd int
	err := k.ns.Do(func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: kernelAddr.Addr().As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func forModes(t *testing.T, f func(t *testing.T, mode Mode)) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(string(mode), func(t *testing.T) { f(t, mode) })
	}
}

func TestKernelPingsUs(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		out, err := k.ns.Exec("ping", "-c", "3", "-i", "0.2", "-W", "2", ourAddr.Addr().String())
		if err != nil {
			if strings.Contains(err.Error(), "executable file not found") {
				t.Skip("no ping: apt-get install iputils-ping (make deps does)")
			}
			t.Fatalf("kernel ping got no replies: %v", err)
		}
		if !strings.Contains(out, "3 received") {
			t.Fatalf("ping output:\n%s", out)
		}
		st := k.st.Stats()
		if st.ICMPOutEchoReps < 3 || st.ARPInRequests == 0 || st.ARPOutReplies == 0 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestUDPWithTheKernel(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		kfd := k.kernelSocket(t, 9000)
		ours, err := k.st.ListenUDP(netip.AddrPortFrom(ourAddr.Addr(), 9001))
		if err != nil {
			t.Fatal(err)
		}
		exchangeUDPWithTheKernel(t, k.st, ours, kfd, 5, 1472, 4000, 20000) // the last two are fragmented
		st := k.st.Stats()
		if st.ARPOutRequests == 0 || st.IPFragOKs < 2 || st.ReasmOKs < 2 {
			t.Fatalf("stack counters: %+v", st)
		}
	})
}

func TestKernelPingsUsWithFragments(t *testing.T) {
	k := newKernelLink(t, ModeNAPI)
	// 3000 bytes of ICMP data: the request is fragmented by the kernel and
	// reassembled by us, the reply fragmented by us and reassembled by it.
	out, err := k.ns.Exec("ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "3000", ourAddr.Addr().String())
	if err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			t.Skip("no ping: apt-get install iputils-ping (make deps does)")
		}
		t.Fatalf("large ping: %v", err)
	}
	if !strings.Contains(out, "2 received") {
		t.Fatalf("ping output:\n%s", out)
	}
	if st := k.st.Stats(); st.ReasmOKs < 2 || st.IPFragOKs < 2 {
		t.Fatalf("stack counters: %+v", st)
	}
}

// exchangeUDPWithTheKernel sends a datagram of each size from ours (port
// 9001) to the kernel's socket kfd (port 9000) and back, and checks the
// bytes and the source addresses both ways. We resolve the kernel's
// address and fragment what is too long; the kernel fragments its answers
// and we reassemble them.
func exchangeUDPWithTheKernel(t *testing.T, st *Stack, ours *UDPConn, kfd int, sizes ...int) {
	t.Helper()
	buf := make([]byte, 70000)
	for _, size := range sizes {
		msg := randomBytes(size, uint64(size))
		if _, err := ours.WriteToUDPAddrPort(msg, netip.AddrPortFrom(kernelAddr.Addr(), 9000)); err != nil {
			t.Fatal(err)
		}
		n, from, err := unix.Recvfrom(kfd, buf, 0)
		if err != nil {
			t.Fatalf("%d bytes to the kernel: %v (stack %+v)", size, err, st.Stats())
		}
		if sa := from.(*unix.SockaddrInet4); !bytes.Equal(buf[:n], msg) || sa.Port != 9001 || sa.Addr != ourAddr.Addr().As4() {
			t.Fatalf("kernel got %d bytes from %v:%d", n, sa.Addr, sa.Port)
		}
		if err := unix.Sendto(kfd, msg, 0, &unix.SockaddrInet4{Port: 9001, Addr: ourAddr.Addr().As4()}); err != nil {
			t.Fatal(err)
		}
		got, src := readWithin(t, ours, 5*time.Second)
		if !bytes.Equal(got, msg) || src != netip.AddrPortFrom(kernelAddr.Addr(), 9000) {
			t.Fatalf("we got %d bytes from %v, want %d (stack %+v)", len(got), src, size, st.Stats())
		}
	}
}

package stack

import (
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kernel's duplicate-address detection (RFC 5227 probes, sender address
// 0.0.0.0) must see our answer, or a host on the link takes our address.
func TestKernelArpingDuplicateDetectionSeesOurAddress(t *testing.T) {
	if _, err := exec.LookPath("arping"); err != nil {
		t.Skip("no arping: apt-get install iputils-arping (make deps does)")
	}
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		// arping -D exits 0 when nobody answers, 1 when the address is taken.
		out, err := k.ns.Exec("arping", "-D", "-c", "3", "-w", "3", "-I", k.p.Name(), ourAddr.Addr().String())
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("arping -D did not detect our address (err %v):\n%s\nstack %+v", err, out, k.st.Stats())
		}
		if !strings.Contains(out, "Received 1 response") && !strings.Contains(out, "Received 2 response") && !strings.Contains(out, "Received 3 response") {
			t.Fatalf("arping output:\n%s", out)
		}
	})
}

// A ping to the subnet's broadcast address must get no answer from us
// (icmp_echo_ignore_broadcasts), and none sourced from the broadcast address.
func TestKernelBroadcastPingGetsNoAnswerFromUs(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("no ping: apt-get install iputils-ping (make deps does)")
	}
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		bcast := "198.18.0.255"
		out, _ := k.ns.Exec("ping", "-b", "-c", "3", "-i", "0.2", "-W", "1", bcast)
		if !strings.Contains(out, " 0 received") {
			t.Fatalf("someone answered a broadcast ping:\n%s", out)
		}
		st := k.st.Stats()
		if st.IPInReceives == 0 {
			t.Fatalf("the broadcast pings never reached us (the test proves nothing): %+v", st)
		}
		if st.ICMPOutEchoReps != 0 || st.ICMPOutMsgs != 0 {
			t.Fatalf("we answered a broadcast ping: %+v", st)
		}
	})
}

// The kernel answers a datagram to a closed port with a port unreachable;
// our connected socket's next read must report ECONNREFUSED, as a kernel
// socket does.
func TestConnectedUDPSocketGetsConnectionRefusedFromTheKernel(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		c, err := k.st.DialUDP(netip.AddrPortFrom(ourAddr.Addr(), 0), netip.AddrPortFrom(kernelAddr.Addr(), 9))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("anyone there?")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		_, err = c.Read(buf)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("read after sending to a closed kernel port: %v, want ECONNREFUSED (stack %+v)", err, k.st.Stats())
		}
		// Reported once, as sk_err is: the next read just times out.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("the error was reported twice")
		}
	})
}

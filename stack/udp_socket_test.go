package stack

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/socket"
)

var bothModes = []Mode{ModePMD, ModeNAPI}

func newBareStack(t *testing.T, cfg Config) *Stack {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func anyPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), port) }

// isOpError reports whether err is a *net.OpError of op wrapping target, the
// shape the net package gives its errors.
func isOpError(err error, op string, target error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == op && errors.Is(err, target)
}

func TestCloseWakesABlockedReadWithErrClosedInBothModes(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			c, err := p.b.ListenUDP(ap(addrB, 7200))
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFromUDPAddrPort(make([]byte, 100))
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond) // let the reader block (it may not have: same outcome)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !isOpError(err, "read", net.ErrClosed) {
					t.Fatalf("blocked read after Close: %v (%T), want a read *net.OpError wrapping net.ErrClosed", err, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not wake the blocked read")
			}
			if _, err := c.Read(make([]byte, 10)); !isOpError(err, "read", net.ErrClosed) {
				t.Fatalf("read after Close: %v", err)
			}
			if _, err := c.WriteToUDPAddrPort([]byte("x"), ap(addrA, 1)); !isOpError(err, "write", net.ErrClosed) {
				t.Fatalf("write after Close: %v", err)
			}
			if err := c.Close(); !isOpError(err, "close", net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// TestTryReadNeverBlocks races readers for one datagram at a time: a
// TryRead that saw it queued but lost it to another reader must return
// empty-handed, not wait for the next one.
func TestTryReadNeverBlocks(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 0)
	sb, _ := p.b.ListenUDP(ap(addrB, 7300))
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	for round := 0; round < 200; round++ {
		sa.WriteToUDPAddrPort([]byte{byte(round)}, ap(addrB, 7300))
		deadline := time.Now().Add(5 * time.Second)
		for sb.Readiness()&socket.Readable == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: datagram never arrived", round)
			}
			time.Sleep(100 * time.Microsecond)
		}
		const readers = 4
		var got atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < readers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, _, ok := sb.TryRead(make([]byte, 10)); ok {
					got.Add(1)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		close(start)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			sb.Close() // free the stuck readers
			<-done
			t.Fatalf("round %d: a TryRead blocked", round)
		}
		if got.Load() != 1 {
			t.Fatalf("round %d: %d readers got the one datagram", round, got.Load())
		}
	}
}

func TestReadPastItsDeadlineTimesOutEvenWithDataQueued(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			sb, _ := p.b.ListenUDP(ap(addrB, 7400))
			sa, _ := p.a.ListenUDP(ap(addrA, 0))
			sa.WriteToUDPAddrPort([]byte("queued"), ap(addrB, 7400))
			deadline := time.Now().Add(5 * time.Second)
			for sb.Readiness()&socket.Readable == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			sb.SetReadDeadline(time.Now().Add(-time.Second))
			n, _, err := sb.ReadFromUDPAddrPort(make([]byte, 100))
			var ne net.Error
			if !isOpError(err, "read", os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("read past its deadline: %d bytes, %v; want a timeout", n, err)
			}
			sb.SetReadDeadline(time.Time{})
			if got, _ := readWithin(t, sb, 5*time.Second); string(got) != "queued" {
				t.Fatalf("after the deadline was lifted: %q", got)
			}
		})
	}
}

// TestStartSetsTheModeWithoutARace opens sockets, which read the mode,
// while Start sets it.
func TestStartSetsTheModeWithoutARace(t *testing.T) {
	s := newBareStack(t, Config{Name: "mode"})
	started := make(chan error, 1)
	go func() { started <- s.Start(ModeNAPI, engine.AnyCore, engine.SoftirqConfig{}) }()
	for i := 0; ; i++ {
		c, err := s.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		_ = s.Mode()
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode() != ModeNAPI {
				t.Fatalf("mode %q after Start", s.Mode())
			}
			return
		default:
		}
		if i > 1e6 {
			t.Fatal("Start never returned")
		}
	}
}

// TestWritesRacingStackCloseGetErrClosed closes a stack under concurrent
// writers: every write after Close fails with net.ErrClosed, and none
// touches the stack's pool once it is gone.
func TestWritesRacingStackCloseGetErrClosed(t *testing.T) {
	for round := 0; round < 5; round++ {
		p := newPair(t, ModeNAPI, wire.Config{}, 0)
		sb, _ := p.b.ListenUDP(ap(addrB, 7500))
		sa, _ := p.a.ListenUDP(ap(addrA, 0))
		sa.WriteToUDPAddrPort([]byte("arp"), ap(addrB, 7500))
		readWithin(t, sb, 5*time.Second)
		// Writers run until the close stops them, bounded in time: a fixed
		// count could all be sent before a slow machine gets to Close.
		const writers = 4
		var sent atomic.Int64
		errs := make([]error, writers)
		var wg sync.WaitGroup
		until := time.Now().Add(10 * time.Second)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(until) {
					_, err := sa.WriteToUDPAddrPort([]byte("racing"), ap(addrB, 7500))
					if err != nil && errors.Is(err, net.ErrClosed) {
						errs[w] = err
						return
					}
					sent.Add(1)
				}
			}()
		}
		for sent.Load() < 200 {
			time.Sleep(100 * time.Microsecond)
		}
		if err := p.a.Close(); err != nil {
			t.Fatalf("round %d: Close under writers: %v", round, err)
		}
		wg.Wait()
		for w, err := range errs {
			if !isOpError(err, "write", net.ErrClosed) {
				t.Fatalf("round %d: writer %d ended with %v", round, w, err)
			}
		}
	}
}

func TestEphemeralExhaustionSaysWhichRange(t *testing.T) {
	s := newBareStack(t, Config{Name: "ports", LocalPortRange: PortRange{Low: 40000, High: 40003}})
	// Take three ports by hand: binds to port 0 must find the fourth.
	for p := uint16(40000); p < 40003; p++ {
		if _, err := s.ListenUDP(anyPort(p)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.ListenUDP(anyPort(0))
	if err != nil || c.LocalAddrPort().Port() != 40003 {
		t.Fatalf("bind with one port free: %v %v", c, err)
	}
	_, err = s.ListenUDP(anyPort(0))
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "40000-40003") {
		t.Fatalf("bind with the range used up: %v", err)
	}
}

func TestLocalPortRangeIsValidated(t *testing.T) {
	for _, r := range []PortRange{{Low: 50000, High: 40000}, {Low: 0, High: 40000}, {Low: 1000, High: 2000}, {Low: 40000}} {
		if s, err := New(Config{Name: "bad", LocalPortRange: r}); err == nil {
			s.Close()
			t.Errorf("range %d-%d accepted", r.Low, r.High)
		}
	}
}

// TestEachStackHasItsOwnEphemeralSecret: two stacks do not pick the same
// ports (the picking itself is tested in package ephemeral).
func TestEachStackHasItsOwnEphemeralSecret(t *testing.T) {
	pick := func(name string) []uint16 {
		s := newBareStack(t, Config{Name: name})
		var ports []uint16
		for i := 0; i < 4; i++ {
			c, err := s.ListenUDP(anyPort(0))
			if err != nil {
				t.Fatal(err)
			}
			ports = append(ports, c.LocalAddrPort().Port())
		}
		return ports
	}
	a, b := pick("ports1"), pick("ports2")
	if slices.Equal(a, b) {
		t.Fatalf("two stacks picked the same ports %v", a)
	}
}

// TestAConnectedSocketsCachedRouteFollowsARouteChange: a connected socket
// keeps its route between sends; a more specific route added through
// another gateway takes its next datagram there.
func TestAConnectedSocketsCachedRouteFollowsARouteChange(t *testing.T) {
	gw1, gw2 := ipPeer, [4]byte{198, 18, 0, 3}
	macGW2 := eth.MAC{0x02, 0, 0, 0, 0, 0x03}
	r := newRig(t, wire.Config{}, Config{Routes: []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.AddrFrom4(gw1), Dev: 1},
	}})
	far := [4]byte{203, 0, 113, 7}
	c, err := r.s.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(netip.AddrFrom4(far), 53))
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalAddrPort().Addr() != addrB.Addr() {
		t.Fatalf("connected from %v, want the route's source %v", c.LocalAddrPort(), addrB.Addr())
	}
	// sendVia sends payload and checks it leaves for gw at mac, resolving
	// gw first when asked.
	sendVia := func(payload string, gw [4]byte, mac eth.MAC, resolve bool) {
		t.Helper()
		if _, err := c.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		out := r.received()
		if resolve {
			rest := r.answerARP(out, gw, mac)
			if len(rest) == len(out) {
				t.Fatalf("%s: no ARP request for the gateway %v among %d frames", payload, gw, len(out))
			}
			out = append(rest, r.received()...)
		}
		if got, ok := findUDP(out, mac, far); !ok || string(got) != payload {
			t.Fatalf("%s did not leave for %v (%d frames out)", payload, mac, len(out))
		}
	}
	sendVia("one", gw1, macPeer, true)
	sendVia("two", gw1, macPeer, false)
	if err := r.s.AddRoute(Route{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Via: netip.AddrFrom4(gw2), Dev: 1}); err != nil {
		t.Fatal(err)
	}
	sendVia("three", gw2, macGW2, true)
	sendVia("four", gw2, macGW2, false)
}

// readAll empties c, returning the first byte of each datagram.
func readAll(c *UDPConn) []byte {
	var got []byte
	buf := make([]byte, 64)
	for {
		n, _, ok := c.TryRead(buf)
		if !ok {
			return got
		}
		if n > 0 {
			got = append(got, buf[0])
		}
	}
}

func TestReusePortSocketsShareAPortFlowByFlow(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	laddr := netip.AddrPortFrom(addrB.Addr(), 5353)
	reuse := UDPOptions{ReusePort: true, Shard: -1}
	var group []*UDPConn
	for i := 0; i < 3; i++ {
		c, err := r.s.ListenUDPWith(laddr, reuse)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		group = append(group, c)
	}
	if _, err := r.s.ListenUDP(laddr); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("a socket without ReusePort joined: %v", err)
	}
	if _, err := r.s.ListenUDPWith(laddr, UDPOptions{ReusePort: true, Shard: 1}); err == nil {
		t.Fatal("bound to shard 1 of a one-shard stack")
	}
	// 120 flows (source ports), two datagrams each: every flow's pair
	// lands on one socket, and every socket gets flows.
	const flows = 120
	owner := map[byte]int{}
	for round := 0; round < 2; round++ {
		for f := 0; f < flows; f++ {
			r.send(udpFrame(uint16(20000+f), 5353, []byte{byte(f)}))
		}
		for i, c := range group {
			got := readAll(c)
			if len(got) == 0 {
				t.Fatalf("round %d: member %d got no flow", round, i)
			}
			for _, f := range got {
				if o, seen := owner[f]; round == 0 && seen || round == 1 && (!seen || o != i) {
					t.Fatalf("round %d: flow %d at member %d, was at %d (seen %v)", round, f, i, o, seen)
				}
				owner[f] = i
			}
		}
	}
	if len(owner) != flows {
		t.Fatalf("%d of %d flows arrived", len(owner), flows)
	}
	// A member bound to the shard that receives takes all of it.
	bound, err := r.s.ListenUDPWith(laddr, UDPOptions{ReusePort: true, Shard: 0, RecvBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for f := 0; f < flows; f++ {
		r.send(udpFrame(uint16(20000+f), 5353, []byte{byte(f)}))
	}
	if got := readAll(bound); len(got) != flows {
		t.Fatalf("the member bound to shard 0 got %d of %d", len(got), flows)
	}
	for i, c := range group {
		if got := readAll(c); len(got) != 0 {
			t.Fatalf("member %d, bound to no shard, got %d", i, len(got))
		}
	}
}

// TestAFloodToOneSocketDropsAtItsBufferAndToClosedPortsAtTheICMPLimit:
// the socket queues what its buffer holds and counts the rest; datagrams
// to closed ports earn errors only within the rate limit; neither costs an
// allocation per packet.
func TestAFloodToOneSocketDropsAtItsBufferAndToClosedPortsAtTheICMPLimit(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	c, err := r.s.ListenUDP(netip.AddrPortFrom(addrB.Addr(), 7000))
	if err != nil {
		t.Fatal(err)
	}
	toSocket := udpFrame(4000, 7000, []byte("flood"))
	toClosed := udpFrame(4000, 7001, []byte("flood"))
	const flood = 300 // 212992 bytes hold 97 buffers of 2176 bytes
	for i := 0; i < flood; i++ {
		r.send(toSocket, toClosed)
	}
	r.drain()
	st := r.s.Stats()
	if st.UDPInDatagrams != 97 || st.UDPRcvbufErrors != flood-97 || c.Drops() != flood-97 {
		t.Fatalf("queued %d, dropped %d (socket says %d)", st.UDPInDatagrams, st.UDPRcvbufErrors, c.Drops())
	}
	if st.UDPNoPorts != flood || st.ICMPOutDestUnreachs == 0 || st.ICMPOutDestUnreachs > 50 {
		t.Fatalf("to a closed port: %d datagrams, %d errors sent", st.UDPNoPorts, st.ICMPOutDestUnreachs)
	}
	if a := testing.AllocsPerRun(200, func() {
		r.send(toSocket, toClosed)
		r.drain()
	}); a != 0 {
		t.Fatalf("%v allocations per pair of datagrams", a)
	}
}

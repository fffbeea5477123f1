package stack

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/socket"
)

var (
	addrA = netip.MustParsePrefix("198.18.0.1/24")
	addrB = netip.MustParsePrefix("198.18.0.2/24")
)

// pair is two stacks joined by a wire pair.
type pair struct {
	wire *wire.Pair
	a, b *Stack
}

func newPair(t testing.TB, mode Mode, wc wire.Config, mtu int) *pair {
	t.Helper()
	wp, err := wire.NewPair(wc)
	if err != nil {
		t.Fatal(err)
	}
	return newPairOn(t, mode, wp, [2]engine.Port{wp.Ports[0], wp.Ports[1]}, mtu)
}

// newPairOn is newPair on the ports of wp, or on ports standing in for them
// (a test's wrappers).
func newPairOn(t testing.TB, mode Mode, wp *wire.Pair, ports [2]engine.Port, mtu int) *pair {
	t.Helper()
	p := &pair{wire: wp}
	var err error
	p.a, err = New(Config{Name: "a", Interfaces: []Interface{{Port: ports[0], Addr: addrA, MTU: mtu}},
		ARP: ARPConfig{RetryInterval: 100 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	p.b, err = New(Config{Name: "b", Interfaces: []Interface{{Port: ports[1], Addr: addrB, MTU: mtu}},
		ARP: ARPConfig{RetryInterval: 100 * time.Millisecond}, Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Stack{p.a, p.b} {
		if err := s.Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	p.closeOnCleanup(t)
	return p
}

// closeOnCleanup closes both stacks, then the wire's ports, when t ends.
func (p *pair) closeOnCleanup(t testing.TB) {
	t.Cleanup(func() {
		for _, s := range []*Stack{p.a, p.b} {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", s.Name(), err)
			}
		}
		for _, port := range p.wire.Ports {
			if err := port.Close(); err != nil {
				t.Errorf("close port: %v", err)
			}
		}
	})
}

func ap(p netip.Prefix, port uint16) netip.AddrPort { return netip.AddrPortFrom(p.Addr(), port) }

func readWithin(t *testing.T, c *UDPConn, d time.Duration) ([]byte, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 70000)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on %v: %v", c.LocalAddrPort(), err)
	}
	return buf[:n], from
}

func TestUDPBothWaysBothModes(t *testing.T) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			sa, err := p.a.ListenUDP(ap(addrA, 5000))
			if err != nil {
				t.Fatal(err)
			}
			sb, err := p.b.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 6000))
			if err != nil {
				t.Fatal(err)
			}
			// b's reader waits before anything is sent, so that in napi
			// mode it parks whatever the timing of the exchange.
			type read struct {
				got  []byte
				from netip.AddrPort
				err  error
			}
			first := make(chan read, 1)
			go func() {
				sb.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				n, from, err := sb.ReadFromUDPAddrPort(buf)
				first <- read{buf[:n], from, err}
			}()
			// In napi mode it parks; in pmd mode it spins, and the test
			// waits for that too, or a slow start could find the datagram
			// already there.
			waiting, what := func() bool { return sb.Notifier().Readers.Waiters() > 0 }, "parked"
			if mode == ModePMD {
				waiting, what = func() bool { return p.b.SocketCounters().Spins.Load() > 0 }, "spun"
			}
			for deadline := time.Now().Add(5 * time.Second); !waiting(); {
				if time.Now().After(deadline) {
					t.Fatalf("b's reader never %s", what)
				}
				time.Sleep(time.Millisecond)
			}
			// The first datagram waits for ARP; it must still arrive.
			if _, err := sa.WriteToUDPAddrPort([]byte("hello b"), ap(addrB, 6000)); err != nil {
				t.Fatal(err)
			}
			r := <-first
			if r.err != nil {
				t.Fatal(r.err)
			}
			got, from := r.got, r.from
			if string(got) != "hello b" || from != ap(addrA, 5000) {
				t.Fatalf("b got %q from %v", got, from)
			}
			if _, err := sb.WriteToUDPAddrPort([]byte("hello a"), from); err != nil {
				t.Fatal(err)
			}
			if got, from := readWithin(t, sa, 5*time.Second); string(got) != "hello a" || from != ap(addrB, 6000) {
				t.Fatalf("a got %q from %v", got, from)
			}
			sta, stb := p.a.Stats(), p.b.Stats()
			if sta.ARPOutRequests == 0 || stb.ARPOutReplies == 0 || stb.ARPInRequests == 0 {
				t.Fatalf("ARP: a %+v b %+v", sta, stb)
			}
			// B learned A from A's request: it needed no request of its own.
			if stb.ARPOutRequests != 0 {
				t.Fatalf("b asked for a's address though a's request told it: %d requests", stb.ARPOutRequests)
			}
			c := p.b.SocketCounters()
			switch mode {
			case ModeNAPI:
				if c.Parks.Load() == 0 || c.Wakeups.Load() == 0 {
					t.Fatalf("napi: parks %d wake-ups %d", c.Parks.Load(), c.Wakeups.Load())
				}
			case ModePMD:
				if c.Spins.Load() == 0 || c.Parks.Load() != 0 {
					t.Fatalf("pmd: spins %d parks %d", c.Spins.Load(), c.Parks.Load())
				}
			}
		})
	}
}

func TestFragmentationAndReassembly(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) { fragmentAndReassemble(t, offload) })
	}
}

// fragmentAndReassemble sends datagrams that fit and that do not: with
// checksum offload, those that go in fragments have their checksum done in
// software first, as fragments cannot leave it to the device.
func fragmentAndReassemble(t *testing.T, offload bool) {
	p := newPair(t, ModeNAPI, wire.Config{ChecksumOffload: offload}, 1500)
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	sb, _ := p.b.ListenUDP(ap(addrB, 7000))
	for _, size := range []int{1472, 1473, 4000, 9000, MaxUDPPayload} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i*31 + size)
		}
		if _, err := sa.WriteToUDPAddrPort(msg, ap(addrB, 7000)); err != nil {
			t.Fatalf("send %d: %v", size, err)
		}
		got, _ := readWithin(t, sb, 5*time.Second)
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d-byte datagram arrived as %d bytes, or changed", size, len(got))
		}
	}
	st := p.a.Stats()
	if st.IPFragOKs != 4 || st.IPFragCreates < 2+3+7+45 {
		t.Fatalf("fragmented %d datagrams into %d fragments", st.IPFragOKs, st.IPFragCreates)
	}
	if rb := p.b.Stats(); rb.ReasmOKs != 4 {
		t.Fatalf("reassembled %d", rb.ReasmOKs)
	}
	if _, err := sa.WriteToUDPAddrPort(make([]byte, MaxUDPPayload+1), ap(addrB, 7000)); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversized datagram: %v", err)
	}
}

func TestPortUnreachableAndLoopback(t *testing.T) {
	p := newPair(t, ModePMD, wire.Config{}, 0)
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	sa.WriteToUDPAddrPort([]byte("anyone?"), ap(addrB, 9999))
	deadline := time.Now().Add(5 * time.Second)
	for p.a.Stats().ICMPInMsgs == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.b.Stats().UDPNoPorts != 1 || p.b.Stats().ICMPOutDestUnreachs != 1 || p.a.Stats().ICMPInMsgs != 1 {
		t.Fatalf("port unreachable: b %+v a %+v", p.b.Stats(), p.a.Stats())
	}
	// To our own address, and to 127.0.0.1: through the loopback backlog.
	own, _ := p.a.ListenUDP(ap(addrA, 4000))
	lo, _ := p.a.ListenUDP(netip.MustParseAddrPort("127.0.0.1:4001"))
	sa.WriteToUDPAddrPort([]byte("self"), ap(addrA, 4000))
	sa.WriteToUDPAddrPort([]byte("lo"), netip.MustParseAddrPort("127.0.0.1:4001"))
	if got, _ := readWithin(t, own, 5*time.Second); string(got) != "self" {
		t.Fatalf("self got %q", got)
	}
	if got, from := readWithin(t, lo, 5*time.Second); string(got) != "lo" || from.Addr() != addrA.Addr() {
		t.Fatalf("loopback got %q from %v", got, from)
	}
	if _, err := p.a.ListenUDP(ap(addrA, 4000)); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second bind: %v", err)
	}
	if _, err := p.a.ListenUDP(ap(addrB, 1)); !errors.Is(err, ErrAddrNotAvail) {
		t.Fatalf("bind to another host's address: %v", err)
	}
}

func TestMalformedFramesAreCountedNotFatal(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 0)
	pool, _ := engine.NewPool("garbage", 256, 16)
	defer pool.Close()
	var cs engine.Caches
	defer cs.Flush()
	bmac := p.wire.Ports[1].Info().MAC
	frames := [][]byte{
		{1, 2, 3},                            // shorter than an Ethernet header
		append(bmac[:], make([]byte, 50)...), // EtherType 0 (an 802.3 length)
		append(append(bmac[:], 0, 0, 0, 0, 0, 1, 0x08, 0x00), 0x45, 0, 0, 10), // IPv4 cut short
		append(append(bmac[:], 0, 0, 0, 0, 0, 1, 0x08, 0x06), 1, 2, 3),        // ARP cut short
	}
	ipBadSum := append(append(bmac[:], 0, 0, 0, 0, 0, 1, 0x08, 0x00),
		0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0xde, 0xad, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0)
	frames = append(frames, ipBadSum)
	for _, f := range frames {
		m, _ := cs.Alloc(pool)
		b, _ := m.Append(len(f))
		copy(b, f)
		p.wire.Ports[0].TxBurst(0, []engine.Mbuf{m})
	}
	p.wire.Ports[0].ReapTx(0)
	deadline := time.Now().Add(5 * time.Second)
	for p.b.Stats().EthInFrames < uint64(len(frames)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := p.b.Stats()
	if st.EthInErrors+st.EthUnknownType != 2 || st.IPInHdrErrors != 2 || st.ARPInErrors != 1 {
		t.Fatalf("malformed frames: %+v", st)
	}
}

func TestReadHandlerRunsInThePollLoop(t *testing.T) {
	p := newPair(t, ModePMD, wire.Config{}, 0)
	sb, _ := p.b.ListenUDP(ap(addrB, 7777))
	var got atomic.Int32
	// An echo server that lives in b's poll loop: it never blocks.
	sb.SetReadHandler(func(c *UDPConn) {
		buf := make([]byte, 2048)
		for {
			n, from, ok := c.TryRead(buf)
			if !ok {
				return
			}
			got.Add(1)
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	for i := 0; i < 100; i++ {
		sa.WriteToUDPAddrPort([]byte{byte(i)}, ap(addrB, 7777))
		if b, _ := readWithin(t, sa, 5*time.Second); len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("echo %d: %v", i, b)
		}
	}
	if got.Load() != 100 {
		t.Fatalf("handler saw %d datagrams", got.Load())
	}
}

func TestPollerOverUDPSockets(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 0)
	poller := socket.NewPoller(p.b.SocketCounters())
	defer poller.Close()
	var socks []*UDPConn
	for i := 0; i < 3; i++ {
		c, _ := p.b.ListenUDP(ap(addrB, uint16(8000+i)))
		poller.Add(c, socket.Readable, uint64(i))
		socks = append(socks, c)
	}
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	sa.WriteToUDPAddrPort([]byte("x"), ap(addrB, 8002))
	ev := make([]socket.Event, 4)
	n, err := poller.Wait(ev, 5*time.Second)
	if err != nil || n != 1 || ev[0].Data != 2 {
		t.Fatalf("poller: %d events %+v, %v", n, ev[:n], err)
	}
	if b, _, ok := socks[2].TryRead(make([]byte, 10)); !ok || b != 1 {
		t.Fatal("ready socket had nothing to read")
	}
}

func TestReceiveBufferDropsAndCounts(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 0)
	sb, _ := p.b.ListenUDP(ap(addrB, 7100))
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	// Resolve b's address first, so the flood meets the socket, not ARP.
	sa.WriteToUDPAddrPort([]byte("first"), ap(addrB, 7100))
	readWithin(t, sb, 5*time.Second)
	const sent = 400 // 212992 bytes hold 97 buffers of 2176 bytes
	for i := 0; i < sent; i++ {
		sa.WriteToUDPAddrPort([]byte("fill"), ap(addrB, 7100))
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.b.Stats().UDPInDatagrams+p.b.Stats().UDPRcvbufErrors < sent+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := p.b.Stats()
	if st.UDPRcvbufErrors == 0 || st.UDPInDatagrams+st.UDPRcvbufErrors != sent+1 || sb.Drops() != st.UDPRcvbufErrors {
		t.Fatalf("queued %d, dropped %d (socket says %d)", st.UDPInDatagrams, st.UDPRcvbufErrors, sb.Drops())
	}
}

// TestForwarding routes between two links through a third stack, which
// fragments for its narrower second link.
func TestForwarding(t *testing.T) {
	left, err := wire.NewPair(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	right, err := wire.NewPair(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	def := netip.MustParsePrefix("0.0.0.0/0")
	mk := func(cfg Config) *Stack {
		cfg.Idle = engine.IdleSpinYield
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ModeNAPI, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := mk(Config{Name: "a", Interfaces: []Interface{{Port: left.Ports[0], Addr: netip.MustParsePrefix("198.18.0.1/24")}},
		Routes: []Route{{Prefix: def, Via: netip.MustParseAddr("198.18.0.254"), Dev: 1}}})
	r := mk(Config{Name: "r", Forwarding: true, Interfaces: []Interface{
		{Port: left.Ports[1], Addr: netip.MustParsePrefix("198.18.0.254/24")},
		{Port: right.Ports[0], Addr: netip.MustParsePrefix("198.18.1.254/24"), MTU: 1000}}})
	b := mk(Config{Name: "b", Interfaces: []Interface{{Port: right.Ports[1], Addr: netip.MustParsePrefix("198.18.1.2/24"), MTU: 1000}},
		Routes: []Route{{Prefix: def, Via: netip.MustParseAddr("198.18.1.254"), Dev: 1}}})
	t.Cleanup(func() {
		for _, s := range []*Stack{a, r, b} {
			if err := s.Close(); err != nil {
				t.Errorf("%s: %v", s.Name(), err)
			}
		}
		for _, p := range append(left.Ports[:], right.Ports[:]...) {
			p.Close()
		}
	})
	sa, _ := a.ListenUDP(netip.MustParseAddrPort("198.18.0.1:1000"))
	sb, _ := b.ListenUDP(netip.MustParseAddrPort("198.18.1.2:2000"))
	msg := bytes.Repeat([]byte("routed "), 200) // 1400 bytes: fragmented by r
	if _, err := sa.WriteToUDPAddrPort(msg, netip.MustParseAddrPort("198.18.1.2:2000")); err != nil {
		t.Fatal(err)
	}
	got, from := readWithin(t, sb, 5*time.Second)
	if !bytes.Equal(got, msg) || from != netip.MustParseAddrPort("198.18.0.1:1000") {
		t.Fatalf("b got %d bytes from %v", len(got), from)
	}
	sb.WriteToUDPAddrPort([]byte("back"), from)
	if got, _ := readWithin(t, sa, 5*time.Second); string(got) != "back" {
		t.Fatalf("a got %q", got)
	}
	st := r.Stats()
	if st.IPForwDatagrams != 2 || st.IPFragOKs != 1 || st.IPInDelivers != 0 {
		t.Fatalf("router: forwarded %d, fragmented %d, delivered %d", st.IPForwDatagrams, st.IPFragOKs, st.IPInDelivers)
	}
	// Without forwarding, the router drops what is not for it.
	r.SetForwarding(false)
	sa.WriteToUDPAddrPort(msg, netip.MustParseAddrPort("198.18.1.2:2000"))
	deadline := time.Now().Add(2 * time.Second)
	for r.Stats().IPInAddrErrors == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r.Stats().IPInAddrErrors != 1 {
		t.Fatalf("forwarding off: %d address errors", r.Stats().IPInAddrErrors)
	}
}

// TestPrependNeverWritesSharedHeadroom: a header for a packet that shares
// its buffer goes in a segment of its own, so the other holder's bytes and
// headroom are untouched; a packet of our own takes the header in place.
func TestPrependNeverWritesSharedHeadroom(t *testing.T) {
	s, err := New(Config{Name: "prepend"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sh := s.shards[0]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	orig, _ := sh.cs.Alloc(s.pool)
	b, _ := orig.Append(4)
	copy(b, "data")
	clone, err := sh.cs.Clone(orig, s.pool)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), orig.Data()...)
	m, hdr := sh.prepend(clone, 20)
	if m == engine.NoMbuf || len(hdr) != 20 || m.Segs() != 2 || m.PktLen() != 24 {
		t.Fatalf("clone: %v segments %d length %d header %d", m, m.Segs(), m.PktLen(), len(hdr))
	}
	copy(hdr, bytes.Repeat([]byte{0xff}, 20))
	sh.cs.Free(m)
	if orig.Headroom() != engine.Headroom || !bytes.Equal(orig.Data(), before) {
		t.Fatal("the header went into the shared buffer")
	}
	own, hdr := sh.prepend(orig, 14)
	if own != orig || own.Segs() != 1 || len(hdr) != 14 {
		t.Fatalf("own packet: %v segments %d", own, own.Segs())
	}
	sh.cs.Free(own)
}

func TestTwoPollModeStacksPinnedToOneCoreAreRefusedAtStart(t *testing.T) {
	wp, err := wire.NewPair(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer wp.Ports[1].Close()
	defer wp.Ports[0].Close()
	var stacks []*Stack
	for i, addr := range []netip.Prefix{addrA, addrB} {
		s, err := New(Config{Name: "pinned", Interfaces: []Interface{{Port: wp.Ports[i], Addr: addr}}, Idle: engine.IdleSpinYield})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stacks = append(stacks, s)
	}
	if err := stacks[0].Start(ModePMD, 0, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := stacks[1].Start(ModePMD, 0, engine.SoftirqConfig{}); err == nil {
		t.Fatal("a second busy stack on core 0 started")
	}
}

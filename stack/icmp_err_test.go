package stack

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/socket"
)

func TestPortUnreachableRefusesTheConnectedSocketsNextReadInBothModes(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			closed := ap(addrB, 9999) // nobody listens there on b
			c, err := p.a.DialUDP(netip.AddrPort{}, closed)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 100))
			if !errors.Is(err, syscall.ECONNREFUSED) || !isOpError(err, "read", syscall.ECONNREFUSED) {
				t.Fatalf("read after port unreachable: %v; want ECONNREFUSED", err)
			}
			// Reported once, then cleared, as sk_err is.
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.Read(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("second read: %v; want a timeout", err)
			}
			// An unconnected socket is not told (no IP_RECVERR).
			u, _ := p.a.ListenUDP(ap(addrA, 0))
			before := p.a.Stats().ICMPInMsgs
			u.WriteToUDPAddrPort([]byte("anyone?"), closed)
			deadline := time.Now().Add(5 * time.Second)
			for p.a.Stats().ICMPInMsgs == before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			u.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := u.ReadFromUDPAddrPort(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("unconnected socket's read: %v; want a timeout", err)
			}
		})
	}
}

// forger injects ICMP errors into a stack that is not started, as if they
// came from a host on its link.
type forger struct {
	s    *Stack
	port engine.Port
	mac  eth.MAC
	pool *engine.Pool
	cs   engine.Caches
	pkts [1]engine.Mbuf
	buf  []byte
}

var forgedFrom = [4]byte{198, 18, 0, 9}

func newForger(t *testing.T) *forger {
	t.Helper()
	wp, err := wire.NewPair(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Name: "victim", Interfaces: []Interface{{Port: wp.Ports[0], Addr: addrA}}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := engine.NewPool("forged", 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &forger{s: s, port: wp.Ports[0], mac: eth.MAC(wp.Ports[0].Info().MAC), pool: pool, buf: make([]byte, 128)}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		f.cs.Flush()
		if err := pool.Close(); err != nil {
			t.Errorf("forged pool: %v", err)
		}
		for _, p := range wp.Ports {
			p.Close()
		}
	})
	return f
}

// send injects an ICMP error of typ and code about a datagram of protocol
// proto from local to remote, quoting quoteLen bytes after its IP header.
func (f *forger) send(typ, code uint8, proto uint8, local, remote netip.AddrPort, quoteLen int) {
	b := f.buf
	eth.Header{Dst: f.mac, Src: eth.MAC{2, 0, 0, 0, 0, 9}, Type: eth.TypeIPv4}.Put(b)
	ipOff := eth.HeaderLen
	icmpOff := ipOff + ipv4.HeaderLen
	var quoted [ipv4.HeaderLen + 8]byte
	ipv4.Header{TotalLen: ipv4.HeaderLen + 8 + 7, TTL: 64, Protocol: proto,
		Src: local.Addr().As4(), Dst: remote.Addr().As4()}.Put(quoted[:], nil)
	binary.BigEndian.PutUint16(quoted[20:], local.Port())
	binary.BigEndian.PutUint16(quoted[22:], remote.Port())
	binary.BigEndian.PutUint16(quoted[24:], 8+7)
	var n int
	if typ == icmp.TypeTimeExceeded {
		n, _ = icmp.PutTimeExceeded(b[icmpOff:], code, quoted[:ipv4.HeaderLen+quoteLen])
	} else {
		n, _ = icmp.PutDestUnreachable(b[icmpOff:], code, 0, quoted[:ipv4.HeaderLen+quoteLen])
	}
	b[icmpOff] = typ
	binary.BigEndian.PutUint16(b[icmpOff+2:], 0)
	binary.BigEndian.PutUint16(b[icmpOff+2:], ipv4.Checksum(b[icmpOff:icmpOff+n], 0))
	ipv4.Header{TotalLen: uint16(ipv4.HeaderLen + n), TTL: 64, Protocol: ipv4.ProtoICMP,
		Src: forgedFrom, Dst: addrA.Addr().As4()}.Put(b[ipOff:], nil)
	m, err := f.cs.Alloc(f.pool)
	if err != nil {
		panic(err)
	}
	d, _ := m.Append(icmpOff + n)
	copy(d, b)
	f.pkts[0] = m
	f.s.Input(nil, engine.QueueRef{Port: f.port}, f.pkts[:])
}

// TestICMPErrorsForOtherFlowsDoNothing: an error reaches a connected
// socket only when it is hard and quotes exactly the socket's flow.
func TestICMPErrorsForOtherFlowsDoNothing(t *testing.T) {
	f := newForger(t)
	local := ap(addrA, 5555)
	remote := netip.AddrPortFrom(netip.AddrFrom4(forgedFrom), 53)
	c, err := f.s.DialUDP(local, remote)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.s.ListenUDP(ap(addrA, 6000))
	other := func(a netip.AddrPort, port uint16) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), port) }
	unreach, port := icmp.TypeDestUnreachable, icmp.CodePortUnreachable
	for _, e := range []struct {
		name          string
		typ, code     uint8
		proto         uint8
		local, remote netip.AddrPort
		quote         int
	}{
		{"another remote port", unreach, port, ipv4.ProtoUDP, local, other(remote, 54), 8},
		{"another local port", unreach, port, ipv4.ProtoUDP, other(local, 5556), remote, 8},
		{"another remote host", unreach, port, ipv4.ProtoUDP, local, netip.MustParseAddrPort("198.18.0.10:53"), 8},
		{"another local address", unreach, port, ipv4.ProtoUDP, netip.MustParseAddrPort("198.18.0.3:5555"), remote, 8},
		{"another protocol", unreach, port, ipv4.ProtoTCP, local, remote, 8},
		{"a quote cut short", unreach, port, ipv4.ProtoUDP, local, remote, 4},
		{"a soft error (host unreachable)", unreach, icmp.CodeHostUnreachable, ipv4.ProtoUDP, local, remote, 8},
		{"a soft error (fragmentation needed)", unreach, icmp.CodeFragNeeded, ipv4.ProtoUDP, local, remote, 8},
		{"a soft error (time exceeded)", icmp.TypeTimeExceeded, 0, ipv4.ProtoUDP, local, remote, 8},
		{"not an error (source quench)", icmp.TypeSourceQuench, 0, ipv4.ProtoUDP, local, remote, 8},
		{"an unconnected socket's flow", unreach, port, ipv4.ProtoUDP, ap(addrA, 6000), remote, 8},
	} {
		f.send(e.typ, e.code, e.proto, e.local, e.remote, e.quote)
		if c.Readiness()&socket.Readable != 0 || u.Readiness()&socket.Readable != 0 {
			t.Errorf("%s: the sockets became readable", e.name)
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: connected socket read %v", e.name, err)
		}
	}
	// The flow itself: refused, once.
	f.send(unreach, port, ipv4.ProtoUDP, local, remote, 8)
	c.SetReadDeadline(time.Now().Add(time.Second)) // the error is there at once, or never
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("error for the socket's own flow: read %v", err)
	}
	// Protocol unreachable is hard too.
	f.send(unreach, icmp.CodeProtoUnreachable, ipv4.ProtoUDP, local, remote, 8)
	var oe *net.OpError
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ENOPROTOOPT) || !errors.As(err, &oe) {
		t.Fatalf("protocol unreachable: read %v", err)
	}
}

// TestForgedICMPErrorsDoNotAllocate floods a stack with errors, about flows
// it has and flows it does not: none costs an allocation.
func TestForgedICMPErrorsDoNotAllocate(t *testing.T) {
	f := newForger(t)
	local := ap(addrA, 5555)
	remote := netip.AddrPortFrom(netip.AddrFrom4(forgedFrom), 53)
	if _, err := f.s.DialUDP(local, remote); err != nil {
		t.Fatal(err)
	}
	unreach, port := icmp.TypeDestUnreachable, icmp.CodePortUnreachable
	if a := testing.AllocsPerRun(500, func() {
		f.send(unreach, port, ipv4.ProtoUDP, local, netip.AddrPortFrom(remote.Addr(), 9), 8)
	}); a != 0 {
		t.Errorf("an error for a flow not ours: %v allocations", a)
	}
	if a := testing.AllocsPerRun(500, func() {
		f.send(unreach, port, ipv4.ProtoUDP, local, remote, 8)
	}); a != 0 {
		t.Errorf("an error for our flow: %v allocations", a)
	}
}

package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// TestMartiansFromTheWireAreDroppedAndCounted sends what
// ip_route_input_slow calls martians: none reaches a socket, each is
// counted, and a real datagram still gets through.
func TestMartiansFromTheWireAreDroppedAndCounted(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	lo, err := l.s.ListenUDP(netip.MustParseAddrPort("127.0.0.1:53"))
	if err != nil {
		t.Fatal(err)
	}
	any, err := l.s.ListenUDP(netip.MustParseAddrPort("0.0.0.0:54"))
	if err != nil {
		t.Fatal(err)
	}
	peer := rawAddr("198.18.0.1")
	martianDst := []struct {
		name     string
		src, dst [4]byte
	}{
		{"to 127.0.0.1", peer, rawAddr("127.0.0.1")},
		{"to 127.1.2.3", peer, rawAddr("127.1.2.3")},
		{"to 0.1.2.3", peer, rawAddr("0.1.2.3")},
	}
	martianSrc := []struct {
		name     string
		src, dst [4]byte
	}{
		{"from 127.0.0.1", rawAddr("127.0.0.1"), l.ours()},
		{"from our own address", l.ours(), l.ours()},
		{"from the subnet broadcast", rawAddr("198.18.0.255"), l.ours()},
		{"from 255.255.255.255", rawAddr("255.255.255.255"), l.ours()},
		{"from a multicast group", rawAddr("224.0.0.1"), l.ours()},
		{"from 0.0.0.0 to a unicast address", rawAddr("0.0.0.0"), l.ours()},
		{"from 0.1.2.3", rawAddr("0.1.2.3"), l.ours()},
		{"from 127.0.0.1 to the limited broadcast", rawAddr("127.0.0.1"), rawAddr("255.255.255.255")},
		{"from our own address to the subnet broadcast", l.ours(), rawAddr("198.18.0.255")},
	}
	for _, c := range martianDst {
		l.send(l.udpTo(c.src, c.dst, 1000, 53, []byte(c.name)))
	}
	for _, c := range martianSrc {
		l.send(l.udpTo(c.src, c.dst, 1000, 54, []byte(c.name)))
	}
	st := l.settle()
	if st.IPInMartianDst != uint64(len(martianDst)) || st.IPInMartianSrc != uint64(len(martianSrc)) {
		t.Errorf("martian destinations %d (want %d), sources %d (want %d)",
			st.IPInMartianDst, len(martianDst), st.IPInMartianSrc, len(martianSrc))
	}
	if st.IPInAddrErrors != uint64(len(martianDst)) {
		t.Errorf("address errors %d, want one per martian destination (%d)", st.IPInAddrErrors, len(martianDst))
	}
	if st.UDPInDatagrams != 0 || st.UDPNoPorts != 0 || st.IPInDelivers != 0 {
		t.Errorf("martians delivered: %d datagrams, %d to no port, %d delivered", st.UDPInDatagrams, st.UDPNoPorts, st.IPInDelivers)
	}
	for _, c := range []*UDPConn{lo, any} {
		if n, from, ok := c.TryRead(make([]byte, 100)); ok {
			t.Errorf("socket %v got %d bytes from %v", c.LocalAddrPort(), n, from)
		}
	}
	l.quiet("martians")

	// What Linux accepts: 0.0.0.0 to the limited broadcast (a DHCP client),
	// and a real peer.
	l.send(l.udpTo(rawAddr("0.0.0.0"), rawAddr("255.255.255.255"), 68, 54, []byte("dhcp")))
	l.send(l.udpTo(peer, l.ours(), 1000, 54, []byte("real")))
	for _, want := range []string{"dhcp", "real"} {
		if got, _ := readWithin(t, any, 5*time.Second); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if st := l.s.Stats(); st.IPInMartianSrc != uint64(len(martianSrc)) {
		t.Fatalf("legitimate datagrams counted as martians: %d", st.IPInMartianSrc)
	}
}

// TestAllOf127Slash8IsLocal: like Linux's local table, any 127.x.y.z is this
// host, reached through the loopback device.
func TestAllOf127Slash8IsLocal(t *testing.T) {
	s, err := New(Config{Name: "lo8", Idle: engine.IdleSpinYield})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(ModeNAPI, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	srv, err := s.ListenUDP(netip.MustParseAddrPort("127.0.0.5:7000"))
	if err != nil {
		t.Fatalf("bind 127.0.0.5: %v", err)
	}
	cl, err := s.ListenUDP(netip.MustParseAddrPort("127.1.2.3:0"))
	if err != nil {
		t.Fatalf("bind 127.1.2.3: %v", err)
	}
	if _, err := cl.WriteToUDPAddrPort([]byte("hi"), srv.LocalAddrPort()); err != nil {
		t.Fatal(err)
	}
	got, from := readWithin(t, srv, 5*time.Second)
	if string(got) != "hi" || from != cl.LocalAddrPort() {
		t.Fatalf("got %q from %v", got, from)
	}
	if st := s.Stats(); st.IPInMartianSrc+st.IPInMartianDst != 0 {
		t.Fatalf("loopback traffic counted as martian: %+v", st)
	}
}

// TestASlash31HasNoBroadcastAddress follows RFC 3021: on a /31 both
// addresses are hosts, so the peer is reached by ARP and unicast, and a
// datagram for the peer's address is not ours.
func TestASlash31HasNoBroadcastAddress(t *testing.T) {
	l := newRawLink(t, netip.MustParsePrefix("198.18.0.0/31"), wire.Config{}, nil)
	c, err := l.s.ListenUDP(netip.MustParseAddrPort("0.0.0.0:9"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort([]byte("to peer"), netip.MustParseAddrPort("198.18.0.1:9")); err != nil {
		t.Fatal(err)
	}
	got := l.recv(1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("the peer got %d frames", len(got))
	}
	eh, h, _ := parseSentIP(t, got[0])
	if eh.Dst != l.mac || h.Dst != rawAddr("198.18.0.1") {
		t.Fatalf("sent to %v (%v), want unicast to %v", eh.Dst, netip.AddrFrom4(h.Dst), l.mac)
	}
	if len(l.arpReqs) != 1 || l.arpReqs[0] != rawAddr("198.18.0.1") {
		t.Fatalf("ARP requests %v: the peer was not resolved", l.arpReqs)
	}
	// The peer's own address arriving at us is not for us.
	l.send(l.udpTo(rawAddr("198.18.0.1"), rawAddr("198.18.0.1"), 9, 9, []byte("x")))
	if _, _, ok := c.TryRead(make([]byte, 10)); ok {
		t.Fatal("a datagram for the peer's address was delivered to us")
	}
}

// TestTaggedFramesAreDroppedAndCounted: no VLAN device exists, so a frame
// with an 802.1Q or 802.1ad tag, whatever its VLAN ID, is not ours.
func TestTaggedFramesAreDroppedAndCounted(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	peer := rawAddr("198.18.0.1")
	untagged := l.echoTo(peer, l.ours(), 1)
	tag := func(f []byte, tpid uint16, tci uint16) []byte {
		out := append([]byte(nil), f[:12]...)
		out = append(out, byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci))
		return append(out, f[12:]...)
	}
	frames := [][]byte{
		tag(untagged, eth.TypeVLAN, 5),                       // VLAN 5
		tag(untagged, eth.TypeVLAN, 0),                       // priority tag only
		tag(tag(untagged, eth.TypeVLAN, 7), eth.TypeQinQ, 9), // 802.1ad outer tag
		tag(tag(untagged, eth.TypeVLAN, 7), eth.TypeVLAN, 9), // two 802.1Q tags
	}
	l.send(frames...)
	st := l.settle()
	if st.EthVLANDropped != uint64(len(frames)) || st.IPInReceives != 0 || st.ICMPInEchos != 0 {
		t.Fatalf("tagged frames: %d dropped, %d IP datagrams received, %d echo requests",
			st.EthVLANDropped, st.IPInReceives, st.ICMPInEchos)
	}
	l.quiet("tagged echo requests")
	l.send(untagged)
	if got := l.recv(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("untagged echo: %d replies", len(got))
	}
}

// TestAReassembledDatagramWhoseFirstFragmentIsSharedIsDelivered sends the
// first fragment of a UDP datagram and of an echo request as a clone over a
// zero-copy wire: the stack must not write the shared bytes, and must still
// deliver both.
func TestAReassembledDatagramWhoseFirstFragmentIsSharedIsDelivered(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{ZeroCopy: true}, nil)
	c, err := l.s.ListenUDP(ap(addrB, 7000))
	if err != nil {
		t.Fatal(err)
	}
	peer := rawAddr("198.18.0.1")
	msg := bytes.Repeat([]byte("0123456789abcdef"), 100) // 1600 bytes: two fragments
	// fragments cuts an IP payload at byte 1024 into two frames.
	fragments := func(proto uint8, id uint16, payload []byte) (first, second []byte) {
		h := ipv4.Header{Protocol: proto, ID: id, Src: peer, Dst: l.ours(), Flags: ipv4.FlagMF}
		first = ipFrame(l.stackMAC, l.mac, h, payload[:1024])
		h.Flags, h.FragOff = 0, 1024
		second = ipFrame(l.stackMAC, l.mac, h, payload[1024:])
		return first, second
	}
	var originals []engine.Mbuf
	defer func() { l.cs.FreeBulk(originals) }()
	sendShared := func(f []byte) {
		m, _ := l.cs.Alloc(l.pool)
		l.cs.AppendBytes(m, l.pool, f)
		cl, err := l.cs.Clone(m, l.pool)
		if err != nil {
			t.Fatal(err)
		}
		originals = append(originals, m) // the attacker keeps its reference
		l.sendMbufs(cl)
	}

	first, second := fragments(ipv4.ProtoUDP, 77, rawUDP(peer, l.ours(), 1000, 7000, msg))
	sendShared(first)
	l.send(second)
	if got, from := readWithin(t, c, 5*time.Second); !bytes.Equal(got, msg) || from.Port() != 1000 {
		t.Fatalf("UDP: got %d bytes from %v", len(got), from)
	}

	first, second = fragments(ipv4.ProtoICMP, 78, rawEcho(9, msg))
	sendShared(first)
	l.send(second)
	got := l.recv(1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("fragmented echo request: %d replies", len(got))
	}
	if _, m := parseSentICMP(t, got[0]); m.Type != icmp.TypeEchoReply || m.Seq != 9 || !bytes.Equal(m.Body, msg) {
		t.Fatalf("echo reply: type %d seq %d, %d bytes", m.Type, m.Seq, len(m.Body))
	}
	// The attacker's bytes are as it wrote them.
	for _, m := range originals {
		if h, _ := ipv4.Parse(m.Data()[eth.HeaderLen:]); h.TotalLen != 20+1024 || !h.MF() {
			t.Fatalf("the shared first fragment was rewritten: %+v", h)
		}
	}
	if st := l.s.Stats(); st.UDPInErrors+st.ICMPInErrors != 0 || st.ReasmOKs != 2 {
		t.Fatalf("errors UDP %d ICMP %d, reassembled %d", st.UDPInErrors, st.ICMPInErrors, st.ReasmOKs)
	}
}

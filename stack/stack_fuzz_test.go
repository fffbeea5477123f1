package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/arp"
	"github.com/pollnet/pollnet/stack/eth"
	"github.com/pollnet/pollnet/stack/icmp"
	"github.com/pollnet/pollnet/stack/ipv4"
	"github.com/pollnet/pollnet/stack/udp"
)

// fuzzLink is a stack on port 1 of a wire pair and a hand-built host on port
// 0. The stack is not started: the test moves every frame itself, so a run
// is deterministic and a fuzz input replays exactly.
type fuzzLink struct {
	t    testing.TB
	wp   *wire.Pair
	st   *Stack
	pool *engine.Pool // the host's transmit buffers
	cs   engine.Caches
	host eth.MAC // the hand-built host's MAC
	us   eth.MAC // the stack's MAC
	rx   [engine.Burst]engine.Mbuf
}

var (
	fuzzStackAddr = netip.MustParsePrefix("198.18.1.2/24")
)

func newFuzzLink(t testing.TB) *fuzzLink {
	t.Helper()
	wp, err := wire.NewPair(wire.Config{PoolSize: 1024, RingSize: 512, MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	l := &fuzzLink{t: t, wp: wp, host: eth.MAC(wp.Ports[0].Info().MAC), us: eth.MAC(wp.Ports[1].Info().MAC)}
	if l.pool, err = engine.NewPool("raw-host", 512, 32); err != nil {
		t.Fatal(err)
	}
	l.st, err = New(Config{Name: "fuzzed", PoolSize: 1024, Interfaces: []Interface{{Port: wp.Ports[1], Addr: fuzzStackAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// close tears everything down and fails the test if any mbuf is missing:
// each pool refuses to close while one of its mbufs is still out.
func (l *fuzzLink) close() {
	l.t.Helper()
	if err := l.st.Close(); err != nil {
		l.t.Errorf("stack close (an mbuf leaked?): %v", err)
	}
	for _, p := range l.wp.Ports {
		if err := p.Close(); err != nil {
			l.t.Errorf("wire close (an mbuf leaked?): %v", err)
		}
	}
	l.cs.Flush()
	if err := l.pool.Close(); err != nil {
		l.t.Errorf("host pool close: %v", err)
	}
}

// send puts frames on the wire from the host and runs the stack over them.
func (l *fuzzLink) send(frames ...[]byte) {
	for _, f := range frames {
		m, err := l.cs.Alloc(l.pool)
		if err != nil {
			l.t.Fatalf("host pool: %v", err)
		}
		if err := l.cs.AppendBytes(m, l.pool, f); err != nil {
			l.cs.Free(m)
			continue // longer than a packet may be: nothing to send
		}
		if l.wp.Ports[0].TxBurst(0, []engine.Mbuf{m}) != 1 {
			l.cs.Free(m)
		}
		l.pump()
	}
}

// pump runs the stack's receive path until every queue is empty.
func (l *fuzzLink) pump() {
	for more := true; more; {
		more = false
		for _, q := range l.st.Queues() {
			if n := q.Port.RxBurst(q.Queue, l.rx[:]); n > 0 {
				l.st.Input(nil, q, l.rx[:n])
				more = true
			}
		}
	}
}

// received takes every frame the stack sent to the host, as byte copies.
func (l *fuzzLink) received() [][]byte {
	var out [][]byte
	for {
		n := l.wp.Ports[0].RxBurst(0, l.rx[:])
		if n == 0 {
			return out
		}
		for _, m := range l.rx[:n] {
			b := make([]byte, m.PktLen())
			m.CopyOut(b, 0)
			out = append(out, b)
		}
		engine.Free(l.rx[0])
		for _, m := range l.rx[1:n] {
			engine.Free(m)
		}
	}
}

// ipFrame builds an Ethernet frame holding one IPv4 datagram.
func ipFrame(dst, src eth.MAC, h ipv4.Header, payload []byte) []byte {
	b := make([]byte, eth.HeaderLen+ipv4.HeaderLen+len(payload))
	eth.Header{Dst: dst, Src: src, Type: eth.TypeIPv4}.Put(b)
	h.TotalLen = uint16(ipv4.HeaderLen + len(payload))
	if h.TTL == 0 {
		h.TTL = 64
	}
	h.Put(b[eth.HeaderLen:], nil)
	copy(b[eth.HeaderLen+ipv4.HeaderLen:], payload)
	return b
}

func (l *fuzzLink) arpRequest(from [4]byte, mac eth.MAC, target [4]byte) []byte {
	b := make([]byte, arp.FrameLen)
	arp.PutRequest(b, mac, from, target)
	return b
}

func (l *fuzzLink) echoRequest(from [4]byte, mac eth.MAC, to [4]byte, seq uint16) []byte {
	p := make([]byte, icmp.HeaderLen+32)
	icmp.PutEcho(p, icmp.TypeEchoRequest, 0x77, seq, bytes.Repeat([]byte{0xab}, 32))
	return ipFrame(l.us, mac, ipv4.Header{Protocol: ipv4.ProtoICMP, Src: from, Dst: to, ID: seq}, p)
}

func (l *fuzzLink) udpDatagram(from [4]byte, mac eth.MAC, sport uint16, to [4]byte, dport uint16, data []byte) []byte {
	p := make([]byte, udp.HeaderLen+len(data))
	udp.Header{SrcPort: sport, DstPort: dport, Length: uint16(len(p))}.Put(p)
	copy(p[udp.HeaderLen:], data)
	udp.SetChecksum(p, from, to)
	return ipFrame(l.us, mac, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: from, Dst: to}, p)
}

// answerARP replies, as the host, to any request the stack made for ip.
func (l *fuzzLink) answerARP(frames [][]byte, ip [4]byte) (rest [][]byte) {
	for _, f := range frames {
		h, err := eth.Parse(f)
		if err == nil && h.Type == eth.TypeARP {
			if p, err := arp.Parse(f[h.Len():]); err == nil && p.Op == arp.OpRequest && p.TargetIP == ip {
				r := make([]byte, arp.FrameLen)
				arp.PutReply(r, l.host, ip, p.SenderMAC, p.SenderIP)
				l.send(r)
				continue
			}
		}
		rest = append(rest, f)
	}
	return rest
}

// findIP returns the first IPv4 datagram of proto from src to dst among
// frames sent to mac, with its payload.
func findIP(frames [][]byte, mac eth.MAC, proto uint8, src, dst [4]byte) (ipv4.Header, []byte, bool) {
	for _, f := range frames {
		h, err := eth.Parse(f)
		if err != nil || h.Type != eth.TypeIPv4 || h.Dst != mac {
			continue
		}
		ih, err := ipv4.Parse(f[h.Len():])
		if err != nil || ih.Protocol != proto || ih.Src != src || ih.Dst != dst {
			continue
		}
		return ih, f[h.Len()+int(ih.HeaderLen) : h.Len()+int(ih.TotalLen)], true
	}
	return ipv4.Header{}, nil, false
}

// checkStillServes is what a legitimate host must still get after whatever
// came before: a ping answered and a UDP datagram echoed.
func (l *fuzzLink) checkStillServes(sock *UDPConn, round uint16) {
	l.t.Helper()
	us := fuzzStackAddr.Addr().As4()
	legit, legitMAC := [4]byte{198, 18, 1, 77}, l.host
	l.received() // whatever the input provoked
	l.send(l.arpRequest(legit, legitMAC, us))
	l.send(l.echoRequest(legit, legitMAC, us, 4000+round))
	out := l.answerARP(l.received(), legit)
	out = append(out, l.received()...)
	if _, p, ok := findIP(out, legitMAC, ipv4.ProtoICMP, us, legit); !ok || len(p) < icmp.HeaderLen || p[0] != icmp.TypeEchoReply ||
		binary.BigEndian.Uint16(p[6:8]) != 4000+round {
		l.t.Fatalf("a legitimate ping went unanswered (got %d frames); stack %+v", len(out), l.st.Stats())
	}

	// Drain whatever the input queued on the socket, then echo one datagram.
	buf := make([]byte, 70000)
	for {
		if _, _, ok := sock.TryRead(buf); !ok {
			break
		}
	}
	msg := []byte("legitimate datagram")
	l.send(l.udpDatagram(legit, legitMAC, 5555, us, 7, msg))
	n, from, ok := sock.TryRead(buf)
	if !ok || !bytes.Equal(buf[:n], msg) || from != netip.AddrPortFrom(netip.AddrFrom4(legit), 5555) {
		l.t.Fatalf("a legitimate datagram did not reach the socket (ok %v, %q from %v); stack %+v", ok, buf[:n], from, l.st.Stats())
	}
	if _, err := sock.WriteToUDPAddrPort(buf[:n], from); err != nil {
		l.t.Fatalf("echo: %v", err)
	}
	l.pump()
	out = l.answerARP(l.received(), legit)
	out = append(out, l.received()...)
	if _, p, ok := findIP(out, legitMAC, ipv4.ProtoUDP, us, legit); !ok || !bytes.Equal(p[udp.HeaderLen:], msg) {
		l.t.Fatalf("the UDP echo never left; stack %+v", l.st.Stats())
	}
}

// splitFrames cuts a fuzz input into frames, each led by a two-byte length.
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 && len(frames) < 64 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

func joinFrames(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// FuzzStackInput feeds arbitrary frames to a whole stack through a wire
// port and checks it stays whole: nothing panics, no mbuf leaks, and a
// legitimate host still gets its ping and UDP echo answered afterwards.
func FuzzStackInput(f *testing.F) {
	seed := &fuzzLink{}
	{
		wp, err := wire.NewPair(wire.Config{})
		if err != nil {
			f.Fatal(err)
		}
		seed.host, seed.us = eth.MAC(wp.Ports[0].Info().MAC), eth.MAC(wp.Ports[1].Info().MAC)
		wp.Ports[0].Close()
		wp.Ports[1].Close()
	}
	us := fuzzStackAddr.Addr().As4()
	spoof := [4]byte{198, 18, 1, 9}
	bcast := [4]byte{198, 18, 1, 255}
	frag := func(id uint16, off uint16, mf bool, n int) []byte {
		h := ipv4.Header{Protocol: ipv4.ProtoUDP, Src: spoof, Dst: us, ID: id, FragOff: off}
		if mf {
			h.Flags = ipv4.FlagMF
		}
		return ipFrame(seed.us, seed.host, h, bytes.Repeat([]byte{byte(off)}, n))
	}
	tagged := seed.echoRequest(spoof, seed.host, us, 1)
	tagged = append(append(append([]byte{}, tagged[:12]...), 0x81, 0x00, 0x00, 0x05), tagged[12:]...)
	f.Add(joinFrames(seed.arpRequest(spoof, seed.host, us), seed.echoRequest(spoof, seed.host, us, 1)))
	f.Add(joinFrames(seed.echoRequest([4]byte{127, 0, 0, 1}, seed.host, us, 2), seed.echoRequest(spoof, seed.host, bcast, 3)))
	f.Add(joinFrames(seed.udpDatagram(spoof, seed.host, 9, us, 7, []byte("x")), seed.udpDatagram(spoof, seed.host, 9, us, 99, []byte("closed"))))
	f.Add(joinFrames(frag(7, 0, true, 64), frag(7, 64, true, 64), frag(7, 64, false, 8), frag(8, 1480, false, 100)))
	f.Add(joinFrames(tagged, seed.arpRequest([4]byte{}, seed.host, us)))
	f.Add(joinFrames(seed.echoRequest(spoof, eth.Broadcast, us, 4), []byte{1, 2, 3}))

	f.Fuzz(func(t *testing.T, data []byte) {
		l := newFuzzLink(t)
		defer l.close()
		sock, err := l.st.ListenUDP(netip.AddrPortFrom(fuzzStackAddr.Addr(), 7))
		if err != nil {
			t.Fatal(err)
		}
		l.send(splitFrames(data)...)
		l.st.tick()
		l.checkStillServes(sock, 1)
	})
}

func TestStackStillServesAfterTheSeedFrames(t *testing.T) {
	l := newFuzzLink(t)
	defer l.close()
	sock, err := l.st.ListenUDP(netip.AddrPortFrom(fuzzStackAddr.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	l.checkStillServes(sock, 1)
	l.checkStillServes(sock, 2)
}

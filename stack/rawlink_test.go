package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/header/udp"
)

// rawLink is a hand-built host on the far end of a wire pair: it writes
// frames of its own making to a stack and reads what the stack sends back,
// answering every ARP request so the stack can reach any address it claims.
type rawLink struct {
	t        *testing.T
	wire     *wire.Pair
	port     *wire.Port
	s        *Stack
	mac      eth.MAC // the attacker's
	stackMAC eth.MAC
	addr     netip.Prefix // the stack's
	pool     *engine.Pool
	cs       engine.Caches
	sent     uint64 // frames written, to wait for the stack to take them
	arpReqs  [][4]byte
}

// newRawLink starts a stack with address addr on port 1 of a fresh wire
// pair; the attacker holds port 0. edit, if set, adjusts the stack's config.
func newRawLink(t *testing.T, addr netip.Prefix, wc wire.Config, edit func(*Config)) *rawLink {
	t.Helper()
	return newRawLinkIn(t, ModeNAPI, addr, wc, edit)
}

// newRawLinkIn is newRawLink with the stack driven in mode.
func newRawLinkIn(t *testing.T, mode Mode, addr netip.Prefix, wc wire.Config, edit func(*Config)) *rawLink {
	t.Helper()
	wp, err := wire.NewPair(wc)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := engine.NewPool("attacker", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "victim", Interfaces: []Interface{{Port: wp.Ports[1], Addr: addr}}, Idle: engine.IdleSpinYield}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &rawLink{t: t, wire: wp, port: wp.Ports[0], s: s, mac: eth.MAC(wp.Ports[0].Info().MAC),
		stackMAC: eth.MAC(wp.Ports[1].Info().MAC), addr: addr, pool: pool}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close stack: %v", err)
		}
		l.drain()
		for _, p := range wp.Ports {
			p.Close()
		}
		l.cs.Flush()
		pool.Close()
	})
	if err := s.StartOn(mode, nil, engine.SoftirqConfig{}); err != nil {
		t.Fatal(err)
	}
	return l
}

// send writes frames to the stack and waits until it has taken them all.
func (l *rawLink) send(frames ...[]byte) {
	l.t.Helper()
	l.sendMbufs(l.mbufs(frames...)...)
}

// mbufs copies frames into packets of the attacker's pool.
func (l *rawLink) mbufs(frames ...[]byte) []engine.Mbuf {
	l.t.Helper()
	ms := make([]engine.Mbuf, 0, len(frames))
	for _, f := range frames {
		m, err := l.cs.Alloc(l.pool)
		if err != nil {
			l.t.Fatal(err)
		}
		if err := l.cs.AppendBytes(m, l.pool, f); err != nil {
			l.t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// sendMbufs writes packets of the attacker's pool as they are (on a
// zero-copy wire, the stack receives these very mbufs).
func (l *rawLink) sendMbufs(ms ...engine.Mbuf) {
	l.t.Helper()
	l.push(ms...)
	l.settle()
}

// push writes packets to the stack without waiting for it to take them.
func (l *rawLink) push(ms ...engine.Mbuf) {
	l.t.Helper()
	for len(ms) > 0 {
		n := l.port.TxBurst(0, ms[:min(len(ms), engine.Burst)])
		if n == 0 {
			l.t.Fatal("wire refused a frame")
		}
		ms = ms[n:]
		l.sent += uint64(n)
	}
	l.port.ReapTx(0)
}

// settle waits until the stack has run every frame sent so far to
// completion: it counts a frame as it starts on it, and a burst finishes
// under the lock that Stats takes.
func (l *rawLink) settle() Stats {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := l.s.Stats()
		if st.EthInFrames >= l.sent {
			return st
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the stack took %d of %d frames", st.EthInFrames, l.sent)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv returns the frames the stack sent, waiting up to d for at least want
// of them that are not ARP (ARP requests are answered and recorded in
// arpReqs). It returns early once it has want frames.
func (l *rawLink) recv(want int, d time.Duration) [][]byte {
	l.t.Helper()
	var got [][]byte
	deadline := time.Now().Add(d)
	var burst [engine.Burst]engine.Mbuf
	for {
		n := 0
		for q := range l.port.Info().RxQueues {
			n += l.port.RxBurst(q, burst[n:])
		}
		for _, m := range burst[:n] {
			f := make([]byte, m.PktLen())
			m.CopyOut(f, 0)
			l.cs.Free(m)
			if h, err := eth.Parse(f); err == nil && h.Type == eth.TypeARP {
				l.answerARP(f[eth.HeaderLen:])
				continue
			}
			got = append(got, f)
		}
		if len(got) >= want && want > 0 || time.Now().After(deadline) {
			return got
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// quiet asserts that the stack sent nothing since the last recv: every frame
// already sent has been run, so a reply would already be on the wire.
func (l *rawLink) quiet(what string) {
	l.t.Helper()
	l.settle()
	n := len(l.arpReqs)
	if got := l.recv(0, 0); len(got) > 0 || len(l.arpReqs) > n {
		l.t.Fatalf("%s: the stack sent %d frames and %d ARP requests", what, len(got), len(l.arpReqs)-n)
	}
}

// answerARP says "that is me" to any request, for whatever address.
func (l *rawLink) answerARP(b []byte) {
	p, err := arp.Parse(b)
	if err != nil || p.Op != arp.OpRequest {
		return
	}
	l.arpReqs = append(l.arpReqs, p.TargetIP)
	r := make([]byte, arp.FrameLen)
	arp.ReplyTo(r, p, l.mac)
	l.send(r)
}

// drain frees whatever is left on the attacker's receive queue.
func (l *rawLink) drain() {
	var burst [engine.Burst]engine.Mbuf
	for q := range l.port.Info().RxQueues {
		for n := l.port.RxBurst(q, burst[:]); n > 0; n = l.port.RxBurst(q, burst[:]) {
			l.cs.FreeBulk(burst[:n])
		}
	}
}

// ours is the stack's address as a header holds it.
func (l *rawLink) ours() [4]byte { return l.addr.Addr().As4() }

// rawAddr is an address literal as a header holds it.
func rawAddr(s string) [4]byte { return netip.MustParseAddr(s).As4() }

// udpTo is a frame carrying a UDP datagram, addressed to the stack's MAC.
func (l *rawLink) udpTo(src, dst [4]byte, sport, dport uint16, data []byte) []byte {
	return ipFrame(l.stackMAC, l.mac, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: src, Dst: dst}, rawUDP(src, dst, sport, dport, data))
}

// echoTo is a frame carrying an ICMP echo request, addressed to the stack's
// MAC.
func (l *rawLink) echoTo(src, dst [4]byte, seq uint16) []byte {
	return ipFrame(l.stackMAC, l.mac, ipv4.Header{Protocol: ipv4.ProtoICMP, Src: src, Dst: dst}, rawEcho(seq, []byte("ping")))
}

// rawUDP is a UDP datagram with its checksum.
func rawUDP(src, dst [4]byte, sport, dport uint16, data []byte) []byte {
	b := make([]byte, udp.HeaderLen+len(data))
	udp.Header{SrcPort: sport, DstPort: dport, Length: uint16(len(b))}.Put(b)
	copy(b[udp.HeaderLen:], data)
	udp.SetChecksum(b, src, dst)
	return b
}

// rawEcho is an ICMP echo request.
func rawEcho(seq uint16, data []byte) []byte {
	b := make([]byte, icmp.HeaderLen+len(data))
	icmp.PutEcho(b, icmp.TypeEchoRequest, 0x4242, seq, data)
	return b
}

// parseSentIP parses a frame the stack sent: its Ethernet and IPv4 headers and
// the IP payload.
func parseSentIP(t *testing.T, f []byte) (eth.Header, ipv4.Header, []byte) {
	t.Helper()
	eh, err := eth.Parse(f)
	if err != nil || eh.Type != eth.TypeIPv4 {
		t.Fatalf("not an IPv4 frame (%v): % x", err, f[:min(len(f), 40)])
	}
	h, err := ipv4.Parse(f[eh.Len():])
	if err != nil {
		t.Fatalf("bad IPv4 header from the stack: %v", err)
	}
	return eh, h, f[eh.Len()+int(h.HeaderLen) : eh.Len()+int(h.TotalLen)]
}

// parseSentICMP parses the ICMP message of a frame the stack sent.
func parseSentICMP(t *testing.T, f []byte) (ipv4.Header, icmp.Message) {
	t.Helper()
	_, h, p := parseSentIP(t, f)
	if h.Protocol != ipv4.ProtoICMP {
		t.Fatalf("protocol %d, want ICMP", h.Protocol)
	}
	m, err := icmp.Parse(p)
	if err != nil {
		t.Fatalf("bad ICMP from the stack: %v", err)
	}
	return h, m
}

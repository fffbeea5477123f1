package stack

import (
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

// rig is one stack on port 1 of a wire pair, driven by the test alone: the
// test writes frames into port 0 (the wire copies them into port 1's receive
// pool, as DMA would), runs the stack's input on them by hand, and reads what
// the stack sent from port 0. Nothing runs in the background, so what happens
// is the same every run.
type rig struct {
	t    *testing.T
	wire *wire.Pair
	s    *Stack
	pool *engine.Pool // frames the test builds
	cs   engine.Caches
	now  *int64 // the fake clock, once fakeClock is called
}

// The rig's addresses: the stack is ipUs on port 1; the legitimate peer is
// ipPeer at port 0's MAC.
var (
	ipUs    = addrB.Addr().As4()
	ipPeer  = addrA.Addr().As4()
	macUs   = eth.MAC{0x02, 0, 0, 0, 0, 0x02}
	macPeer = eth.MAC{0x02, 0, 0, 0, 0, 0x01}
)

func newRig(t *testing.T, wc wire.Config, cfg Config) *rig {
	t.Helper()
	wp, err := wire.NewPair(wc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Interfaces = []Interface{{Port: wp.Ports[1], Addr: addrB}}
	if cfg.Name == "" {
		cfg.Name = "rig"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := engine.NewPool("rig-frames", 512, 32)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, wire: wp, s: s, pool: pool}
	t.Cleanup(func() {
		r.drain()
		if err := s.Close(); err != nil {
			t.Errorf("close stack: %v", err)
		}
		wp.Ports[0].ReapTx(0)
		r.cs.Flush()
		for _, p := range wp.Ports {
			if err := p.Close(); err != nil {
				t.Errorf("close port: %v", err)
			}
		}
		if err := pool.Close(); err != nil {
			t.Errorf("close frame pool: %v", err)
		}
	})
	return r
}

// send puts frames on the wire towards the stack and runs the stack's input
// on everything that arrived.
func (r *rig) send(frames ...[]byte) {
	r.t.Helper()
	port := r.wire.Ports[0]
	for len(frames) > 0 {
		chunk := frames[:min(len(frames), engine.Burst)]
		frames = frames[len(chunk):]
		var ms [engine.Burst]engine.Mbuf
		k := 0
		for _, f := range chunk {
			m, err := r.cs.Alloc(r.pool)
			if err != nil {
				r.t.Fatal(err)
			}
			if err := r.cs.AppendBytes(m, r.pool, f); err != nil {
				r.cs.Free(m) // longer than any packet: nothing goes out
				continue
			}
			ms[k] = m
			k++
		}
		if sent := port.TxBurst(0, ms[:k]); sent < k {
			r.cs.FreeBulk(ms[sent:k])
		}
		port.ReapTx(0)
		r.deliver()
	}
}

// deliver runs the stack's input on every frame waiting at port 1.
func (r *rig) deliver() {
	port := r.wire.Ports[1]
	var pkts [engine.Burst]engine.Mbuf
	for {
		n := port.RxBurst(0, pkts[:])
		if n == 0 {
			return
		}
		r.s.Input(nil, engine.QueueRef{Port: port}, pkts[:n])
	}
}

// received takes every frame the stack has sent so far.
func (r *rig) received() [][]byte {
	var out [][]byte
	var pkts [engine.Burst]engine.Mbuf
	for {
		n := r.wire.Ports[0].RxBurst(0, pkts[:])
		if n == 0 {
			return out
		}
		for _, m := range pkts[:n] {
			b := make([]byte, m.PktLen())
			m.CopyOut(b, 0)
			out = append(out, b)
		}
		r.cs.FreeBulk(pkts[:n])
	}
}

// drain throws away what the stack has sent.
func (r *rig) drain() { r.received() }

// rxPoolInUse is how many mbufs of the stack's receive pool are taken now.
// Only for a rig at rest: the pool's count reads every cache unlocked.
func (r *rig) rxPoolInUse() int {
	p := r.wire.Ports[1].Pool()
	return p.Size() - p.Available()
}

// rxNoMbuf is how many frames the stack's port dropped for want of a buffer.
func (r *rig) rxNoMbuf() uint64 {
	return r.wire.Ports[1].RxStats(0).Drops[engine.DropNoMbuf]
}

// arpFrame builds an ARP frame.
func arpFrame(ethDst eth.MAC, p arp.Packet) []byte {
	b := make([]byte, arp.FrameLen)
	eth.Header{Dst: ethDst, Src: p.SenderMAC, Type: eth.TypeARP}.Put(b)
	p.Put(b[eth.HeaderLen:])
	return b
}

// ipFrame builds an Ethernet frame holding an IPv4 datagram with payload.
// The header's TotalLen is filled in unless set (a test of a lying length
// sets it); TTL defaults to 64.
func ipFrame(ethDst, ethSrc eth.MAC, h ipv4.Header, payload []byte) []byte {
	b := make([]byte, eth.HeaderLen+ipv4.HeaderLen+len(payload))
	eth.Header{Dst: ethDst, Src: ethSrc, Type: eth.TypeIPv4}.Put(b)
	if h.TotalLen == 0 {
		h.TotalLen = uint16(ipv4.HeaderLen + len(payload))
	}
	if h.TTL == 0 {
		h.TTL = 64
	}
	h.Put(b[eth.HeaderLen:], nil)
	copy(b[eth.HeaderLen+ipv4.HeaderLen:], payload)
	return b
}

// echoFrame builds an echo request from src (at srcMAC) to us.
func echoFrame(srcMAC eth.MAC, src [4]byte, id, seq uint16) []byte {
	p := make([]byte, icmp.HeaderLen+8)
	icmp.PutEcho(p, icmp.TypeEchoRequest, id, seq, []byte("pollnet!"))
	return ipFrame(macUs, srcMAC, ipv4.Header{ID: seq, Protocol: ipv4.ProtoICMP, Src: src, Dst: ipUs}, p)
}

// udpFrame builds a UDP datagram from the peer to us.
func udpFrame(srcPort, dstPort uint16, data []byte) []byte {
	p := make([]byte, udp.HeaderLen+len(data))
	udp.Header{SrcPort: srcPort, DstPort: dstPort, Length: uint16(len(p))}.Put(p)
	copy(p[udp.HeaderLen:], data)
	udp.SetChecksum(p, ipPeer, ipUs)
	return ipFrame(macUs, macPeer, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: ipPeer, Dst: ipUs}, p)
}

// isEchoReply reports whether frame is an echo reply from us to dst.
func isEchoReply(frame []byte, dstMAC eth.MAC, dst [4]byte, seq uint16) bool {
	h, err := eth.Parse(frame)
	if err != nil || h.Dst != dstMAC || h.Type != eth.TypeIPv4 {
		return false
	}
	ih, err := ipv4.Parse(frame[eth.HeaderLen:])
	if err != nil || ih.Src != ipUs || ih.Dst != dst || ih.Protocol != ipv4.ProtoICMP {
		return false
	}
	msg, err := icmp.Parse(frame[eth.HeaderLen+int(ih.HeaderLen) : eth.HeaderLen+int(ih.TotalLen)])
	return err == nil && msg.Type == icmp.TypeEchoReply && msg.Seq == seq
}

// arpOf parses frame as an ARP frame.
func arpOf(frame []byte) (eth.Header, arp.Packet, bool) {
	h, err := eth.Parse(frame)
	if err != nil || h.Type != eth.TypeARP {
		return h, arp.Packet{}, false
	}
	p, err := arp.Parse(frame[eth.HeaderLen:])
	return h, p, err == nil
}

// fakeClock starts the rig's clock: the stack's timers, and so its
// neighbour table's time, move only by advance from now on. It starts on a
// whole millisecond, the tick of the timer wheels, so that advance's steps
// land on the deadlines the stack arms.
func (r *rig) fakeClock() {
	now := (engine.Nanotime()/1e6 + 1) * 1e6
	r.now = &now
	r.s.clock = func() int64 { return *r.now }
	r.s.advanceTimers(now)
}

// advance moves the fake clock on by d, running the stack's timers every
// 100 ms on the way, as its tick would.
func (r *rig) advance(d time.Duration) {
	end := *r.now + int64(d)
	for *r.now < end {
		*r.now = min(end, *r.now+int64(100*time.Millisecond))
		r.s.advanceTimers(*r.now)
	}
}

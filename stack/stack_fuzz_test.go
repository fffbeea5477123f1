package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/header/udp"
)

// A legitimate host on the rig's link, apart from the peer the inputs use.
var (
	ipLegit  = [4]byte{198, 18, 0, 77}
	macLegit = eth.MAC{0x02, 0, 0, 0, 0, 0x77}
)

// answerARP replies, as host ip at mac, to every request the stack made for
// ip, and returns the other frames.
func (r *rig) answerARP(frames [][]byte, ip [4]byte, mac eth.MAC) (rest [][]byte) {
	for _, f := range frames {
		if _, p, ok := arpOf(f); ok && p.Op == arp.OpRequest && p.TargetIP == ip {
			r.send(arpFrame(p.SenderMAC, arp.Packet{Op: arp.OpReply, SenderMAC: mac, SenderIP: ip, TargetMAC: p.SenderMAC, TargetIP: p.SenderIP}))
			continue
		}
		rest = append(rest, f)
	}
	return rest
}

// findUDP returns the payload of the first UDP datagram from us to dst at
// dstMAC among frames.
func findUDP(frames [][]byte, dstMAC eth.MAC, dst [4]byte) ([]byte, bool) {
	for _, f := range frames {
		h, err := eth.Parse(f)
		if err != nil || h.Type != eth.TypeIPv4 || h.Dst != dstMAC {
			continue
		}
		ih, err := ipv4.Parse(f[eth.HeaderLen:])
		if err != nil || ih.Protocol != ipv4.ProtoUDP || ih.Src != ipUs || ih.Dst != dst {
			continue
		}
		return f[eth.HeaderLen+int(ih.HeaderLen)+udp.HeaderLen : eth.HeaderLen+int(ih.TotalLen)], true
	}
	return nil, false
}

// checkStillServes is what a legitimate host must still get, whatever came
// before: its ping answered and its UDP datagram echoed by sock.
func (r *rig) checkStillServes(sock *UDPConn, seq uint16) {
	r.t.Helper()
	r.drain() // whatever the input provoked
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macLegit, SenderIP: ipLegit, TargetIP: ipUs}))
	ping := echoFrame(macLegit, ipLegit, 0x77, seq)
	r.send(ping)
	out := r.answerARP(r.received(), ipLegit, macLegit)
	out = append(out, r.received()...)
	answered := false
	for _, f := range out {
		answered = answered || isEchoReply(f, macLegit, ipLegit, seq)
	}
	if !answered {
		r.t.Fatalf("a legitimate ping went unanswered (%d frames out); stack %+v", len(out), r.s.Stats())
	}

	// Empty the socket of what the input queued, then echo one datagram.
	buf := make([]byte, 70000)
	for {
		if _, _, ok := sock.TryRead(buf); !ok {
			break
		}
	}
	msg := []byte("a legitimate datagram")
	p := make([]byte, udp.HeaderLen+len(msg))
	udp.Header{SrcPort: 5555, DstPort: sock.LocalAddrPort().Port(), Length: uint16(len(p))}.Put(p)
	copy(p[udp.HeaderLen:], msg)
	udp.SetChecksum(p, ipLegit, ipUs)
	r.send(ipFrame(macUs, macLegit, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: ipLegit, Dst: ipUs}, p))
	n, from, ok := sock.TryRead(buf)
	if !ok || !bytes.Equal(buf[:n], msg) || from != netip.AddrPortFrom(netip.AddrFrom4(ipLegit), 5555) {
		r.t.Fatalf("a legitimate datagram did not reach the socket (ok %v, %q from %v); stack %+v", ok, buf[:n], from, r.s.Stats())
	}
	if _, err := sock.WriteToUDPAddrPort(buf[:n], from); err != nil {
		r.t.Fatalf("echo: %v", err)
	}
	out = r.answerARP(r.received(), ipLegit, macLegit)
	out = append(out, r.received()...)
	if got, ok := findUDP(out, macLegit, ipLegit); !ok || !bytes.Equal(got, msg) {
		r.t.Fatalf("the UDP echo never left; stack %+v", r.s.Stats())
	}
}

// splitFrames cuts a fuzz input into at most 64 frames, each led by its
// two-byte length.
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 && len(frames) < 64 {
		n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
		frames = append(frames, data[2:2+n])
		data = data[2+n:]
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

func newFuzzRig(t *testing.T) (*rig, *UDPConn) {
	r := newRig(t, wire.Config{PoolSize: 1024, RingSize: 512}, Config{PoolSize: 1024})
	sock, err := r.s.ListenUDP(netip.AddrPortFrom(netip.AddrFrom4(ipUs), 7))
	if err != nil {
		t.Fatal(err)
	}
	return r, sock
}

// FuzzStackInput feeds arbitrary frames to a whole stack through a wire
// port and checks it stays whole: nothing panics, no mbuf leaks (every
// pool must close when the rig is torn down), and a legitimate host still
// gets its ping and its UDP echo answered afterwards.
func FuzzStackInput(f *testing.F) {
	udpTo := func(src [4]byte, dport uint16, data []byte) []byte {
		p := make([]byte, udp.HeaderLen+len(data))
		udp.Header{SrcPort: 9, DstPort: dport, Length: uint16(len(p))}.Put(p)
		copy(p[udp.HeaderLen:], data)
		udp.SetChecksum(p, src, ipUs)
		return ipFrame(macUs, macPeer, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: src, Dst: ipUs}, p)
	}
	frag := func(id, off uint16, mf bool, n int) []byte {
		h := ipv4.Header{Protocol: ipv4.ProtoUDP, Src: ipPeer, Dst: ipUs, ID: id, FragOff: off}
		if mf {
			h.Flags = ipv4.FlagMF
		}
		return ipFrame(macUs, macPeer, h, bytes.Repeat([]byte{byte(off)}, n))
	}
	tagged := echoFrame(macPeer, ipPeer, 1, 1)
	tagged = append(append(append([]byte{}, tagged[:12]...), 0x81, 0x00, 0x00, 0x05), tagged[12:]...)
	bcastPing := make([]byte, icmp.HeaderLen+8)
	icmp.PutEcho(bcastPing, icmp.TypeEchoRequest, 1, 3, []byte("pollnet!"))
	f.Add(joinFrames(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: ipUs}), echoFrame(macPeer, ipPeer, 1, 1)))
	f.Add(joinFrames(echoFrame(macPeer, [4]byte{127, 0, 0, 1}, 1, 2),
		ipFrame(eth.Broadcast, macPeer, ipv4.Header{Protocol: ipv4.ProtoICMP, Src: ipPeer, Dst: [4]byte{198, 18, 0, 255}}, bcastPing)))
	f.Add(joinFrames(udpTo(ipPeer, 7, []byte("x")), udpTo(ipPeer, 99, []byte("to a closed port"))))
	f.Add(joinFrames(frag(7, 0, true, 64), frag(7, 64, true, 64), frag(7, 64, false, 8), frag(8, 1480, false, 100)))
	f.Add(joinFrames(tagged, arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, TargetIP: ipUs})))
	f.Add(joinFrames(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpReply, SenderMAC: macPeer, SenderIP: ipLegit, TargetIP: ipUs}), []byte{1, 2, 3}))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, sock := newFuzzRig(t)
		r.send(splitFrames(data)...)
		r.s.advanceTimers(r.s.clock())
		r.checkStillServes(sock, 1)
	})
}

func TestAFreshStackServesALegitimateHostTwice(t *testing.T) {
	r, sock := newFuzzRig(t)
	r.checkStillServes(sock, 1)
	r.checkStillServes(sock, 2)
}

// FuzzSteering feeds any bytes to the software steering of a four-shard
// stack: it never panics, always names a shard, and gives every fragment of
// one datagram (same addresses, any offset or flags) the same shard.
func FuzzSteering(f *testing.F) {
	f.Add(udpFrame(1000, 7, []byte("x")))
	f.Add(echoFrame(macPeer, ipPeer, 1, 1))
	f.Add([]byte{1, 2, 3})
	s, err := New(Config{Name: "steer", Shards: 4})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	pool, err := engine.NewPool("steer-fuzz", 8, 0)
	if err != nil {
		f.Fatal(err)
	}
	defer pool.Close()
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > engine.BufSize-engine.Headroom {
			frame = frame[:engine.BufSize-engine.Headroom]
		}
		m, err := pool.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer engine.Free(m)
		b, _ := m.Append(len(frame))
		copy(b, frame)
		owner := s.ownerOf(m, 0)
		if owner < 0 || owner >= 4 {
			t.Fatalf("owner %d of 4 shards", owner)
		}
		// The same datagram's other fragments: flags and offset changed.
		if len(frame) >= eth.HeaderLen+ipv4.HeaderLen && binary.BigEndian.Uint16(frame[12:14]) == eth.TypeIPv4 &&
			binary.BigEndian.Uint16(frame[eth.HeaderLen+6:])&0x3fff != 0 {
			b[eth.HeaderLen+6] ^= 0x1f // another offset, MF flipped
			b[eth.HeaderLen+7] ^= 0xa5
			if binary.BigEndian.Uint16(b[eth.HeaderLen+6:])&0x3fff != 0 {
				if other := s.ownerOf(m, 0); other != owner {
					t.Fatalf("two fragments of one datagram on shards %d and %d", owner, other)
				}
			}
		}
	})
}

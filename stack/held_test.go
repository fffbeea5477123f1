package stack

import (
	"testing"

	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// pingFromPeer has the legitimate peer resolve us and ping us, and reports
// whether the echo came back.
func pingFromPeer(r *rig, seq uint16) bool {
	r.drain()
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: ipUs}))
	r.send(echoFrame(macPeer, ipPeer, 1, seq))
	for _, f := range r.received() {
		if isEchoReply(f, macPeer, ipPeer, seq) {
			return true
		}
	}
	return false
}

// TestSpoofedEchoFloodCannotStarveTheReceivePool: echo requests from 30
// spoofed neighbours that never answer ARP wait for their addresses; the
// replies, built in the requests' own receive buffers, may hold at most an
// eighth of the port's receive pool, so a real ping is still answered.
func TestSpoofedEchoFloodCannotStarveTheReceivePool(t *testing.T) {
	const pool = 2048
	r := newRig(t, wire.Config{PoolSize: pool}, Config{})
	var frames [][]byte
	for seq := 0; seq < 101; seq++ {
		for src := 0; src < 30; src++ {
			frames = append(frames, echoFrame(macN(100+src), [4]byte{198, 18, 0, byte(100 + src)}, 7, uint16(seq)))
		}
	}
	for len(frames) > 0 {
		k := min(len(frames), 300)
		r.send(frames[:k]...)
		frames = frames[k:]
		r.drain()
	}
	if used := r.rxPoolInUse(); used > pool/8 {
		t.Errorf("packets waiting for ARP hold %d of %d receive buffers, more than an eighth", used, pool)
	}
	if !pingFromPeer(r, 1) {
		t.Fatalf("a real ping went unanswered after the flood (receive pool: %d in use, %d dropped for no buffer)",
			r.rxPoolInUse(), r.rxNoMbuf())
	}
}

// fragFrame is a first fragment (MF set) from the peer to us that never
// completes.
func fragFrame(id uint16) []byte {
	return ipFrame(macUs, macPeer, ipv4.Header{ID: id, Flags: ipv4.FlagMF, Protocol: ipv4.ProtoICMP, Src: ipPeer, Dst: ipUs},
		make([]byte, 64))
}

// TestReassemblyFloodStaysWithinTheHeldCap: fragments that never complete
// are held by the reassembler, but together with everything else waiting
// they take at most an eighth of the receive pool, and a ping still passes.
func TestReassemblyFloodStaysWithinTheHeldCap(t *testing.T) {
	const pool = 2048
	r := newRig(t, wire.Config{PoolSize: pool}, Config{})
	var frames [][]byte
	for id := 0; id < 4000; id++ {
		frames = append(frames, fragFrame(uint16(id)))
	}
	for len(frames) > 0 {
		k := min(len(frames), 300)
		r.send(frames[:k]...)
		frames = frames[k:]
		if used := r.rxPoolInUse(); used > pool/8 {
			t.Fatalf("held fragments take %d of %d receive buffers, more than an eighth", used, pool)
		}
	}
	if !pingFromPeer(r, 2) {
		t.Fatalf("a real ping went unanswered after the flood (%d in use)", r.rxPoolInUse())
	}
	_ = icmp.TypeEchoReply
}

package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// The neighbour table's own tests are in stack/network/neigh; these run it
// inside a stack, over a wire: ARP frames in and out through the stack's
// devices, packets from sockets waiting for an address, the stack's tick
// running the table's timers, and its counters in Stats.

// macN is a made-up unicast MAC for host i.
func macN(i int) eth.MAC { return eth.MAC{0x02, 0x66, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// TestARPProbeForOurAddressIsAnswered: a host doing duplicate-address
// detection (RFC 5227: sender 0.0.0.0, target our address) hears from us:
// a reply to the prober's MAC, target address 0.0.0.0, and no neighbour
// entry for 0.0.0.0.
func TestARPProbeForOurAddressIsAnswered(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	prober := macN(7)
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: prober, TargetIP: ipUs}))
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("%d frames answered the probe, want 1", len(got))
	}
	h, p, ok := arpOf(got[0])
	want := arp.Packet{Op: arp.OpReply, SenderMAC: macUs, SenderIP: ipUs, TargetMAC: prober, TargetIP: [4]byte{}}
	if !ok || h.Dst != prober || h.Src != macUs || p != want {
		t.Fatalf("answer %+v %+v, want %+v to %v", h, p, want, prober)
	}
	if st := r.s.Stats(); st.ARPEntries != 0 || st.ARPInRequests != 1 || st.ARPOutReplies != 1 {
		t.Fatalf("%+v", st)
	}
}

// TestRequestsForUsCannotGrowTheTablePastGCThresh3: every request for our
// address makes an entry for its sender (as neigh_event_ns does), but never
// more than gc_thresh3 of them, and every one is answered.
func TestRequestsForUsCannotGrowTheTablePastGCThresh3(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	var frames [][]byte
	for i := 0; i < 20000; i++ {
		ip := [4]byte{198, 18, byte(i >> 8), byte(i)}
		if ip == ipUs || ip == [4]byte{198, 18, 0, 255} {
			continue
		}
		frames = append(frames, arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ip, TargetIP: ipUs}))
	}
	n := len(frames)
	for len(frames) > 0 {
		k := min(len(frames), 500)
		r.send(frames[:k]...)
		frames = frames[k:]
		r.drain()
	}
	if st := r.s.Stats(); st.ARPEntries > 1024 || st.ARPOutReplies != uint64(n) || st.ARPTableFulls == 0 {
		t.Fatalf("%d requests: %+v", n, st)
	}
}

// sent is a tally of what the stack sent: ARP requests for ip by where
// they went, and IPv4 frames by destination MAC.
type sent struct {
	broadcastReqs, unicastReqs int
	ipTo                       map[eth.MAC]int
}

func tally(frames [][]byte, ip [4]byte) sent {
	s := sent{ipTo: map[eth.MAC]int{}}
	for _, f := range frames {
		h, p, ok := arpOf(f)
		switch {
		case ok && p.Op == arp.OpRequest && p.TargetIP == ip && h.Dst == eth.Broadcast:
			s.broadcastReqs++
		case ok && p.Op == arp.OpRequest && p.TargetIP == ip:
			s.unicastReqs++
		case h.Type == eth.TypeIPv4:
			s.ipTo[h.Dst]++
		}
	}
	return s
}

// sender is a UDP socket of the rig's stack that sends to ip's port 9.
func sender(t *testing.T, r *rig) func(ip [4]byte) {
	c, err := r.s.ListenUDP(netip.AddrPortFrom(addrB.Addr(), 0))
	if err != nil {
		t.Fatal(err)
	}
	return func(ip [4]byte) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(netip.AddrFrom4(ip), 9)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnansweredAddressFailsAfterThreeBroadcasts: the stack's tick runs the
// table's timers: an unknown address is asked for by broadcast three
// times, a second apart; then the packets waiting for it go and their
// mbufs are no longer held.
func TestUnansweredAddressFailsAfterThreeBroadcasts(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	ghost := [4]byte{198, 18, 0, 77}
	send(ghost)
	send(ghost)
	if got := tally(r.received(), ghost); got.broadcastReqs != 1 || len(got.ipTo) != 0 {
		t.Fatalf("at once: %+v", got)
	}
	if held := r.s.Stats().HeldMbufs; held != 2 {
		t.Fatalf("2 packets waiting, %d mbufs held", held)
	}
	r.advance(2900 * time.Millisecond)
	if got := tally(r.received(), ghost); got.broadcastReqs != 2 || r.s.Stats().ARPResolveFailed != 0 {
		t.Fatalf("within 3 s: %+v, %+v", got, r.s.Stats())
	}
	r.advance(200 * time.Millisecond)
	st := r.s.Stats()
	if st.ARPResolveFailed != 1 || st.ARPQueueDrops != 2 || st.HeldMbufs != 0 || st.ARPOutRequests != 3 {
		t.Fatalf("after 3 s: %+v", st)
	}
}

// TestAnswerSendsWhatWaitedAndConfirms: the peer's unicast reply to our
// request sends the packets that waited, to its MAC.
func TestAnswerSendsWhatWaitedAndConfirms(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	for i := 0; i < 3; i++ {
		send(ipPeer)
	}
	r.drain()
	r.send(arpFrame(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: macPeer, SenderIP: ipPeer, TargetMAC: macUs, TargetIP: ipUs}))
	if got := tally(r.received(), ipPeer); got.ipTo[macPeer] != 3 {
		t.Fatalf("after the answer: %+v", got)
	}
	if st := r.s.Stats(); st.HeldMbufs != 0 || st.ARPQueueDrops != 0 || st.ARPEntries != 1 || st.ARPInReplies != 1 {
		t.Fatalf("%+v", st)
	}
	send(ipPeer) // resolved: straight out
	if got := tally(r.received(), ipPeer); got.ipTo[macPeer] != 1 || got.broadcastReqs != 0 {
		t.Fatalf("once resolved: %+v", got)
	}
}

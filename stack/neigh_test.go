package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// macN is a made-up unicast MAC for host i.
func macN(i int) eth.MAC { return eth.MAC{0x02, 0x66, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// ipN is a made-up address for host i in 198.18.0.0/15, outside our subnet
// unless i < 256.
func ipN(i int) [4]byte { return [4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)} }

// TestARPProbeForOurAddressIsAnswered: a host doing duplicate-address
// detection (RFC 5227: sender 0.0.0.0, target our address) hears from us,
// as arp_process answers it: a reply to the prober's MAC, target address
// 0.0.0.0, and no neighbour entry for 0.0.0.0.
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
	// A probe for another address is not ours to answer.
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: prober, TargetIP: ipN(9)}))
	if got := r.received(); len(got) != 0 {
		t.Fatalf("answered a probe for someone else: %x", got)
	}
	if n := len(r.s.neigh.entries); n != 0 {
		t.Fatalf("probes made %d neighbour entries", n)
	}
}

// TestUnsolicitedARPCreatesNoEntries: with arp_accept off (Linux's default)
// replies nobody asked for and gratuitous announcements create no entry, so
// a flood of them cannot grow the table.
func TestUnsolicitedARPCreatesNoEntries(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	var frames [][]byte
	for i := 0; i < 20000; i++ {
		ip := [4]byte{198, 18, byte(i >> 8), byte(i)}
		if ip == ipUs {
			continue
		}
		switch i % 3 {
		case 0: // a reply to us nobody asked for
			frames = append(frames, arpFrame(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: macN(i), SenderIP: ip, TargetMAC: macUs, TargetIP: ipUs}))
		case 1: // a gratuitous request
			frames = append(frames, arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ip, TargetIP: ip}))
		case 2: // a gratuitous reply
			frames = append(frames, arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpReply, SenderMAC: macN(i), SenderIP: ip, TargetMAC: macN(i), TargetIP: ip}))
		}
	}
	r.send(frames...)
	if n := len(r.s.neigh.entries); n != 0 {
		t.Fatalf("%d unsolicited ARP packets made %d entries", len(frames), n)
	}
}

// TestRequestsForUsCannotGrowTheTablePastGCThresh3: every request for our
// address makes an entry for its sender (as neigh_event_ns does), but never
// more than gc_thresh3 of them.
func TestRequestsForUsCannotGrowTheTablePastGCThresh3(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	var frames [][]byte
	for i := 0; i < 20000; i++ {
		ip := [4]byte{198, 18, byte(i >> 8), byte(i)}
		if ip == ipUs {
			continue
		}
		frames = append(frames, arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ip, TargetIP: ipUs}))
	}
	for len(frames) > 0 {
		k := min(len(frames), 500)
		r.send(frames[:k]...)
		frames = frames[k:]
		r.drain()
	}
	if n := len(r.s.neigh.entries); n > 1024 {
		t.Fatalf("20000 requests made %d entries, past gc_thresh3 (1024)", n)
	}
}

// sent is a tally of what the stack sent: ARP requests for ip by where they went,
// and IPv4 frames by destination MAC.
type sent struct {
	broadcastReqs, unicastReqs int
	replies                    []arp.Packet
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
		case ok && p.Op == arp.OpReply:
			s.replies = append(s.replies, p)
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

// peerAsks has the peer ask for our address, which makes or refreshes its
// entry as STALE.
func (r *rig) peerAsks() {
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: ipUs}))
}

// peerReplies has the peer answer us, unicast: a confirmation.
func (r *rig) peerReplies(mac eth.MAC) {
	r.send(arpFrame(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: mac, SenderIP: ipPeer, TargetMAC: macUs, TargetIP: ipUs}))
}

// TestUnansweredAddressFailsAfterThreeBroadcasts: an unknown address is
// asked for by broadcast, mcast_solicit (3) times, retrans_time (1 s) apart;
// then the entry fails and the packets waiting for it go (res_failed). The
// next packet starts over.
func TestUnansweredAddressFailsAfterThreeBroadcasts(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	ghost := [4]byte{198, 18, 0, 77}
	send(ghost)
	send(ghost)
	if st := r.state(ghost); st != "INCOMPLETE" {
		t.Fatalf("after sending: %q", st)
	}
	if got := tally(r.received(), ghost); got.broadcastReqs != 1 || len(got.ipTo) != 0 {
		t.Fatalf("at once: %+v", got)
	}
	if held := r.s.Stats().HeldMbufs; held != 2 {
		t.Fatalf("2 packets waiting, %d mbufs held", held)
	}
	r.advance(2900 * time.Millisecond)
	if got := tally(r.received(), ghost); got.broadcastReqs != 2 || r.state(ghost) != "INCOMPLETE" {
		t.Fatalf("within 3 s: %+v, %s", got, r.state(ghost))
	}
	r.advance(200 * time.Millisecond)
	st := r.s.Stats()
	if r.state(ghost) != "FAILED" || st.ARPResolveFailed != 1 || st.ARPQueueDrops != 2 || st.HeldMbufs != 0 {
		t.Fatalf("after 3 s: %s, %+v", r.state(ghost), st)
	}
	if got := tally(r.received(), ghost); got.broadcastReqs != 0 {
		t.Fatalf("asked again after giving up: %+v", got)
	}
	send(ghost)
	if got := tally(r.received(), ghost); got.broadcastReqs != 1 || r.state(ghost) != "INCOMPLETE" {
		t.Fatalf("sending again: %+v, %s", got, r.state(ghost))
	}
}

// TestAnswerSendsWhatWaitedAndConfirms: the peer's unicast reply to our
// request makes its entry REACHABLE and sends the packets that waited, in
// order.
func TestAnswerSendsWhatWaitedAndConfirms(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	for i := 0; i < 3; i++ {
		send(ipPeer)
	}
	r.drain()
	r.peerReplies(macPeer)
	if got := tally(r.received(), ipPeer); got.ipTo[macPeer] != 3 || r.state(ipPeer) != "REACHABLE" {
		t.Fatalf("after the answer: %+v, %s", got, r.state(ipPeer))
	}
	if st := r.s.Stats(); st.HeldMbufs != 0 || st.ARPQueueDrops != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestStaleAddressInUseIsReprobedByUnicastThenFails: an address learned
// from a request is STALE; used, it goes to DELAY and is used as is; not
// confirmed within delay_first_probe_time (5 s) it goes to PROBE, asked by
// unicast ucast_solicit (3) times, and then fails.
func TestStaleAddressInUseIsReprobedByUnicastThenFails(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	r.peerAsks()
	r.drain()
	if st := r.state(ipPeer); st != "STALE" {
		t.Fatalf("learned from a request: %q", st)
	}
	send(ipPeer)
	if got := tally(r.received(), ipPeer); got.ipTo[macPeer] != 1 || r.state(ipPeer) != "DELAY" {
		t.Fatalf("used: %+v, %s", got, r.state(ipPeer))
	}
	r.advance(4900 * time.Millisecond)
	if r.state(ipPeer) != "DELAY" {
		t.Fatalf("before 5 s: %s", r.state(ipPeer))
	}
	r.advance(200 * time.Millisecond)
	if got := tally(r.received(), ipPeer); got.unicastReqs != 1 || got.broadcastReqs != 0 || r.state(ipPeer) != "PROBE" {
		t.Fatalf("after 5 s: %+v, %s", got, r.state(ipPeer))
	}
	send(ipPeer) // still sent while probing
	r.advance(2 * time.Second)
	if got := tally(r.received(), ipPeer); got.unicastReqs != 2 || got.ipTo[macPeer] != 1 {
		t.Fatalf("probing: %+v", got)
	}
	r.advance(time.Second)
	if r.state(ipPeer) != "FAILED" || r.s.Stats().ARPResolveFailed != 1 {
		t.Fatalf("unanswered probes: %s, %+v", r.state(ipPeer), r.s.Stats())
	}
}

// TestProbeAnsweredIsReachableUntilItsTimeRunsOut: a unicast answer to a
// probe confirms the address; after the reachable time (randomised from
// 15 to 45 s) without use it is STALE again, and while in use it goes to
// DELAY instead.
func TestProbeAnsweredIsReachableUntilItsTimeRunsOut(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	reach := time.Duration(r.s.neigh.reachable)
	if reach < 15*time.Second || reach >= 45*time.Second {
		t.Fatalf("reachable time %v outside 15..45 s", reach)
	}
	r.peerAsks()
	send(ipPeer)
	r.advance(5100 * time.Millisecond)
	r.drain()
	r.peerReplies(macPeer)
	if st := r.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("answered: %q", st)
	}
	r.advance(reach - 200*time.Millisecond)
	if st := r.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("within the reachable time: %q", st)
	}
	r.advance(300 * time.Millisecond)
	if st := r.state(ipPeer); st != "STALE" {
		t.Fatalf("after the reachable time, unused: %q", st)
	}
	// Confirmed again and used just before its time runs out: DELAY,
	// and a confirmation within the delay makes it REACHABLE directly.
	send(ipPeer) // STALE -> DELAY
	r.peerReplies(macPeer)
	if st := r.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("confirmed while delayed: %q", st)
	}
	r.advance(reach - time.Second)
	send(ipPeer)
	r.advance(1100 * time.Millisecond)
	if st := r.state(ipPeer); st != "DELAY" {
		t.Fatalf("in use when its time ran out: %q", st)
	}
}

// TestKnownAddressChangesOnlyAfterLocktimeOrByGratuitousARP: a different
// MAC for a known address is ignored within locktime (1 s) of the last
// change, as Linux keeps the first of several racing answers; after it, or
// from a gratuitous announcement, it replaces the old one.
func TestKnownAddressChangesOnlyAfterLocktimeOrByGratuitousARP(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	send := sender(t, r)
	send(ipPeer)
	r.peerReplies(macPeer)
	other, third := macN(1), macN(2)
	r.peerReplies(other)
	if e := r.entry(ipPeer); e.mac != macPeer {
		t.Fatalf("replaced within locktime by %v", e.mac)
	}
	r.advance(1100 * time.Millisecond)
	r.peerReplies(other)
	if e := r.entry(ipPeer); e.mac != other || e.state != nudReachable {
		t.Fatalf("after locktime: %v %v", e.mac, e.state)
	}
	r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: third, SenderIP: ipPeer, TargetIP: ipPeer}))
	if e := r.entry(ipPeer); e.mac != third || e.state != nudStale {
		t.Fatalf("after a gratuitous announcement: %v %v", e.mac, e.state)
	}
	drop := r.s.Stats().ARPAllocs
	send(ipPeer)
	if got := tally(r.received(), ipPeer); got.ipTo[third] != 1 || r.s.Stats().ARPAllocs != drop {
		t.Fatalf("sent %+v", got)
	}
}

// TestForcedGCEvictsOldUnreferencedEntriesFirst: at gc_thresh3 a new entry
// needs a forced collection to free room; entries updated in the last 5 s
// and entries in use (a timer running) are spared, so at first the entry is
// refused (table_fulls) though the request is still answered; 5 s later the
// oldest unreferenced entries go, down to gc_thresh2.
func TestForcedGCEvictsOldUnreferencedEntriesFirst(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{ARP: ARPConfig{GCThresh1: 4, GCThresh2: 8, GCThresh3: 16}})
	r.fakeClock()
	send := sender(t, r)
	send(ipPeer)
	r.peerReplies(macPeer) // the oldest entry, REACHABLE: referenced by its timer
	ask := func(i int) {
		r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ipN(100 + i), TargetIP: ipUs}))
	}
	for i := 1; i < 16; i++ {
		ask(i)
	}
	r.drain()
	if n := len(r.s.neigh.entries); n != 16 {
		t.Fatalf("%d entries, want 16", n)
	}
	ask(16)
	st := r.s.Stats()
	if got := tally(r.received(), ipN(116)); len(got.replies) != 1 {
		t.Fatalf("a request refused an entry went unanswered: %+v", got)
	}
	if st.ARPEntries != 16 || st.ARPTableFulls != 1 || st.ARPForcedGCRuns != 1 || st.ARPForcedGCEvictions != 0 {
		t.Fatalf("table full: %+v", st)
	}
	r.advance(5100 * time.Millisecond)
	ask(16)
	st = r.s.Stats()
	if st.ARPEntries != 9 || st.ARPForcedGCRuns != 2 || st.ARPForcedGCEvictions != 8 {
		t.Fatalf("after 5 s: %+v", st)
	}
	if r.state(ipPeer) != "REACHABLE" || r.entry(ipN(109)) == nil || r.entry(ipN(108)) != nil || r.entry(ipN(116)) == nil {
		t.Fatal("forced collection took the wrong entries")
	}
}

// TestPeriodicGCRemovesUnusedEntriesOnceTheTableIsLarge: every 15 s, with
// gc_thresh1 entries or more, unreferenced entries not used for
// gc_stale_time (60 s) go; below gc_thresh1 nothing does.
func TestPeriodicGCRemovesUnusedEntriesOnceTheTableIsLarge(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{ARP: ARPConfig{GCThresh1: 4}})
	r.fakeClock()
	ask := func(i int) {
		r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ipN(100 + i), TargetIP: ipUs}))
	}
	for i := 0; i < 3; i++ {
		ask(i)
	}
	r.advance(2 * time.Minute)
	if st := r.s.Stats(); st.ARPEntries != 3 || st.ARPPeriodicGCRuns < 7 {
		t.Fatalf("below gc_thresh1: %+v", st)
	}
	send := sender(t, r)
	ask(3)
	ask(4)
	send(ipN(100)) // used, and confirmed: spared
	r.send(arpFrame(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: macN(0), SenderIP: ipN(100), TargetMAC: macUs, TargetIP: ipUs}))
	r.advance(50 * time.Second)
	if st := r.s.Stats(); st.ARPEntries != 3 || st.ARPPeriodicGCEvictions != 2 {
		t.Fatalf("after 50 s: %+v", st)
	}
	if r.entry(ipN(100)) == nil || r.entry(ipN(101)) != nil || r.entry(ipN(103)) == nil {
		t.Fatal("collected the wrong entries")
	}
}

// TestWaitingPacketsAreBoundedPerAddress: packets for an unresolved address
// may hold unres_qlen_bytes, or a quarter of the held-memory cap if that is
// less; beyond it the oldest are dropped (unres_discards).
func TestWaitingPacketsAreBoundedPerAddress(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{HeldLimit: 64})
	r.fakeClock()
	send := sender(t, r)
	for i := 0; i < 100; i++ {
		send(ipPeer)
	}
	st := r.s.Stats()
	if st.HeldMbufs != 16 || st.ARPQueueDrops != 84 {
		t.Fatalf("100 packets for one address: %+v", st)
	}
	r.drain()
	r.peerReplies(macPeer)
	if got := tally(r.received(), ipPeer); got.ipTo[macPeer] != 16 {
		t.Fatalf("sent %+v", got)
	}
}

// TestARPFromImpossibleSendersIsIgnored: a request for our address from an
// address that cannot be a neighbour's (ours, broadcast, multicast,
// loopback) makes no entry and gets no answer.
func TestARPFromImpossibleSendersIsIgnored(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	for _, ip := range [][4]byte{ipUs, {198, 18, 0, 255}, {255, 255, 255, 255}, {224, 0, 0, 1}, {127, 0, 0, 1}, {0, 1, 2, 3}} {
		r.send(arpFrame(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(1), SenderIP: ip, TargetIP: ipUs}))
		if got := r.received(); len(got) != 0 || len(r.s.neigh.entries) != 0 {
			t.Fatalf("request from %v: answered %d, %d entries", ip, len(got), len(r.s.neigh.entries))
		}
	}
}

package neigh

import (
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
)

// TestAProbeForOurAddressIsAnsweredAndMakesNoEntry: a host doing
// duplicate-address detection (RFC 5227: sender 0.0.0.0, target our
// address) hears from us, as arp_process answers it: a reply to the
// prober's MAC, target address 0.0.0.0, and no entry for 0.0.0.0.
func TestAProbeForOurAddressIsAnsweredAndMakesNoEntry(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	prober := macN(7)
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: prober, TargetIP: ipUs})
	got := tally(h.received(), [4]byte{})
	want := arp.Packet{Op: arp.OpReply, SenderMAC: macUs, SenderIP: ipUs, TargetMAC: prober, TargetIP: [4]byte{}}
	if len(got.replies) != 1 || got.replies[0] != want || got.replyTo[0] != prober {
		t.Fatalf("answers %+v to %v, want %+v to %v", got.replies, got.replyTo, want, prober)
	}
	// A probe for another address is not ours to answer.
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: prober, TargetIP: ipN(9)})
	if got := h.received(); len(got) != 0 {
		t.Fatalf("answered a probe for someone else: %+v", got)
	}
	if n := h.tab.Len(); n != 0 {
		t.Fatalf("probes made %d entries", n)
	}
}

// TestUnsolicitedARPCreatesNoEntries: with arp_accept off (Linux's default)
// replies nobody asked for and gratuitous announcements create no entry, so
// a flood of them cannot grow the table.
func TestUnsolicitedARPCreatesNoEntries(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	for i := 0; i < 20000; i++ {
		ip := [4]byte{198, 18, byte(i >> 8), byte(i)}
		if ip == ipUs {
			continue
		}
		switch i % 3 {
		case 0: // a reply to us nobody asked for
			h.arp(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: macN(i), SenderIP: ip, TargetMAC: macUs, TargetIP: ipUs})
		case 1: // a gratuitous request
			h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ip, TargetIP: ip})
		case 2: // a gratuitous reply
			h.arp(eth.Broadcast, arp.Packet{Op: arp.OpReply, SenderMAC: macN(i), SenderIP: ip, TargetMAC: macN(i), TargetIP: ip})
		}
	}
	if n := h.tab.Len(); n != 0 {
		t.Fatalf("unsolicited ARP packets made %d entries", n)
	}
}

// TestUnansweredAddressFailsAfterThreeBroadcasts: an unknown address is
// asked for by broadcast, mcast_solicit (3) times, retrans_time (1 s) apart;
// then the entry fails and the packets waiting for it go (res_failed). The
// next packet starts over.
func TestUnansweredAddressFailsAfterThreeBroadcasts(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	ghost := [4]byte{198, 18, 0, 77}
	h.send(ghost)
	h.send(ghost)
	if st := h.state(ghost); st != "INCOMPLETE" {
		t.Fatalf("after sending: %q", st)
	}
	if got := tally(h.received(), ghost); got.broadcastReqs != 1 || len(got.ipTo) != 0 {
		t.Fatalf("at once: %+v", got)
	}
	if held, _ := h.held.now(); held != 2 {
		t.Fatalf("2 packets waiting, %d mbufs held", held)
	}
	h.advance(2900 * time.Millisecond)
	if got := tally(h.received(), ghost); got.broadcastReqs != 2 || h.state(ghost) != "INCOMPLETE" {
		t.Fatalf("within 3 s: %+v, %s", got, h.state(ghost))
	}
	h.advance(200 * time.Millisecond)
	st := h.tab.Stats()
	if held, _ := h.held.now(); h.state(ghost) != "FAILED" || st.ResolveFailed != 1 || st.QueueDrops != 2 || held != 0 {
		t.Fatalf("after 3 s: %s, %d held, %+v", h.state(ghost), held, st)
	}
	if len(h.l.dropped) != 2 {
		t.Fatalf("%d packets freed, want the 2 that waited", len(h.l.dropped))
	}
	if got := tally(h.received(), ghost); got.broadcastReqs != 0 {
		t.Fatalf("asked again after giving up: %+v", got)
	}
	h.send(ghost)
	if got := tally(h.received(), ghost); got.broadcastReqs != 1 || h.state(ghost) != "INCOMPLETE" {
		t.Fatalf("sending again: %+v, %s", got, h.state(ghost))
	}
}

// TestAnswerSendsWhatWaitedAndConfirms: the peer's unicast reply to our
// request makes its entry REACHABLE and sends the packets that waited, in
// order.
func TestAnswerSendsWhatWaitedAndConfirms(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	for i := 0; i < 3; i++ {
		h.send(ipPeer)
	}
	h.received()
	h.peerReplies(macPeer)
	if got := tally(h.received(), ipPeer); got.ipTo[macPeer] != 3 || h.state(ipPeer) != "REACHABLE" {
		t.Fatalf("after the answer: %+v, %s", got, h.state(ipPeer))
	}
	if want := []uint64{1, 2, 3}; len(h.l.sent) != 3 || h.l.sent[0] != want[0] || h.l.sent[1] != want[1] || h.l.sent[2] != want[2] {
		t.Fatalf("sent %v, want %v", h.l.sent, want)
	}
	if held, _ := h.held.now(); held != 0 || h.tab.Stats().QueueDrops != 0 {
		t.Fatalf("%d held, %+v", held, h.tab.Stats())
	}
}

// TestStaleAddressInUseIsReprobedByUnicastThenFails: an address learned
// from a request is STALE; used, it goes to DELAY and is used as is; not
// confirmed within delay_first_probe_time (5 s) it goes to PROBE, asked by
// unicast ucast_solicit (3) times, and then fails.
func TestStaleAddressInUseIsReprobedByUnicastThenFails(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.peerAsks()
	h.received()
	if st := h.state(ipPeer); st != "STALE" {
		t.Fatalf("learned from a request: %q", st)
	}
	h.send(ipPeer)
	if got := tally(h.received(), ipPeer); got.ipTo[macPeer] != 1 || h.state(ipPeer) != "DELAY" {
		t.Fatalf("used: %+v, %s", got, h.state(ipPeer))
	}
	h.advance(4900 * time.Millisecond)
	if h.state(ipPeer) != "DELAY" {
		t.Fatalf("before 5 s: %s", h.state(ipPeer))
	}
	h.advance(200 * time.Millisecond)
	if got := tally(h.received(), ipPeer); got.unicastReqs != 1 || got.broadcastReqs != 0 || h.state(ipPeer) != "PROBE" {
		t.Fatalf("after 5 s: %+v, %s", got, h.state(ipPeer))
	}
	h.send(ipPeer) // still sent while probing
	h.advance(2 * time.Second)
	if got := tally(h.received(), ipPeer); got.unicastReqs != 2 || got.ipTo[macPeer] != 1 {
		t.Fatalf("probing: %+v", got)
	}
	h.advance(time.Second)
	if h.state(ipPeer) != "FAILED" || h.tab.Stats().ResolveFailed != 1 {
		t.Fatalf("unanswered probes: %s, %+v", h.state(ipPeer), h.tab.Stats())
	}
}

// TestProbeAnsweredIsReachableUntilItsTimeRunsOut: a unicast answer to a
// probe confirms the address; after the reachable time (randomised from
// 15 to 45 s) without use it is STALE again, and while in use it goes to
// DELAY instead.
func TestProbeAnsweredIsReachableUntilItsTimeRunsOut(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	reach := time.Duration(h.tab.reachable)
	if reach < 15*time.Second || reach >= 45*time.Second {
		t.Fatalf("reachable time %v outside 15..45 s", reach)
	}
	h.peerAsks()
	h.send(ipPeer)
	h.advance(5100 * time.Millisecond)
	h.received()
	h.peerReplies(macPeer)
	if st := h.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("answered: %q", st)
	}
	h.advance(reach - 200*time.Millisecond)
	if st := h.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("within the reachable time: %q", st)
	}
	h.advance(300 * time.Millisecond)
	if st := h.state(ipPeer); st != "STALE" {
		t.Fatalf("after the reachable time, unused: %q", st)
	}
	// Confirmed again and used just before its time runs out: DELAY,
	// and a confirmation within the delay makes it REACHABLE directly.
	h.send(ipPeer) // STALE -> DELAY
	h.peerReplies(macPeer)
	if st := h.state(ipPeer); st != "REACHABLE" {
		t.Fatalf("confirmed while delayed: %q", st)
	}
	h.advance(reach - time.Second)
	h.send(ipPeer)
	h.advance(1100 * time.Millisecond)
	if st := h.state(ipPeer); st != "DELAY" {
		t.Fatalf("in use when its time ran out: %q", st)
	}
}

// TestKnownAddressChangesOnlyAfterLocktimeOrByGratuitousARP: a different
// MAC for a known address is ignored within locktime (1 s) of the last
// change, as Linux keeps the first of several racing answers; after it, or
// from a gratuitous announcement, it replaces the old one.
func TestKnownAddressChangesOnlyAfterLocktimeOrByGratuitousARP(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.send(ipPeer)
	h.peerReplies(macPeer)
	other, third := macN(1), macN(2)
	h.peerReplies(other)
	if e := h.entry(ipPeer); e.mac() != macPeer {
		t.Fatalf("replaced within locktime by %v", e.mac())
	}
	h.advance(1100 * time.Millisecond)
	h.peerReplies(other)
	if e := h.entry(ipPeer); e.mac() != other || e.state() != nudReachable {
		t.Fatalf("after locktime: %v %v", e.mac(), e.state())
	}
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: third, SenderIP: ipPeer, TargetIP: ipPeer})
	if e := h.entry(ipPeer); e.mac() != third || e.state() != nudStale {
		t.Fatalf("after a gratuitous announcement: %v %v", e.mac(), e.state())
	}
	allocs := h.tab.Stats().Allocs
	h.received()
	h.send(ipPeer)
	if got := tally(h.received(), ipPeer); got.ipTo[third] != 1 || h.tab.Stats().Allocs != allocs {
		t.Fatalf("sent %+v", got)
	}
}

// TestForcedGCEvictsOldUnreferencedEntriesFirst: at gc_thresh3 a new entry
// needs a forced collection to free room; entries updated in the last 5 s
// and entries in use (a timer running) are spared, so at first the entry is
// refused (table_fulls) though the request is still answered; 5 s later the
// oldest unreferenced entries go, down to gc_thresh2.
func TestForcedGCEvictsOldUnreferencedEntriesFirst(t *testing.T) {
	h := newHarness(t, Config{GCThresh1: 4, GCThresh2: 8, GCThresh3: 16}, 512)
	h.send(ipPeer)
	h.peerReplies(macPeer) // the oldest entry, REACHABLE: referenced by its timer
	for i := 1; i < 16; i++ {
		h.ask(i)
	}
	if n := h.tab.Len(); n != 16 {
		t.Fatalf("%d entries, want 16", n)
	}
	h.received()
	h.ask(16)
	st := h.tab.Stats()
	if got := tally(h.received(), ipN(116)); len(got.replies) != 1 {
		t.Fatalf("a request refused an entry went unanswered: %+v", got)
	}
	if st.Entries != 16 || st.TableFulls != 1 || st.ForcedGCRuns != 1 || st.ForcedGCEvictions != 0 {
		t.Fatalf("table full: %+v", st)
	}
	h.advance(5100 * time.Millisecond)
	h.ask(16)
	st = h.tab.Stats()
	if st.Entries != 9 || st.ForcedGCRuns != 2 || st.ForcedGCEvictions != 8 {
		t.Fatalf("after 5 s: %+v", st)
	}
	if h.state(ipPeer) != "REACHABLE" || h.entry(ipN(109)) == nil || h.entry(ipN(108)) != nil || h.entry(ipN(116)) == nil {
		t.Fatal("forced collection took the wrong entries")
	}
}

// TestPeriodicGCRemovesUnusedEntriesOnceTheTableIsLarge: every 15 s, with
// gc_thresh1 entries or more, unreferenced entries not used for
// gc_stale_time (60 s) go; below gc_thresh1 nothing does.
func TestPeriodicGCRemovesUnusedEntriesOnceTheTableIsLarge(t *testing.T) {
	h := newHarness(t, Config{GCThresh1: 4}, 512)
	for i := 0; i < 3; i++ {
		h.ask(i)
	}
	h.advance(2 * time.Minute)
	if st := h.tab.Stats(); st.Entries != 3 || st.PeriodicGCRuns < 7 {
		t.Fatalf("below gc_thresh1: %+v", st)
	}
	h.ask(3)
	h.ask(4)
	h.send(ipN(100)) // used, and confirmed: spared
	h.arp(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: macN(0), SenderIP: ipN(100), TargetMAC: macUs, TargetIP: ipUs})
	h.advance(50 * time.Second)
	if st := h.tab.Stats(); st.Entries != 3 || st.PeriodicGCEvictions != 2 {
		t.Fatalf("after 50 s: %+v", st)
	}
	if h.entry(ipN(100)) == nil || h.entry(ipN(101)) != nil || h.entry(ipN(103)) == nil {
		t.Fatal("collected the wrong entries")
	}
}

// TestWaitingPacketsAreBoundedPerAddress: packets for an unresolved address
// may hold unres_qlen_bytes, or a quarter of the held-memory cap if that is
// less; beyond it the oldest are dropped (unres_discards).
func TestWaitingPacketsAreBoundedPerAddress(t *testing.T) {
	h := newHarness(t, Config{}, 64)
	for i := 0; i < 100; i++ {
		h.send(ipPeer)
	}
	held, _ := h.held.now()
	if st := h.tab.Stats(); held != 16 || st.QueueDrops != 84 {
		t.Fatalf("100 packets for one address: %d held, %+v", held, st)
	}
	h.received()
	h.peerReplies(macPeer)
	if got := tally(h.received(), ipPeer); got.ipTo[macPeer] != 16 || h.l.sent[0] != 85 {
		t.Fatalf("sent %+v, the first %d", got, h.l.sent[0])
	}
}

// TestWaitingPacketsStayWithinTheHeldCap: packets for many unresolved
// addresses together hold no more than the cap; the ones past it are
// dropped and counted.
func TestWaitingPacketsStayWithinTheHeldCap(t *testing.T) {
	h := newHarness(t, Config{}, 64)
	for i := 0; i < 200; i++ {
		h.send(ipN(1000 + i))
	}
	held, peak := h.held.now()
	if st := h.tab.Stats(); held != 64 || peak != 64 || st.QueueDrops != 136 {
		t.Fatalf("200 packets for 200 addresses: %d held (peak %d), %+v", held, peak, st)
	}
	h.advance(4 * time.Second)
	if held, _ := h.held.now(); held != 0 || h.tab.Stats().QueueDrops != 200 {
		t.Fatalf("after every address failed: %d held, %+v", held, h.tab.Stats())
	}
}

// TestARPFromImpossibleSendersIsIgnored: a request for our address from an
// address that cannot be a neighbour's (ours, broadcast, multicast,
// loopback, this network) makes no entry and gets no answer; nor does a
// request from a multicast MAC or for a multicast or loopback address.
func TestARPFromImpossibleSendersIsIgnored(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	for _, ip := range [][4]byte{ipUs, {198, 18, 0, 255}, {255, 255, 255, 255}, {224, 0, 0, 1}, {127, 0, 0, 1}, {0, 1, 2, 3}} {
		h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(1), SenderIP: ip, TargetIP: ipUs})
		if got := h.received(); len(got) != 0 || h.tab.Len() != 0 {
			t.Fatalf("request from %v: answered %d, %d entries", ip, len(got), h.tab.Len())
		}
	}
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: eth.MAC{0x01, 0, 0x5e, 0, 0, 1}, SenderIP: ipPeer, TargetIP: ipUs})
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: [4]byte{224, 0, 0, 1}})
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: [4]byte{127, 0, 0, 1}})
	if got := h.received(); len(got) != 0 || h.tab.Len() != 0 {
		t.Fatalf("answered %d, %d entries", len(got), h.tab.Len())
	}
}

// TestMalformedARPIsCountedAndDropped: a packet too short, or for another
// hardware or protocol type, is counted in InErrors and freed.
func TestMalformedARPIsCountedAndDropped(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	good := make([]byte, arp.PacketLen)
	arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: ipUs}.Put(good)
	for _, b := range [][]byte{good[:27], append([]byte{0, 6}, good[2:]...), append(append([]byte{}, good[:7]...), append([]byte{9}, good[8:]...)...)} {
		m, _ := h.l.cs.Alloc(h.l.pool)
		d, _ := m.Append(len(b))
		copy(d, b)
		h.tab.Input(h.l, h.dev, m, false)
	}
	if st := h.tab.Stats(); st.InErrors != 3 || st.InRequests != 0 || h.tab.Len() != 0 || len(h.received()) != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestBroadcastNextHopsNeedNoAddress: the limited broadcast and the
// subnet's broadcast go to the Ethernet broadcast address, making no entry.
func TestBroadcastNextHopsNeedNoAddress(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.send([4]byte{255, 255, 255, 255})
	h.send([4]byte{198, 18, 0, 255})
	if got := tally(h.received(), [4]byte{}); got.ipTo[eth.Broadcast] != 2 || h.tab.Len() != 0 {
		t.Fatalf("%+v, %d entries", got, h.tab.Len())
	}
}

// TestWithoutBuffersARPIsCountedNotSent: when the shard has no buffer for a
// request or a reply, NoMbuf counts it.
func TestWithoutBuffersARPIsCountedNotSent(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.l.noMbuf = true
	h.peerAsks()
	h.send(ipN(1000))
	if st := h.tab.Stats(); st.NoMbuf != 2 || st.OutReplies != 0 || st.OutRequests != 0 || h.l.arpOut != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestNextIsTheEarliestTimer: Next tells a loop when the table may next
// need Advance (at or before the earliest deadline), and Advance does
// nothing before the deadline.
func TestNextIsTheEarliestTimer(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	gc := start + int64(15*time.Second)
	if when, ok := h.tab.Next(); !ok || when <= start || when > gc {
		t.Fatalf("Next %v %v, want the periodic collection, at 15 s at the latest", time.Duration(when-start), ok)
	}
	h.send(ipPeer)
	retry := start + int64(time.Second)
	if when, ok := h.tab.Next(); !ok || when <= start || when > retry {
		t.Fatalf("Next %v %v, want the retransmission, at 1 s at the latest", time.Duration(when-start), ok)
	}
	if n := h.tab.Advance(h.l, retry-1); n != 0 {
		t.Fatalf("Advance ran %d timers early", n)
	}
	if n := h.tab.Advance(h.l, retry); n != 1 {
		t.Fatalf("Advance ran %d timers when one was due", n)
	}
	h.tab.Clear(h.l)
	if _, ok := h.tab.Next(); ok {
		t.Fatal("a timer is armed after Clear")
	}
}

// TestAdvanceDoesNotWaitForAnotherShard: while another goroutine holds
// the table, Advance returns at once having run nothing, and a later call
// runs what is due.
func TestAdvanceDoesNotWaitForAnotherShard(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.send(ipPeer)
	h.tab.mu.Lock()
	n := h.tab.Advance(h.l, start+int64(2*time.Second))
	h.tab.mu.Unlock()
	if n != 0 {
		t.Fatalf("Advance ran %d timers under another's lock", n)
	}
	if n := h.tab.Advance(h.l, start+int64(2*time.Second)); n != 1 {
		t.Fatalf("the next Advance ran %d timers, want 1", n)
	}
}

// TestClearFreesEveryWaitingPacket: Clear empties the table and gives back
// every charge.
func TestClearFreesEveryWaitingPacket(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	for i := 0; i < 10; i++ {
		h.send(ipN(1000 + i))
	}
	h.tab.Clear(h.l)
	if held, _ := h.held.now(); held != 0 || h.tab.Len() != 0 || len(h.l.dropped) != 10 {
		t.Fatalf("%d held, %d entries, %d freed", held, h.tab.Len(), len(h.l.dropped))
	}
}

// TestBadConfigsAreRefusedSayingWhatToDo: New refuses negative knobs and
// thresholds that do not rise, naming the field.
func TestBadConfigsAreRefusedSayingWhatToDo(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Retries: -1}, "Retries -1 is negative: use 0 for the default (3)"},
		{Config{RetryInterval: -time.Second}, "RetryInterval -1s is negative"},
		{Config{GCThresh3: 100}, "set the lower thresholds too"},
		{Config{GCThresh1: 10, GCThresh2: 5, GCThresh3: 20}, "do not rise"},
		{Config{GCThresh1: 1, GCThresh2: 2, GCThresh3: maxEntries + 1}, "lower it"},
	} {
		_, err := New(c.cfg, route.NewRoutes(), &heldCap{limit: 8}, 8, siphash.NewKey(), 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(Config{}, route.NewRoutes(), &heldCap{limit: 8}, 0, siphash.NewKey(), 0); err == nil {
		t.Error("a held-memory bound of 0 was accepted")
	}
}

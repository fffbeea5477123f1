package neigh

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
)

// Input handles a received ARP packet, m at the ARP header, as Linux's
// arp_rcv and arp_process do with the default settings (arp_accept=0,
// arp_ignore=0, no proxy ARP). toUs is whether the frame was sent to our
// MAC rather than broadcast. It takes m; malformed packets are counted and
// dropped.
//
//   - A probe (RFC 5227 section 2.1.1: sender address 0.0.0.0) for one of
//     our addresses is answered, to the prober's MAC with target address
//     0.0.0.0, so that a host checking for a duplicate learns the address is
//     taken. It makes no entry.
//   - A request for one of our addresses makes or refreshes the sender's
//     entry (STALE: the sender spoke, it did not confirm itself) and is
//     answered.
//   - Anything else only updates an entry we already have: REACHABLE for a
//     reply sent to our MAC, STALE otherwise. A different MAC replaces the
//     one we know only after locktime, or when announced by gratuitous ARP.
//
// Requests for multicast or loopback addresses and packets from a multicast
// MAC are ignored, and so are senders that could not be a neighbour's
// address (multicast, broadcast, loopback, 0.0.0.0/8 but for probes, and our
// own, as ip_route_input's source check refuses them).
func (t *Table) Input(l Link, dev *link.Device, m engine.Mbuf, toUs bool) {
	p, err := arp.Parse(m.Data())
	l.Free(m) // p is a copy
	t.lock(l)
	defer t.unlock()
	if err != nil {
		t.stats.InErrors++
		return
	}
	if p.Op == arp.OpRequest {
		t.stats.InRequests++
	} else {
		t.stats.InReplies++
	}
	sip, tip := p.SenderIP, p.TargetIP
	if dev.Loopback || p.SenderMAC.IsMulticast() || tip[0] >= 224 || tip[0] == 127 {
		return
	}
	if p.IsProbe() {
		if t.local(tip) {
			t.reply(dev, p)
		}
		return
	}
	if t.martian(dev, sip) {
		return
	}
	now := t.clock.Load()
	if p.Op == arp.OpRequest && t.local(tip) {
		// neigh_event_ns: whoever asks for us is about to talk to us.
		e := t.lookup(dev.ID, sip)
		if e == nil {
			e = t.create(dev, sip, now)
		}
		if e != nil {
			t.update(e, p.SenderMAC, nudStale, true, now)
		}
		// Linux stays silent when it cannot make the entry; we answer
		// anyway, since a full table must not make us unreachable and the
		// answer costs no memory.
		t.reply(dev, p)
		return
	}
	e := t.lookup(dev.ID, sip)
	if e == nil {
		return // arp_accept=0: no entry from an unsolicited packet
	}
	garp := sip == tip && (p.Op == arp.OpRequest || p.TargetMAC == p.SenderMAC)
	override := now > e.updated+arpLocktime || garp
	state := nudStale
	if p.Op == arp.OpReply && toUs {
		state = nudReachable
	}
	t.update(e, p.SenderMAC, state, override, now)
}

// local reports whether ip is one of our addresses, on any device
// (arp_ignore=0 answers for them all).
func (t *Table) local(ip [4]byte) bool {
	r, ok := t.routes.Lookup4(ip)
	return ok && r.Kind == route.KindLocal
}

// martian reports whether ip cannot be a neighbour's own address.
func (t *Table) martian(dev *link.Device, ip [4]byte) bool {
	return ip[0] == 0 || ip[0] == 127 || ip[0] >= 224 && ip[0] < 240 ||
		isBroadcast(dev, ip) || t.local(ip)
}

// reply answers the request req for one of our addresses (arp_send_dst with
// ARPOP_REPLY): to the asker's MAC, from ours. Called under mu.
func (t *Table) reply(dev *link.Device, req arp.Packet) {
	t.output(dev, req.SenderMAC, arp.Packet{Op: arp.OpReply,
		SenderMAC: dev.MAC, SenderIP: req.TargetIP, TargetMAC: req.SenderMAC, TargetIP: req.SenderIP})
}

// request asks who has ip, from dev's address: broadcast, or to dst alone
// when re-checking a known address (arp_solicit). Called under mu.
func (t *Table) request(dev *link.Device, dst eth.MAC, ip [4]byte) {
	t.output(dev, dst, arp.Packet{Op: arp.OpRequest, SenderMAC: dev.MAC, SenderIP: dev.Addr.Addr().As4(), TargetIP: ip})
}

// output builds the ARP packet p in a buffer of the calling shard and sends
// it to dst, counting it.
func (t *Table) output(dev *link.Device, dst eth.MAC, p arp.Packet) {
	m, err := t.link.Alloc()
	if err != nil {
		t.stats.NoMbuf++
		return
	}
	b, err := m.Append(arp.PacketLen)
	if err != nil { // a fresh buffer has the room: not reached
		t.link.Free(m)
		t.stats.NoMbuf++
		return
	}
	p.Put(b)
	if p.Op == arp.OpRequest {
		t.stats.OutRequests++
	} else {
		t.stats.OutReplies++
	}
	t.link.Output(dev, dst, eth.TypeARP, m)
}

package stack

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/network/route"
)

// input handles a received ARP packet as Linux's arp_process does with its
// default settings (arp_accept=0, arp_ignore=0, no proxy ARP). toUs is
// whether the frame was sent to our MAC rather than broadcast.
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
func (n *neighbours) input(dev *device, m engine.Mbuf, toUs bool) {
	s := n.s
	defer s.cs.Free(m)
	p, err := arp.Parse(m.Data())
	if err != nil {
		s.stats.ARPInErrors++
		return
	}
	if p.Op == arp.OpRequest {
		s.stats.ARPInRequests++
	} else {
		s.stats.ARPInReplies++
	}
	sip, tip := p.SenderIP, p.TargetIP
	if dev.Loopback || eth.MAC(p.SenderMAC).IsMulticast() || tip[0] >= 224 || tip[0] == 127 {
		return
	}
	if p.IsProbe() {
		if n.local(tip) {
			n.reply(dev, p)
		}
		return
	}
	if n.martian(dev, sip) {
		return
	}
	now := n.clock()
	if p.Op == arp.OpRequest && n.local(tip) {
		// neigh_event_ns: whoever asks for us is about to talk to us.
		k := neighKey{dev.ID, sip}
		e := n.entries[k]
		if e == nil {
			e = n.create(k, now)
		}
		if e != nil {
			n.update(e, p.SenderMAC, nudStale, true, now)
		}
		// Linux stays silent when it cannot make the entry; we answer
		// anyway, since a full table must not make us unreachable and the
		// answer costs no memory.
		n.reply(dev, p)
		return
	}
	e := n.entries[neighKey{dev.ID, sip}]
	if e == nil {
		return // arp_accept=0: no entry from an unsolicited packet
	}
	garp := sip == tip && (p.Op == arp.OpRequest || p.TargetMAC == p.SenderMAC)
	override := now > e.updated+arpLocktime || garp
	state := nudStale
	if p.Op == arp.OpReply && toUs {
		state = nudReachable
	}
	n.update(e, p.SenderMAC, state, override, now)
}

// local reports whether ip is one of our addresses, on any device
// (arp_ignore=0 answers for them all).
func (n *neighbours) local(ip [4]byte) bool {
	r, ok := n.s.routes.Lookup(netip.AddrFrom4(ip))
	return ok && r.Kind == route.KindLocal
}

// martian reports whether ip cannot be a neighbour's own address.
func (n *neighbours) martian(dev *device, ip [4]byte) bool {
	return ip[0] == 0 || ip[0] == 127 || ip[0] >= 224 && ip[0] < 240 ||
		ip == [4]byte{255, 255, 255, 255} || ip == broadcastOf(dev) || n.local(ip)
}

// reply answers the request req for one of our addresses (arp_send_dst with
// ARPOP_REPLY): to the asker's MAC, from ours.
func (n *neighbours) reply(dev *device, req arp.Packet) {
	s := n.s
	r, err := s.cs.Alloc(s.pool)
	if err != nil {
		s.stats.NoMbuf++
		return
	}
	b, _ := r.Append(arp.FrameLen)
	arp.ReplyTo(b, req, dev.MAC)
	s.stats.ARPOutReplies++
	s.xmit(dev, r)
}

// request asks who has ip, from dev's address: broadcast, or to dst alone
// when re-checking a known address.
func (n *neighbours) request(dev *device, dst eth.MAC, ip [4]byte) {
	s := n.s
	m, err := s.cs.Alloc(s.pool)
	if err != nil {
		s.stats.NoMbuf++
		return
	}
	b, _ := m.Append(arp.FrameLen)
	arp.PutRequestTo(b, dst, dev.MAC, dev.Addr.Addr().As4(), ip)
	s.stats.ARPOutRequests++
	s.xmit(dev, m)
}

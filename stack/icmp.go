package stack

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
	icmpnet "github.com/pollnet/pollnet/stack/network/icmp"
	"github.com/pollnet/pollnet/stack/network/route"
)

// Aliases for the ICMP messages the receive path sends.
const (
	icmpDestUnreach   = icmp.TypeDestUnreachable
	icmpTimeExceeded  = icmp.TypeTimeExceeded
	icmpNetUnreach    = icmp.CodeNetUnreachable
	icmpProtoUnreach  = icmp.CodeProtoUnreachable
	icmpPortUnreach   = icmp.CodePortUnreachable
	icmpFragNeeded    = icmp.CodeFragNeeded
	icmpMaxQuoteBytes = ipv4.MaxHeaderLen + 8
)

// icmpInput handles an ICMP message addressed to us (icmp_rcv): echo
// requests are answered in place; everything else is counted.
func (sh *shard) icmpInput(dev *link.Device, m engine.Mbuf, h ipv4.Header) {
	sh.stats.ICMPInMsgs++
	hl := int(h.HeaderLen)
	n := m.PktLen() - hl
	first := m.Data()
	if n < icmp.HeaderLen || len(first) < hl+icmp.HeaderLen ||
		(m.Flags()&engine.FlagRxL4CsumGood == 0 && ipv4.Checksum(nil, ipv4.MbufSum(m, hl, n, 0)) != 0) {
		sh.stats.ICMPInErrors++
		sh.cs.Free(m)
		return
	}
	msg, err := icmp.ParseUnverified(first[hl:])
	if err != nil {
		sh.stats.ICMPInErrors++
		sh.cs.Free(m)
		return
	}
	if msg.Type != icmp.TypeEchoRequest {
		// An error goes to the transport that owns the quoted flow.
		sh.icmpErrInput(msg)
		sh.cs.Free(m) // replies and errors for sockets we do not have
		return
	}
	sh.stats.ICMPInEchos++
	if m = sh.own(m); m == engine.NoMbuf {
		return
	}
	first = m.Data()
	if icmp.EchoReplyInPlace(first[hl:]) != nil {
		sh.stats.ICMPInErrors++
		sh.cs.Free(m)
		return
	}
	// Same datagram back: swap the addresses, fresh ID and TTL, no options.
	if hl > ipv4.HeaderLen {
		sh.cs.Free(m) // echo requests with IP options are not answered
		return
	}
	// The request was for one of our unicast addresses (routeInput sent
	// broadcasts to icmpInputBroadcast): the reply comes from it.
	ipv4.Header{TotalLen: uint16(m.PktLen()), ID: sh.s.ipIdent(h.Dst, h.Src, ipv4.ProtoICMP), TTL: ipv4.DefaultTTL,
		Protocol: ipv4.ProtoICMP, Src: h.Dst, Dst: h.Src}.Put(first, nil)
	r, ok := sh.s.routes.Lookup(netip.AddrFrom4(h.Src))
	if !ok {
		sh.stats.IPOutNoRoutes++
		sh.cs.Free(m)
		return
	}
	out := sh.s.outDevice(r)
	sh.stats.ICMPOutEchoReps++
	sh.stats.ICMPOutMsgs++
	sh.stats.IPOutRequests++
	sh.routeOutput(out, r, h.Src, m, false)
}

// icmpInputBroadcast takes an ICMP message sent to a broadcast address:
// nothing is answered and all is counted as an input error, as icmp_rcv
// does with icmp_echo_ignore_broadcasts=1 (RFC 1122 3.2.2.6: an echo
// request to a broadcast "MAY be silently discarded"; answering one makes
// us an amplifier for a smurf attack). Error messages to a broadcast are
// bogus anyway.
func (sh *shard) icmpInputBroadcast(m engine.Mbuf, h ipv4.Header) {
	sh.stats.ICMPInMsgs++
	if first := m.Data(); len(first) > int(h.HeaderLen) && first[h.HeaderLen] == icmp.TypeEchoRequest {
		sh.stats.ICMPInEchos++
	}
	sh.stats.ICMPInErrors++
	sh.cs.Free(m)
}

// icmpError answers the datagram m (starting at its IPv4 header h) with an
// ICMP error, when RFC 1122 allows one and the rate limits have room
// (icmp_send). It takes m.
//
// RFC 1122 3.2.2: "An ICMP error message MUST NOT be sent as the result of
// receiving: an ICMP error message, or a datagram destined to an IP
// broadcast or IP multicast address, or a datagram sent as a link-layer
// broadcast, or a non-initial fragment, or a datagram whose source address
// does not define a single host -- e.g., a zero address, a loopback
// address, a broadcast address, a multicast address, or a Class E
// address." routeInput has already dropped unicast datagrams that came as
// link-layer broadcasts, and loopback sources from any wire.
func (sh *shard) icmpError(m engine.Mbuf, h ipv4.Header, typ, code uint8, mtu uint16) {
	defer sh.cs.Free(m)
	var quote [icmpMaxQuoteBytes]byte
	q := icmp.Quote(quote[:m.CopyOut(quote[:], 0)])
	dr, dok := sh.s.routes.Lookup4(h.Dst)
	toBroadcast := h.Dst == limitedBroadcast || dok && dr.Kind == route.KindBroadcast
	sr, sok := sh.s.routes.Lookup4(h.Src)
	if !icmp.ErrorAllowed(q, toBroadcast) || h.Src[0] == 0 || sok && sr.Kind == route.KindBroadcast {
		return
	}
	switch sh.s.icmpRL.Allow(typ, code, h.Src, sok && sr.Kind == route.KindLocal) {
	case icmpnet.LimitedGlobal:
		sh.stats.ICMPOutRateLimitGlobal++
		return
	case icmpnet.LimitedHost:
		sh.stats.ICMPOutRateLimitHost++
		return
	}
	r, err := sh.cs.Alloc(sh.s.pool)
	if err != nil {
		sh.stats.NoMbuf++
		return
	}
	b, _ := r.Append(icmp.HeaderLen + len(q))
	switch typ {
	case icmp.TypeTimeExceeded:
		icmp.PutTimeExceeded(b, code, q)
		sh.stats.ICMPOutTimeExcds++
	default:
		icmp.PutDestUnreachable(b, code, mtu, q)
		sh.stats.ICMPOutDestUnreachs++
	}
	sh.stats.ICMPOutMsgs++
	var src [4]byte // zero: ipOutput takes the route's source, an address of ours
	if dok && dr.Kind == route.KindLocal {
		src = h.Dst // about a datagram for us: from the address it was sent to
	}
	sh.ipOutput(src, h.Src, ipv4.ProtoICMP, r)
}

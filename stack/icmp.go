package stack

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/icmp"
	"github.com/pollnet/pollnet/stack/ipv4"
)

// Aliases for the ICMP messages the receive path sends.
const (
	icmpDestUnreach   = icmp.TypeDestUnreachable
	icmpTimeExceeded  = icmp.TypeTimeExceeded
	icmpNetUnreach    = icmp.CodeNetUnreachable
	icmpProtoUnreach  = icmp.CodeProtoUnreachable
	icmpPortUnreach   = icmp.CodePortUnreachable
	icmpFragNeeded    = icmp.CodeFragNeeded
	icmpErrorsPerSec  = 1000 // icmp_ratelimit: errors sent per second at most
	icmpErrorBurst    = 50
	icmpMaxQuoteBytes = ipv4.MaxHeaderLen + 8
)

// icmpInput handles an ICMP message addressed to us (icmp_rcv): echo
// requests are answered in place; everything else is counted.
func (s *Stack) icmpInput(dev *device, m engine.Mbuf, h ipv4.Header) {
	s.stats.ICMPInMsgs++
	hl := int(h.HeaderLen)
	n := m.PktLen() - hl
	first := m.Data()
	if n < icmp.HeaderLen || len(first) < hl+icmp.HeaderLen ||
		(m.Flags()&engine.FlagRxL4CsumGood == 0 && ipv4.Checksum(nil, ipv4.MbufSum(m, hl, n, 0)) != 0) {
		s.stats.ICMPInErrors++
		s.cs.Free(m)
		return
	}
	msg, err := icmp.ParseUnverified(first[hl:])
	if err != nil {
		s.stats.ICMPInErrors++
		s.cs.Free(m)
		return
	}
	if msg.Type != icmp.TypeEchoRequest {
		// An error goes to the transport that owns the quoted flow.
		s.icmpErrInput(msg)
		s.cs.Free(m) // replies and errors for sockets we do not have
		return
	}
	s.stats.ICMPInEchos++
	if m = s.own(m); m == engine.NoMbuf {
		return
	}
	first = m.Data()
	if icmp.EchoReplyInPlace(first[hl:]) != nil {
		s.stats.ICMPInErrors++
		s.cs.Free(m)
		return
	}
	// Same datagram back: swap the addresses, fresh ID and TTL, no options.
	if hl > ipv4.HeaderLen {
		s.cs.Free(m) // echo requests with IP options are not answered
		return
	}
	s.ipID++
	ipv4.Header{TotalLen: uint16(m.PktLen()), ID: s.ipID, TTL: ipv4.DefaultTTL, Protocol: ipv4.ProtoICMP,
		Src: h.Dst, Dst: h.Src}.Put(first, nil)
	r, ok := s.routes.Lookup(netip.AddrFrom4(h.Src))
	if !ok {
		s.stats.IPOutNoRoutes++
		s.cs.Free(m)
		return
	}
	out := s.devs[r.Dev]
	if r.Kind == ipv4.KindLocal {
		out = s.devs[0]
	}
	s.stats.ICMPOutEchoReps++
	s.stats.ICMPOutMsgs++
	s.stats.IPOutRequests++
	s.routeOutput(out, r, h.Src, m, false)
}

// icmpError answers the datagram m (starting at its IPv4 header h) with an
// ICMP error, when RFC 1122 allows one and the rate limit has room
// (icmp_send). It takes m.
func (s *Stack) icmpError(m engine.Mbuf, h ipv4.Header, typ, code uint8, mtu uint16) {
	defer s.cs.Free(m)
	var quote [icmpMaxQuoteBytes]byte
	q := icmp.Quote(quote[:m.CopyOut(quote[:], 0)])
	if !icmp.ErrorAllowed(q, false) || !s.icmpTokens() {
		return
	}
	r, err := s.cs.Alloc(s.pool)
	if err != nil {
		s.stats.NoMbuf++
		return
	}
	b, _ := r.Append(icmp.HeaderLen + len(q))
	switch typ {
	case icmp.TypeTimeExceeded:
		icmp.PutTimeExceeded(b, code, q)
		s.stats.ICMPOutTimeExcds++
	default:
		icmp.PutDestUnreachable(b, code, mtu, q)
		s.stats.ICMPOutDestUnreachs++
	}
	s.stats.ICMPOutMsgs++
	var src [4]byte
	if lr, ok := s.routes.Lookup(netip.AddrFrom4(h.Dst)); ok && lr.Kind == ipv4.KindLocal {
		src = h.Dst // about a datagram for us: from the address it was sent to
	}
	s.ipOutput(src, h.Src, ipv4.ProtoICMP, r)
}

// icmpTokens takes a token from the error rate limiter, refilled at
// icmpErrorsPerSec up to icmpErrorBurst.
func (s *Stack) icmpTokens() bool {
	now := engine.Nanotime()
	if s.icmpLast == 0 {
		s.icmpLast, s.icmpBucket = now, icmpErrorBurst
	}
	s.icmpBucket = min(icmpErrorBurst, s.icmpBucket+float64(now-s.icmpLast)*icmpErrorsPerSec/1e9)
	s.icmpLast = now
	if s.icmpBucket < 1 {
		return false
	}
	s.icmpBucket--
	return true
}

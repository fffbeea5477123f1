package stack

import (
	"net/netip"
	"syscall"

	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/network/route"
)

// icmpErrInfo is an ICMP error as the transport that owns the quoted flow
// sees it.
type icmpErrInfo struct {
	typ, code uint8
	errno     syscall.Errno // what a socket reports
	hard      bool          // reported to a connected socket without IP_RECVERR
	quoted    ipv4.Header   // the header of the datagram we sent
	transport []byte        // what follows it in the quote: at least 8 bytes
}

// errnoOf is what a socket reports for an ICMP error, and whether the error
// is hard: the peer or a router says the flow cannot work, rather than a
// condition that may pass (RFC 1122 4.1.3.3). The mapping is Linux's
// icmp_err_convert; ok is false for messages no socket is told of.
func errnoOf(typ, code uint8) (errno syscall.Errno, hard, ok bool) {
	switch typ {
	case icmp.TypeDestUnreachable:
		if int(code) >= len(unreachErrnos) {
			return 0, false, false
		}
		u := unreachErrnos[code]
		return u.errno, u.hard, true
	case icmp.TypeTimeExceeded:
		return syscall.EHOSTUNREACH, false, true
	case icmp.TypeParameterProblem:
		return syscall.EPROTO, true, true
	}
	// Source quench is deprecated (RFC 6633); redirects change routes,
	// which we do not take from the wire; the rest are unknown.
	return 0, false, false
}

// unreachErrnos maps destination unreachable codes 0..15.
var unreachErrnos = [...]struct {
	errno syscall.Errno
	hard  bool
}{
	{syscall.ENETUNREACH, false},  // 0 net unreachable
	{syscall.EHOSTUNREACH, false}, // 1 host unreachable
	{syscall.ENOPROTOOPT, true},   // 2 protocol unreachable
	{syscall.ECONNREFUSED, true},  // 3 port unreachable
	{syscall.EMSGSIZE, false},     // 4 fragmentation needed: a path MTU, not a failure
	{syscall.EOPNOTSUPP, false},   // 5 source route failed
	{syscall.ENETUNREACH, true},   // 6 network unknown
	{syscall.EHOSTDOWN, true},     // 7 host unknown
	{syscall.ENONET, true},        // 8 source host isolated
	{syscall.ENETUNREACH, true},   // 9 network administratively prohibited
	{syscall.EHOSTUNREACH, true},  // 10 host administratively prohibited
	{syscall.ENETUNREACH, false},  // 11 network unreachable for TOS
	{syscall.EHOSTUNREACH, false}, // 12 host unreachable for TOS
	{syscall.EHOSTUNREACH, true},  // 13 communication administratively prohibited
	{syscall.EHOSTUNREACH, true},  // 14 host precedence violation
	{syscall.EHOSTUNREACH, true},  // 15 precedence cutoff in effect
}

// icmpErrInput hands an ICMP error to the transport of the datagram it
// quotes, through the protocol table (icmp_unreach, then the protocol's
// err_handler). msg aliases the message's packet, which the caller frees
// afterwards. Messages that are not errors are ignored. Nothing here
// allocates: a flood of forged errors costs a parse and a lookup each.
func (s *Stack) icmpErrInput(msg icmp.Message) {
	errno, hard, ok := errnoOf(msg.Type, msg.Code)
	if !ok {
		return
	}
	qh, rest, err := msg.Quoted()
	if err != nil || len(rest) < 8 {
		s.stats.ICMPInErrors++ // RFC 792: an error quotes a header and 8 bytes
		return
	}
	// An error about a datagram we sent to a broadcast or multicast
	// address is bogus: no one host may answer for all (RFC 1122 3.2.2).
	dst := netip.AddrFrom4(qh.Dst)
	if qh.Dst[0] >= 224 {
		return
	}
	if r, ok := s.routes.Lookup(dst); ok && r.Kind == route.KindBroadcast {
		return
	}
	p := &inetProtos[qh.Protocol]
	if p.errHandler == nil {
		return
	}
	// By value: a pointer passed through a function variable escapes.
	p.errHandler(s, icmpErrInfo{typ: msg.Type, code: msg.Code, errno: errno, hard: hard, quoted: qh, transport: rest})
}

package stack

import (
	"net/netip"
	"syscall"

	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	icmpnet "github.com/pollnet/pollnet/stack/network/icmp"
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

// icmpErrInput hands an ICMP error to the transport of the datagram it
// quotes, through the protocol table (icmp_unreach, then the protocol's
// err_handler). msg aliases the message's packet, which the caller frees
// afterwards. Messages that are not errors are ignored. Nothing here
// allocates: a flood of forged errors costs a parse and a lookup each.
func (sh *shard) icmpErrInput(msg icmp.Message) {
	errno, hard, ok := icmpnet.Errno(msg.Type, msg.Code)
	if !ok {
		return
	}
	qh, rest, err := msg.Quoted()
	if err != nil || len(rest) < 8 {
		sh.stats.ICMPInErrors++ // RFC 792: an error quotes a header and 8 bytes
		return
	}
	// An error about a datagram we sent to a broadcast or multicast
	// address is bogus: no one host may answer for all (RFC 1122 3.2.2).
	dst := netip.AddrFrom4(qh.Dst)
	if qh.Dst[0] >= 224 {
		return
	}
	if r, ok := sh.s.routes.Lookup(dst); ok && r.Kind == route.KindBroadcast {
		return
	}
	p := &inetProtos[qh.Protocol]
	if p.errHandler == nil {
		return
	}
	// By value: a pointer passed through a function variable escapes.
	p.errHandler(sh, icmpErrInfo{typ: msg.Type, code: msg.Code, errno: errno, hard: hard, quoted: qh, transport: rest})
}

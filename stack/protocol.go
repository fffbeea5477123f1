package stack

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
)

// netProtocol is a protocol's entry in the protocol table, as Linux's
// struct net_protocol: the handler of the datagrams it receives, and, for a
// transport that owns flows, the handler of the ICMP errors that quote one
// of its datagrams.
type netProtocol struct {
	// handler takes a datagram addressed to us, m starting at its IPv4
	// header h. It takes m.
	handler func(sh *shard, dev *link.Device, m engine.Mbuf, h ipv4.Header)
	// errHandler takes an ICMP error about a datagram of this protocol
	// that we sent. It must not keep e.transport, which aliases the
	// message's packet.
	errHandler func(sh *shard, e icmpErrInfo)
}

// inetProtos is the protocol table, indexed by IP protocol number, as
// Linux's inet_protos. Filled once at start-up, read-only after.
var inetProtos [256]netProtocol

// init registers the protocols (inet_add_protocol). It is an init function
// rather than a composite literal because the handlers refer back to the
// table (ICMP hands errors to the transports), an initialisation cycle.
func init() {
	inetProtos[ipv4.ProtoICMP] = netProtocol{handler: (*shard).icmpInput}
	inetProtos[ipv4.ProtoUDP] = netProtocol{handler: (*shard).udpInput, errHandler: (*shard).udpErr}
	inetProtos[ipv4.ProtoTCP] = netProtocol{handler: (*shard).tcpInput, errHandler: (*shard).tcpErr}
}

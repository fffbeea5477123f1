package stack

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
)

// Input runs a burst of frames received on from up the stack, as the shard
// polling that queue does: for tests that drive a stack by hand, and for
// drivers that deliver to the stack themselves.
func (s *Stack) Input(w *engine.Worker, from engine.QueueRef, pkts []engine.Mbuf) {
	s.shards[from.Queue%len(s.shards)].input(w, from, pkts)
}

// receive is the netdev receive of one frame (__netif_receive_skb): check
// the link header and hand the payload to the protocol of its EtherType.
//
// On a stack of several shards, an IPv4 frame whose flow another shard owns
// goes to that shard (steered is set when it comes from another shard
// already).
func (sh *shard) receive(dev *link.Device, m engine.Mbuf, steered bool) {
	if !steered && len(sh.s.shards) > 1 && !sh.s.rssSteers(dev) {
		if owner := sh.s.ownerOf(m, sh.id); owner != sh.id {
			m.SetRxInfo(dev.ID, 0)
			sh.steerOut[owner] = append(sh.steerOut[owner], m)
			sh.count.steeredOut++
			if len(sh.steerOut[owner]) >= engine.Burst {
				sh.flushSteerTo(owner)
			}
			return
		}
	}
	sh.stats.EthInFrames++
	h, err := eth.Parse(m.Data())
	if err != nil {
		if err == eth.ErrVLAN {
			sh.stats.EthVLANDropped++ // stacked tags
		} else {
			sh.stats.EthInErrors++
		}
		sh.cs.Free(m)
		return
	}
	if h.Tagged {
		// No VLAN devices: a tagged frame belongs to none of ours, whatever
		// its VLAN ID (even 0, a priority tag), and is not read as untagged.
		sh.stats.EthVLANDropped++
		sh.cs.Free(m)
		return
	}
	if !dev.Loopback && h.Dst != dev.MAC && !h.Dst.IsBroadcast() {
		sh.stats.EthNotForUs++ // another host's frame, or multicast we did not join
		sh.cs.Free(m)
		return
	}
	m.Adj(h.Len())
	switch h.Type {
	case eth.TypeIPv4:
		sh.ipInput(dev, m, h.Dst.IsBroadcast())
	case eth.TypeARP:
		sh.s.neigh.Input(sh, dev, m, h.Dst == dev.MAC)
	default:
		sh.stats.EthUnknownType++
		sh.cs.Free(m)
	}
}

// ipInput validates an IPv4 datagram and routes it (ip_rcv, then
// ip_route_input): to local delivery, to forwarding, or to the floor.
func (sh *shard) ipInput(dev *link.Device, m engine.Mbuf, linkBroadcast bool) {
	sh.stats.IPInReceives++
	var h ipv4.Header
	var err error
	if m.Flags()&engine.FlagRxIPCsumGood != 0 {
		h, err = ipv4.ParseOffloaded(m.Data(), m.PktLen())
	} else {
		h, err = ipv4.ParseHeader(m.Data(), m.PktLen())
	}
	if err != nil {
		sh.stats.IPInHdrErrors++
		sh.cs.Free(m)
		return
	}
	// Ethernet pads short frames: the IPv4 length says where the datagram
	// ends. Padding sits in the last segment; anything else is malformed.
	if extra := m.PktLen() - int(h.TotalLen); extra > 0 && m.Trim(extra) != nil {
		sh.stats.IPInHdrErrors++
		sh.cs.Free(m)
		return
	}
	verdict := sh.routeInput(dev, h, linkBroadcast)
	switch verdict {
	case inputDrop:
		sh.cs.Free(m)
		return
	case inputForward:
		sh.forward(dev, m, h)
		return
	}
	if h.IsFragment() {
		whole, done, err := sh.reasm.Add(sh.s.clock(), m)
		sh.armReassembly()
		if err != nil || !done {
			return // held, or refused and freed (counted by the reassembler)
		}
		m = whole
		if h, err = ipv4.ParseOffloaded(m.Data(), m.PktLen()); err != nil {
			sh.stats.IPInHdrErrors++
			sh.cs.Free(m)
			return
		}
	}
	sh.stats.IPInDelivers++
	if verdict == inputBroadcast && h.Protocol == ipv4.ProtoICMP {
		sh.icmpInputBroadcast(m, h) // icmp_echo_ignore_broadcasts
		return
	}
	if p := &inetProtos[h.Protocol]; p.handler != nil {
		p.handler(sh, dev, m, h)
		return
	}
	sh.stats.IPInUnknownProtos++
	sh.icmpError(m, h, icmpDestUnreach, icmpProtoUnreach, 0)
}

// inputRoute is what routeInput decided for a received datagram.
type inputRoute uint8

const (
	inputDrop      inputRoute = iota // dropped and counted
	inputLocal                       // to one of our addresses
	inputBroadcast                   // to a broadcast address: delivered locally
	inputForward                     // to another host
)

// limitedBroadcast is 255.255.255.255.
var limitedBroadcast = [4]byte{255, 255, 255, 255}

// routeInput classifies a datagram that dev received, as
// ip_route_input_slow does, and drops martians: addresses that cannot
// appear on a wire. A martian source is a multicast or broadcast address,
// one in 0.0.0.0/8 (0.0.0.0 itself only to the limited broadcast, as a DHCP
// client sends), a loopback address, or one of our own addresses (and
// broadcasts: fib_validate_source with accept_local=0); a martian
// destination is a loopback address or one in 0.0.0.0/8. The loopback
// device carries only our own datagrams, already routed on output, so it
// is not checked. A datagram that arrived as a link-layer broadcast must
// be for an IP broadcast (RFC 1122 3.3.6: "A host SHOULD silently discard
// a datagram that is received via a link-layer broadcast but does not
// specify an IP multicast or broadcast destination address"), which also
// spares the ICMP error path from having to know how a datagram arrived.
func (sh *shard) routeInput(dev *link.Device, h ipv4.Header, linkBroadcast bool) inputRoute {
	src, dst := h.Src, h.Dst
	if dev.Loopback {
		if dst == limitedBroadcast {
			return inputBroadcast
		}
		if r, ok := sh.s.routes.Lookup4(dst); ok && r.Kind == route.KindLocal {
			return inputLocal
		} else if ok && r.Kind == route.KindBroadcast {
			return inputBroadcast
		}
		return inputForward
	}
	switch {
	case isMulticast4(dst):
		sh.stats.IPInAddrErrors++ // no groups joined (ip_route_input_mc finds no membership)
		return inputDrop
	case isMulticast4(src) || src == limitedBroadcast:
		return sh.martianSource()
	case dst == limitedBroadcast || src == [4]byte{} && dst == [4]byte{}:
		if src != [4]byte{} && !sh.validSource(src) {
			return sh.martianSource()
		}
		return inputBroadcast
	case src[0] == 0:
		return sh.martianSource()
	case dst[0] == 0 || dst[0] == 127:
		sh.stats.IPInMartianDst++
		sh.stats.IPInAddrErrors++
		return inputDrop
	case src[0] == 127:
		return sh.martianSource()
	}
	r, ok := sh.s.routes.Lookup4(dst)
	if ok && (r.Kind == route.KindLocal || r.Kind == route.KindBroadcast) {
		if !sh.validSource(src) {
			return sh.martianSource()
		}
		if r.Kind == route.KindBroadcast {
			return inputBroadcast
		}
	}
	if linkBroadcast {
		sh.stats.IPInAddrErrors++ // a unicast datagram in a link broadcast
		return inputDrop
	}
	if ok && r.Kind == route.KindLocal {
		return inputLocal
	}
	if sh.s.fwd.Load() && !sh.validSource(src) {
		return sh.martianSource()
	}
	return inputForward
}

// validSource reports whether src may be another host's address: not one
// of ours, nor a broadcast address of our subnets.
func (sh *shard) validSource(src [4]byte) bool {
	r, ok := sh.s.routes.Lookup4(src)
	return !ok || r.Kind != route.KindLocal && r.Kind != route.KindBroadcast
}

func (sh *shard) martianSource() inputRoute {
	sh.stats.IPInMartianSrc++
	return inputDrop
}

// isMulticast4 reports whether a is in 224.0.0.0/4.
func isMulticast4(a [4]byte) bool { return a[0]&0xf0 == 0xe0 }

// broadcastOf is the directed broadcast address of dev's subnet, or the
// limited broadcast when the subnet has none (a /31 or a /32, RFC 3021), so
// that comparing an address with both finds every broadcast.
func broadcastOf(dev *link.Device) [4]byte {
	if b, ok := route.Broadcast(dev.Addr); ok {
		return b.As4()
	}
	return limitedBroadcast
}

// forward routes a datagram for another host (ip_forward), when forwarding
// is on: the TTL goes down by one, and a datagram too big for the next link
// with DF set earns an ICMP fragmentation-needed.
func (sh *shard) forward(in *link.Device, m engine.Mbuf, h ipv4.Header) {
	if !sh.s.fwd.Load() {
		sh.stats.IPInAddrErrors++
		sh.cs.Free(m)
		return
	}
	if h.TTL <= 1 {
		sh.icmpError(m, h, icmpTimeExceeded, 0, 0)
		return
	}
	r, ok := sh.s.routes.Lookup(netip.AddrFrom4(h.Dst))
	if !ok {
		sh.stats.IPOutNoRoutes++
		sh.icmpError(m, h, icmpDestUnreach, icmpNetUnreach, 0)
		return
	}
	out := sh.s.devs[r.Dev]
	if m = sh.own(m); m == engine.NoMbuf {
		return
	}
	ipv4.DecTTL(m.Data())
	sh.stats.IPForwDatagrams++
	sh.routeOutput(out, r, h.Dst, m, h.Flags&ipv4.FlagDF != 0)
}

// own returns a packet whose bytes are ours to change: m itself, or, when
// m shares its buffer (a clone, external memory), a copy, freeing m. It
// returns NoMbuf, counted, when no buffer is left for the copy.
func (sh *shard) own(m engine.Mbuf) engine.Mbuf {
	for seg := m; seg != engine.NoMbuf; seg = seg.Next() {
		if !seg.Writable() {
			c, err := sh.copyPacket(m)
			sh.cs.Free(m)
			if err != nil {
				sh.stats.NoMbuf++
				return engine.NoMbuf
			}
			return c
		}
	}
	return m
}

// copyPacket copies a packet, segment by segment, into fresh mbufs of the
// stack's pool.
func (sh *shard) copyPacket(m engine.Mbuf) (engine.Mbuf, error) {
	c, err := sh.cs.Alloc(sh.s.pool)
	if err != nil {
		return engine.NoMbuf, err
	}
	for seg := m; seg != engine.NoMbuf; seg = seg.Next() {
		if err := sh.cs.AppendBytes(c, sh.s.pool, seg.Data()); err != nil {
			sh.cs.Free(c)
			return engine.NoMbuf, err
		}
	}
	return c, nil
}

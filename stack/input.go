package stack

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/eth"
	"github.com/pollnet/pollnet/stack/ipv4"
)

// Input is the engine.Handler of every queue the stack serves: it runs a
// burst of received frames up the stack to completion, then tells the
// sockets that got data. Malformed frames are counted and dropped.
func (s *Stack) Input(w *engine.Worker, from engine.QueueRef, pkts []engine.Mbuf) {
	dev := s.deviceOf(from.Port)
	s.mu.Lock()
	if dev == nil {
		s.stats.EthInErrors += uint64(len(pkts))
		s.cs.FreeBulk(pkts)
		s.mu.Unlock()
		return
	}
	for _, m := range pkts {
		s.receive(dev, m)
	}
	s.flushTx()
	ready := s.takeReady()
	s.mu.Unlock()
	s.notify(ready)
}

// deviceOf finds the device of a port.
func (s *Stack) deviceOf(p engine.Port) *device {
	for _, d := range s.devs {
		if d.port == p {
			return d
		}
	}
	return nil
}

// receive is the netdev receive of one frame (__netif_receive_skb): check
// the link header and hand the payload to the protocol of its EtherType.
func (s *Stack) receive(dev *device, m engine.Mbuf) {
	s.stats.EthInFrames++
	h, err := eth.Parse(m.Data())
	if err != nil {
		s.stats.EthInErrors++
		s.cs.Free(m)
		return
	}
	if !dev.loopback && h.Dst != dev.mac && !h.Dst.IsBroadcast() {
		s.stats.EthNotForUs++ // another host's frame, or multicast we did not join
		s.cs.Free(m)
		return
	}
	m.Adj(h.Len())
	switch h.Type {
	case eth.TypeIPv4:
		s.ipInput(dev, m, h.Dst.IsBroadcast())
	case eth.TypeARP:
		s.neigh.input(dev, m)
	default:
		s.stats.EthUnknownType++
		s.cs.Free(m)
	}
}

// ipInput validates an IPv4 datagram and routes it (ip_rcv, then
// ip_route_input): to local delivery, to forwarding, or to the floor.
func (s *Stack) ipInput(dev *device, m engine.Mbuf, linkBroadcast bool) {
	s.stats.IPInReceives++
	var h ipv4.Header
	var err error
	if m.Flags()&engine.FlagRxIPCsumGood != 0 {
		h, err = ipv4.ParseOffloaded(m.Data(), m.PktLen())
	} else {
		h, err = ipv4.ParseHeader(m.Data(), m.PktLen())
	}
	if err != nil {
		s.stats.IPInHdrErrors++
		s.cs.Free(m)
		return
	}
	// Ethernet pads short frames: the IPv4 length says where the datagram
	// ends. Padding sits in the last segment; anything else is malformed.
	if extra := m.PktLen() - int(h.TotalLen); extra > 0 && m.Trim(extra) != nil {
		s.stats.IPInHdrErrors++
		s.cs.Free(m)
		return
	}
	dst := h.Dst
	r, ok := s.routes.Lookup(netip.AddrFrom4(dst))
	local := ok && (r.Kind == ipv4.KindLocal || r.Kind == ipv4.KindBroadcast) ||
		dst == [4]byte{255, 255, 255, 255} || dst == broadcastOf(dev)
	if !local {
		if linkBroadcast {
			s.stats.IPInAddrErrors++ // a link broadcast for someone else's subnet
			s.cs.Free(m)
			return
		}
		s.forward(dev, m, h)
		return
	}
	if h.IsFragment() {
		whole, done, err := s.reasm.Add(engine.Nanotime(), m)
		if err != nil || !done {
			return // held, or refused and freed (counted by the reassembler)
		}
		m = whole
		if h, err = ipv4.ParseOffloaded(m.Data(), m.PktLen()); err != nil {
			s.stats.IPInHdrErrors++
			s.cs.Free(m)
			return
		}
	}
	s.stats.IPInDelivers++
	if p := &inetProtos[h.Protocol]; p.handler != nil {
		p.handler(s, dev, m, h)
		return
	}
	s.stats.IPInUnknownProtos++
	s.icmpError(m, h, icmpDestUnreach, icmpProtoUnreach, 0)
}

// forward routes a datagram for another host (ip_forward), when forwarding
// is on: the TTL goes down by one, and a datagram too big for the next link
// with DF set earns an ICMP fragmentation-needed.
func (s *Stack) forward(in *device, m engine.Mbuf, h ipv4.Header) {
	if !s.fwd {
		s.stats.IPInAddrErrors++
		s.cs.Free(m)
		return
	}
	if h.TTL <= 1 {
		s.icmpError(m, h, icmpTimeExceeded, 0, 0)
		return
	}
	r, ok := s.routes.Lookup(netip.AddrFrom4(h.Dst))
	if !ok {
		s.stats.IPOutNoRoutes++
		s.icmpError(m, h, icmpDestUnreach, icmpNetUnreach, 0)
		return
	}
	out := s.devs[r.Dev]
	if m = s.own(m); m == engine.NoMbuf {
		return
	}
	ipv4.DecTTL(m.Data())
	s.stats.IPForwDatagrams++
	s.routeOutput(out, r, h.Dst, m, h.Flags&ipv4.FlagDF != 0)
}

// own returns a packet whose bytes are ours to change: m itself, or, when
// m shares its buffer (a clone, external memory), a copy, freeing m. It
// returns NoMbuf, counted, when no buffer is left for the copy.
func (s *Stack) own(m engine.Mbuf) engine.Mbuf {
	for seg := m; seg != engine.NoMbuf; seg = seg.Next() {
		if !seg.Writable() {
			c, err := s.copyPacket(m)
			s.cs.Free(m)
			if err != nil {
				s.stats.NoMbuf++
				return engine.NoMbuf
			}
			return c
		}
	}
	return m
}

// copyPacket copies a packet, segment by segment, into fresh mbufs of the
// stack's pool.
func (s *Stack) copyPacket(m engine.Mbuf) (engine.Mbuf, error) {
	c, err := s.cs.Alloc(s.pool)
	if err != nil {
		return engine.NoMbuf, err
	}
	for seg := m; seg != engine.NoMbuf; seg = seg.Next() {
		if err := s.cs.AppendBytes(c, s.pool, seg.Data()); err != nil {
			s.cs.Free(c)
			return engine.NoMbuf, err
		}
	}
	return c, nil
}

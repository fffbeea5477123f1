package stack

import (
	"errors"
	"syscall"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/network/frag"
	"github.com/pollnet/pollnet/stack/network/route"
)

// Errors of the send path, returned to sockets: the errnos a Linux socket
// returns, the same values as package transport/udp's.
var (
	ErrNoRoute   error = syscall.EHOSTUNREACH
	ErrNoBuffers error = syscall.ENOBUFS
	ErrTooBig    error = syscall.EMSGSIZE
)

// ipOutput puts an IPv4 header in front of a transport packet and sends it
// (ip_queue_xmit / ip_output): route, source address, fragmentation, link.
// It takes m whatever happens. Called under the stack lock.
func (s *Stack) ipOutput(src, dst [4]byte, proto uint8, m engine.Mbuf) error {
	return s.ipOutputCached(nil, src, dst, proto, m)
}

// ipOutputCached is ipOutput through a socket's route cache (nil: none).
func (s *Stack) ipOutputCached(rc *route.Cache, src, dst [4]byte, proto uint8, m engine.Mbuf) error {
	r, ok := s.routes.LookupCached(rc, dst)
	if !ok {
		s.stats.IPOutNoRoutes++
		s.cs.Free(m)
		return ErrNoRoute
	}
	dev := s.devs[r.Dev]
	if r.Kind == route.KindLocal {
		dev = s.devs[0] // to ourselves: through the loopback device
	}
	if src == ([4]byte{}) {
		src = s.sourceFor(dev, r)
	}
	if m.PktLen()+ipv4.HeaderLen > ipv4.MaxTotalLen {
		s.cs.Free(m)
		return ErrTooBig
	}
	m, hdr := s.prepend(m, ipv4.HeaderLen)
	if m == engine.NoMbuf {
		return ErrNoBuffers
	}
	ipv4.Header{TotalLen: uint16(m.PktLen()), ID: s.ipIdent(src, dst, proto), TTL: ipv4.DefaultTTL, Protocol: proto, Src: src, Dst: dst}.Put(hdr, nil)
	s.stats.IPOutRequests++
	return s.routeOutput(dev, r, dst, m, false)
}

// ipIdent is the ID of the next datagram from src to dst carrying proto.
func (s *Stack) ipIdent(src, dst [4]byte, proto uint8) uint16 {
	return s.idents.Next(src, dst, proto, engine.Nanotime())
}

// sourceFor picks the source address for a route: the route's preferred
// source, else the outgoing device's address.
func (s *Stack) sourceFor(dev *device, r route.Result) [4]byte {
	if r.Src != ([4]byte{}) {
		return r.Src
	}
	return dev.Addr.Addr().As4()
}

// routeOutput sends a whole IPv4 datagram out of dev towards dst,
// fragmenting it to the device's MTU (ip_fragment) unless df is set.
func (s *Stack) routeOutput(dev *device, r route.Result, dst [4]byte, m engine.Mbuf, df bool) error {
	next := dst
	if r.Kind == route.KindGateway {
		next = r.Gateway
	}
	if m.PktLen() <= dev.MTU {
		s.nextHopOutput(dev, next, m)
		return nil
	}
	if df {
		s.stats.IPFragFails++
		h, _ := ipv4.ParseOffloaded(m.Data(), m.PktLen())
		s.icmpError(m, h, icmpDestUnreach, icmpFragNeeded, uint16(dev.MTU))
		return ErrTooBig
	}
	var frags [64]engine.Mbuf
	fs, err := frag.Fragment(frags[:0], &s.cs, s.pool, m, dev.MTU)
	s.cs.Free(m)
	if err != nil {
		s.stats.IPFragFails++
		if errors.Is(err, engine.ErrPoolEmpty) {
			s.stats.NoMbuf++
			return ErrNoBuffers
		}
		return err
	}
	s.stats.IPFragOKs++
	s.stats.IPFragCreates += uint64(len(fs))
	for _, f := range fs {
		s.nextHopOutput(dev, next, f)
	}
	return nil
}

// nextHopOutput hands a datagram to the link: straight through on loopback,
// through the neighbour table elsewhere.
func (s *Stack) nextHopOutput(dev *device, next [4]byte, m engine.Mbuf) {
	if dev.Loopback {
		s.linkOutput(dev, eth.MAC{}, eth.TypeIPv4, m)
		return
	}
	s.neigh.Output(s.neighLink(), dev.Device, next, m)
}

// linkOutput puts the Ethernet header on and queues the frame on the device.
func (s *Stack) linkOutput(dev *device, dst eth.MAC, typ uint16, m engine.Mbuf) {
	m, hdr := s.prepend(m, eth.HeaderLen)
	if m == engine.NoMbuf {
		return
	}
	eth.Header{Dst: dst, Src: dev.MAC, Type: typ}.Put(hdr)
	s.xmit(dev, m)
}

// prepend makes room for an n-byte header in front of m and returns the
// packet and the room. Without headroom, or when m's buffer is shared (a
// clone's headroom belongs to every clone), the header gets a segment of its
// own. It returns NoMbuf, having freed m and counted it, when no buffer is
// left.
func (s *Stack) prepend(m engine.Mbuf, n int) (engine.Mbuf, []byte) {
	if m.Writable() {
		if hdr, err := m.Prepend(n); err == nil {
			return m, hdr
		}
	}
	h, err := s.cs.Alloc(s.pool)
	if err == nil {
		err = h.Chain(m)
	}
	if err != nil {
		if h != engine.NoMbuf {
			s.cs.Free(h)
		}
		s.stats.NoMbuf++
		s.cs.Free(m)
		return engine.NoMbuf, nil
	}
	hdr, _ := h.Prepend(n) // a fresh mbuf has the headroom
	return h, hdr
}

// xmit queues a frame for the device's transmit queue; it leaves in a burst
// at the end of the received burst or the send call (dev_queue_xmit with
// xmit_more).
func (s *Stack) xmit(dev *device, m engine.Mbuf) {
	dev.txq = append(dev.txq, m)
	if len(dev.txq) >= engine.Burst {
		s.flushDev(dev)
	}
}

func (s *Stack) flushDev(dev *device) {
	n := dev.Port.TxBurst(0, dev.txq)
	if n < len(dev.txq) {
		s.stats.IPOutDiscards += uint64(len(dev.txq) - n)
		s.cs.FreeBulk(dev.txq[n:])
	}
	dev.txq = dev.txq[:0]
}

// flushTx sends every device's queued frames.
func (s *Stack) flushTx() {
	for _, d := range s.devs {
		if len(d.txq) > 0 {
			s.flushDev(d)
		}
	}
}

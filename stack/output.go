package stack

import (
	"errors"
	"net/netip"
	"syscall"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
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
// It takes m whatever happens. Under the shard lock.
func (sh *shard) ipOutput(src, dst [4]byte, proto uint8, m engine.Mbuf) error {
	r, ok := sh.s.routes.Lookup(netip.AddrFrom4(dst))
	if !ok {
		sh.stats.IPOutNoRoutes++
		sh.cs.Free(m)
		return ErrNoRoute
	}
	dev := sh.s.outDevice(r)
	if src == ([4]byte{}) {
		src = sourceFor(dev, r)
	}
	if m.PktLen()+ipv4.HeaderLen > ipv4.MaxTotalLen {
		sh.cs.Free(m)
		return ErrTooBig
	}
	m, hdr := sh.prepend(m, ipv4.HeaderLen)
	if m == engine.NoMbuf {
		return ErrNoBuffers
	}
	ipv4.Header{TotalLen: uint16(m.PktLen()), ID: sh.s.ipIdent(src, dst, proto), TTL: ipv4.DefaultTTL, Protocol: proto, Src: src, Dst: dst}.Put(hdr, nil)
	sh.stats.IPOutRequests++
	return sh.routeOutput(dev, r, dst, m, false)
}

// lookupRoute routes dst through the sender's route cache rc, or the table
// itself when the sender keeps none.
func (s *Stack) lookupRoute(rc *route.Cache, dst [4]byte) (route.Result, bool) {
	if rc != nil {
		return s.routes.LookupCached(rc, dst)
	}
	return s.routes.Lookup4(dst)
}

// outDevice is the device a datagram routed by r leaves on: the route's, or
// the loopback device for one of our own addresses.
func (s *Stack) outDevice(r route.Result) *link.Device {
	if r.Kind == route.KindLocal {
		return s.devs[0]
	}
	return s.devs[r.Dev]
}

// sourceOf is the source address of a datagram to dst along r when the
// sender named none: dst itself when it is one of ours, else as sourceFor.
func (s *Stack) sourceOf(r route.Result, dst [4]byte) [4]byte {
	if r.Kind == route.KindLocal {
		return dst
	}
	return sourceFor(s.devs[r.Dev], r)
}

// sourceFor picks the source address for a route: the route's preferred
// source, else the outgoing device's address.
func sourceFor(dev *link.Device, r route.Result) [4]byte {
	if r.Src != ([4]byte{}) {
		return r.Src
	}
	return dev.Addr.Addr().As4()
}

// routeOutput sends a whole IPv4 datagram out of dev towards dst,
// fragmenting it to the device's MTU (ip_fragment) unless df is set.
func (sh *shard) routeOutput(dev *link.Device, r route.Result, dst [4]byte, m engine.Mbuf, df bool) error {
	next := dst
	if r.Kind == route.KindGateway {
		next = r.Gateway
	}
	if m.Flags()&engine.FlagTxL4Csum != 0 && (!dev.TxChecksum || m.PktLen() > dev.MTU) {
		// A checksum left to a device that cannot fill it, or to fragments
		// (skb_checksum_help): a forwarded frame, or a route that changed
		// since the transport looked.
		if err := csum.Finish(m, 0); err != nil {
			if err != csum.ErrNotOffloadable {
				sh.stats.IPOutDiscards++
				sh.cs.Free(m)
				return ErrNoBuffers
			}
			m.SetFlags(m.Flags() &^ engine.FlagTxL4Csum) // not TCP or UDP: a stale flag
		}
	}
	if m.PktLen() <= dev.MTU {
		sh.nextHopOutput(dev, next, m)
		return nil
	}
	if df {
		sh.stats.IPFragFails++
		h, _ := ipv4.ParseOffloaded(m.Data(), m.PktLen())
		sh.icmpError(m, h, icmpDestUnreach, icmpFragNeeded, uint16(dev.MTU))
		return ErrTooBig
	}
	var frags [64]engine.Mbuf
	fs, err := frag.Fragment(frags[:0], &sh.cs, sh.s.pool, m, dev.MTU)
	sh.cs.Free(m)
	if err != nil {
		sh.stats.IPFragFails++
		if errors.Is(err, engine.ErrPoolEmpty) {
			sh.stats.NoMbuf++
			return ErrNoBuffers
		}
		return err
	}
	sh.stats.IPFragOKs++
	sh.stats.IPFragCreates += uint64(len(fs))
	for _, f := range fs {
		sh.nextHopOutput(dev, next, f)
	}
	return nil
}

// nextHopOutput hands a datagram to the link: straight through on loopback,
// through the neighbour table elsewhere.
func (sh *shard) nextHopOutput(dev *link.Device, next [4]byte, m engine.Mbuf) {
	if dev.Loopback {
		sh.linkOutput(dev, eth.MAC{}, eth.TypeIPv4, m)
		return
	}
	sh.s.neigh.Output(sh, dev, next, m)
}

// linkOutput puts the Ethernet header on and queues the frame on the device.
func (sh *shard) linkOutput(dev *link.Device, dst eth.MAC, typ uint16, m engine.Mbuf) {
	m, hdr := sh.prepend(m, eth.HeaderLen)
	if m == engine.NoMbuf {
		return
	}
	eth.Header{Dst: dst, Src: dev.MAC, Type: typ}.Put(hdr)
	sh.xmit(dev, m)
}

// prepend makes room for an n-byte header in front of m and returns the
// packet and the room. Without headroom, or when m's buffer is shared (a
// clone's headroom belongs to every clone), the header gets a segment of its
// own. It returns NoMbuf, having freed m and counted it, when no buffer is
// left.
func (sh *shard) prepend(m engine.Mbuf, n int) (engine.Mbuf, []byte) {
	if m.Writable() {
		if hdr, err := m.Prepend(n); err == nil {
			return m, hdr
		}
	}
	h, err := sh.cs.Alloc(sh.s.pool)
	if err == nil {
		err = h.Chain(m)
	}
	if err != nil {
		if h != engine.NoMbuf {
			sh.cs.Free(h)
		}
		sh.stats.NoMbuf++
		sh.cs.Free(m)
		return engine.NoMbuf, nil
	}
	hdr, _ := h.Prepend(n) // a fresh mbuf has the headroom
	return h, hdr
}

// xmit queues a frame on the shard's transmit queue of dev; it leaves in a
// burst at the end of the received burst or the send (dev_queue_xmit with
// xmit_more).
func (sh *shard) xmit(dev *link.Device, m engine.Mbuf) {
	q := &sh.tx[dev.ID]
	q.pending = append(q.pending, m)
	if len(q.pending) >= engine.Burst {
		sh.flushQueue(q)
	}
}

func (sh *shard) flushQueue(q *txQueue) {
	if q.shared != nil {
		q.shared.Lock()
	}
	n := q.dev.Port.TxBurst(q.queue, q.pending)
	if q.shared != nil {
		q.shared.Unlock()
	}
	sh.count.txFrames += uint64(n)
	if n < len(q.pending) {
		sh.stats.IPOutDiscards += uint64(len(q.pending) - n)
		sh.count.txDropped += uint64(len(q.pending) - n)
		sh.cs.FreeBulk(q.pending[n:])
	}
	q.pending = q.pending[:0]
}

// flushTx sends every transmit queue's waiting frames.
func (sh *shard) flushTx() {
	for i := range sh.tx {
		if len(sh.tx[i].pending) > 0 {
			sh.flushQueue(&sh.tx[i])
		}
	}
}

// ipIdent is the ID of the next datagram from src to dst carrying proto.
func (s *Stack) ipIdent(src, dst [4]byte, proto uint8) uint16 {
	return s.idents.Next(src, dst, proto, s.clock())
}

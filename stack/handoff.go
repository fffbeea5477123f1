package stack

import (
	"net"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	udpheader "github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/network/route"
)

// How an application goroutine sends. A socket copies the payload into
// mbufs of its own, outside any shard's lock, and writes its transport
// header; output below puts the IPv4 header on, still outside the lock, and
// hands the datagrams to a shard. If the shard is idle (its loop between
// bursts, or a softirq asleep) the caller takes the shard's lock and runs
// the rest of the output path itself, as a process runs dev_queue_xmit in
// its own context; if the shard is busy, the datagrams go onto its handoff
// ring and whoever holds the lock sends them before letting go (see
// shard.unlock), so the caller never waits for a burst to finish and the
// shard never waits for a copy.

// appCounters are the counters of the sending path that runs before a shard
// is involved, kept atomically.
type appCounters struct {
	noRoutes  atomic.Uint64 // in IPOutNoRoutes
	noBuffers atomic.Uint64 // in NoMbuf
}

// output sends transport datagrams ms (each with its transport header,
// headroom in front, and its checksum written or left with
// engine.FlagTxL4Csum, which output leaves to dev or finishes) of proto from src to dst through shard: src
// zero takes the route's source. rc, when set, is the sender's route cache.
// It takes every mbuf and returns how many it accepted.
func (s *Stack) output(shard int, rc *route.Cache, src, dst [4]byte, proto uint8, ms []engine.Mbuf) (int, error) {
	// Close waits for senders to leave before it frees the shards and the
	// pool: one that arrives after Close began sees closed. The count is
	// the shard's, so senders on different shards share no cache line.
	sh := s.shards[shard%len(s.shards)]
	sh.senders.Add(1)
	defer sh.senders.Add(-1)
	if s.closed.Load() {
		freeAll(ms)
		return 0, net.ErrClosed
	}
	r, ok := s.lookupRoute(rc, dst)
	if !ok {
		s.app.noRoutes.Add(1)
		freeAll(ms)
		return 0, ErrNoRoute
	}
	if src == ([4]byte{}) {
		src = s.sourceOf(r, dst)
	}
	dev := s.outDevice(r)
	offload := dev.TxChecksum && proto == ipv4.ProtoUDP
	var err error
	for i, m := range ms {
		if m.PktLen()+ipv4.HeaderLen > ipv4.MaxTotalLen {
			err = ErrTooBig
		} else if !m.Writable() || m.Headroom() < ipv4.HeaderLen {
			// The socket leaves headroom in buffers of its own: only a
			// caller that did not gets here.
			s.app.noBuffers.Add(1)
			err = ErrNoBuffers
		}
		if err != nil {
			freeAll(ms[i:])
			ms = ms[:i]
			break
		}
		hdr, _ := m.Prepend(ipv4.HeaderLen)
		ipv4.Header{TotalLen: uint16(m.PktLen()), ID: s.ipIdent(src, dst, proto), TTL: ipv4.DefaultTTL,
			Protocol: proto, Src: src, Dst: dst}.Put(hdr, nil)
		if m.Flags()&engine.FlagTxL4Csum == 0 {
			continue
		}
		if offload && m.PktLen() <= dev.MTU {
			m.SetHeaderLens(eth.HeaderLen, ipv4.HeaderLen, udpheader.HeaderLen)
			continue
		}
		// The device cannot fill it, or the datagram goes in fragments:
		// the sum is done here, outside any shard's lock.
		if csum.Finish(m, 0) != nil { // we wrote it: cannot happen
			freeAll(ms[i:])
			ms = ms[:i]
			err = ErrNoBuffers
			break
		}
	}
	sent := 0
	if len(ms) > 0 {
		sent = sh.take(r, dst, proto, ms)
	}
	if sent < len(ms) {
		return sent, ErrNoBuffers
	}
	return sent, err
}

// take sends ms (whole IPv4 datagrams to dst by route r) now if the shard is
// idle, else hands them over. It returns how many it took; the rest, for
// which the handoff ring had no room, it frees.
func (sh *shard) take(r route.Result, dst [4]byte, proto uint8, ms []engine.Mbuf) int {
	if sh.mu.TryLock() {
		sh.count.directSends += uint64(len(ms))
		dev := sh.s.outDevice(r)
		for _, m := range ms {
			sh.stats.IPOutRequests++
			sh.routeOutput(dev, r, dst, m, false)
		}
		if proto == ipv4.ProtoUDP {
			sh.stats.UDPOutDatagrams += uint64(len(ms))
		}
		sh.notify(sh.unlock())
		return len(ms)
	}
	n := sh.handoff.EnqueueBurst(ms)
	sh.handedOff.Add(uint64(n))
	if n < len(ms) {
		sh.s.app.noBuffers.Add(uint64(len(ms) - n))
		freeAll(ms[n:])
	}
	// The holder may have let go between our TryLock and the enqueue.
	if sh.mu.TryLock() {
		sh.notify(sh.unlock())
	}
	return n
}

// drainHandoff sends the datagrams handed over while the shard was busy.
// Under mu.
func (sh *shard) drainHandoff() {
	if sh.handoff.Len() == 0 {
		return
	}
	var burst [engine.Burst]engine.Mbuf
	for {
		n := sh.handoff.DequeueBurst(burst[:])
		for _, m := range burst[:n] {
			h, err := ipv4.ParseOffloaded(m.Data(), m.PktLen())
			if err != nil { // we wrote it: cannot happen
				sh.cs.Free(m)
				continue
			}
			r, ok := sh.s.routes.Lookup4(h.Dst)
			if !ok {
				sh.stats.IPOutNoRoutes++ // the route went away meanwhile
				sh.cs.Free(m)
				continue
			}
			dev := sh.s.outDevice(r)
			sh.stats.IPOutRequests++
			if h.Protocol == ipv4.ProtoUDP {
				sh.stats.UDPOutDatagrams++
			}
			sh.routeOutput(dev, r, h.Dst, m, false)
		}
		if n < len(burst) {
			return
		}
	}
}

// freeAll frees mbufs outside any shard, into their pools.
func freeAll(ms []engine.Mbuf) {
	for _, m := range ms {
		engine.Free(m)
	}
}

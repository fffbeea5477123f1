package wire

import "github.com/pollnet/pollnet/engine"

// The ways a frame crosses. copyBurst is the common case (copy mode, no
// impairment): one bulk allocation in the peer's pool per burst and
// engine.CopyFrame per frame. deliver sends one frame, handing the mbuf over
// in zero-copy mode; the impaired path uses it. copyFrame copies one frame of
// any length, chaining segments where one buffer is too small; the other two
// fall back to it.

// copyBurst is TxBurst's common case: copy each frame into a buffer of the
// peer's pool, taken in bulk, then complete (free) the sent frames in bulk.
func (p *Port) copyBurst(tq *txQueue, lane int, pkts []engine.Mbuf) {
	maxFrame := p.info.MTU + maxLinkHeader
	cache := tq.caches.For(p.peer.pool)
	var bytes, sent uint64
	for len(pkts) > 0 {
		chunk := pkts[:min(len(pkts), engine.Burst)]
		pkts = pkts[len(chunk):]
		var fresh [engine.Burst]engine.Mbuf
		bulk := cache.GetBulk(fresh[:len(chunk)]) == nil
		for i, m := range chunk {
			n := m.PktLen()
			if n > maxFrame || n == 0 {
				tq.drops[engine.DropTooLong].Add(1)
				if bulk {
					tq.caches.Free(fresh[i])
				}
				continue
			}
			bytes += uint64(n)
			sent++
			if bulk && engine.CopyFrame(fresh[i], m) {
				p.rxMeta(m, fresh[i])
				p.stage(tq, lane, fresh[i])
				continue
			}
			if bulk {
				tq.caches.Free(fresh[i])
			}
			c, ok := p.copyFrame(tq, m)
			if !ok {
				p.dropNoMbuf(m)
				continue
			}
			p.rxMeta(m, c)
			p.stage(tq, lane, c)
		}
		tq.complete(chunk)
	}
	p.flushStage(tq, lane)
	tq.packets.Add(sent)
	tq.bytes.Add(bytes)
}

// deliver moves one frame towards the peer queue its RSS hash picks,
// copying it into the peer's pool unless in zero-copy mode or copied says it
// is a copy there already. A non-zero due is the time the delay line releases
// it.
func (p *Port) deliver(tq *txQueue, lane int, m engine.Mbuf, due int64, copied bool) {
	out := m
	switch {
	case copied:
	case p.zc:
		// The sender's mbuf itself crosses: it keeps none of the sender's
		// metadata, as a copy would not, but what rxMeta gives a copy.
		f := m.Flags()
		l2, l3, l4 := m.HeaderLens()
		m.SetFlags(0)
		m.SetHeaderLens(0, 0, 0)
		m.SetTSOSegSize(0)
		if p.offload {
			p.setRxMeta(m, f, l2, l3, l4)
		}
	default:
		c, ok := p.copyFrame(tq, m)
		if !ok {
			p.dropNoMbuf(m)
		}
		p.rxMeta(m, c)
		tq.done.Free(m) // transmit completion: the frame has left
		if !ok {
			return
		}
		out = c
	}
	if due != 0 {
		out.SetStamp(due)
	}
	p.stage(tq, lane, out)
}

// copyFrame copies m's bytes into fresh mbufs of the peer's pool, chaining
// segments for frames larger than one buffer. Like engine.CopyFrame, it
// carries no metadata over.
func (p *Port) copyFrame(tq *txQueue, m engine.Mbuf) (engine.Mbuf, bool) {
	pool := p.peer.pool
	c := tq.caches.For(pool)
	head, err := c.Get()
	if err != nil {
		return engine.NoMbuf, false
	}
	total := m.PktLen()
	if total <= head.Tailroom() && m.Next() == engine.NoMbuf {
		head.SetLen(total)
		copy(head.Data(), m.Data())
		return head, true
	}
	off := 0
	seg := head
	for off < total {
		if seg == engine.NoMbuf {
			s, err := c.Get()
			if err != nil {
				tq.caches.Free(head)
				return engine.NoMbuf, false
			}
			if err := head.Chain(s); err != nil {
				tq.caches.Free(s)
				tq.caches.Free(head)
				return engine.NoMbuf, false
			}
			seg = s
		}
		k := min(seg.Tailroom(), total-off)
		buf, _ := head.Append(k)
		m.CopyOut(buf, off)
		off += k
		seg = engine.NoMbuf
	}
	return head, true
}

// rxMeta gives the copy c of a sent frame m what the receiving port sets
// when checksums are offloaded (see the package comment); nothing otherwise.
// c may be NoMbuf (no copy was made).
func (p *Port) rxMeta(m, c engine.Mbuf) {
	if !p.offload || c == engine.NoMbuf {
		return
	}
	l2, l3, l4 := m.HeaderLens()
	p.setRxMeta(c, m.Flags(), l2, l3, l4)
}

// setRxMeta marks r, received, by the offload flags f it was sent with: an
// L4 checksum left to the device arrives good and still left (with the
// header lengths saying where), an IPv4 header checksum arrives good.
func (p *Port) setRxMeta(r engine.Mbuf, f uint32, l2, l3, l4 int) {
	var rf uint32
	if f&engine.FlagTxL4Csum != 0 {
		rf |= engine.FlagRxL4CsumGood | engine.FlagTxL4Csum
		r.SetHeaderLens(l2, l3, l4)
	}
	if f&engine.FlagTxIPCsum != 0 {
		rf |= engine.FlagRxIPCsumGood
	}
	if rf != 0 {
		r.SetFlags(r.Flags() | rf)
	}
}

// dropNoMbuf counts a frame the peer had no buffer for, on the queue it was
// bound for.
func (p *Port) dropNoMbuf(m engine.Mbuf) {
	p.peer.rxq[p.queueFor(m)].drops[engine.DropNoMbuf].Add(1)
}

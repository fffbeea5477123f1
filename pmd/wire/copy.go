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
		// metadata, as a copy would not.
		m.SetFlags(0)
		m.SetHeaderLens(0, 0, 0)
		m.SetTSOSegSize(0)
	default:
		c, ok := p.copyFrame(tq, m)
		if !ok {
			p.dropNoMbuf(m)
		}
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

// dropNoMbuf counts a frame the peer had no buffer for, on the queue it was
// bound for.
func (p *Port) dropNoMbuf(m engine.Mbuf) {
	p.peer.rxq[p.queueFor(m)].drops[engine.DropNoMbuf].Add(1)
}

package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/pollnet/pollnet/engine"
)

var _ engine.Port = (*Port)(nil)

// Port is one end of a pair. It implements engine.Port.
type Port struct {
	pair *Pair
	peer *Port
	info engine.PortInfo
	pool *engine.Pool
	zc   bool
	// offload is Config.ChecksumOffload: offloaded checksums cross
	// unfinished, marked good (rxMeta).
	offload bool
	rss     *engine.Toeplitz // the hash of info.RSSKey; info.RETA maps it to a queue
	rxq     []*rxQueue
	txq     []*txQueue
	idx     int
}

// Info describes the port.
func (p *Port) Info() engine.PortInfo { return p.info }

// Pool is the pool the port receives into.
func (p *Port) Pool() *engine.Pool { return p.pool }

func (p *Port) checkRx(q int) *rxQueue {
	if q < 0 || q >= len(p.rxq) {
		panic(fmt.Sprintf("wire %s: receive queue %d out of range 0..%d", p.info.Name, q, len(p.rxq)-1))
	}
	return p.rxq[q]
}

func (p *Port) checkTx(q int) *txQueue {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("wire %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	return p.txq[q]
}

// RxBurst takes received frames from the queue's lanes, starting from a
// different lane each call so no sender starves the others.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int {
	rq := p.rxq[q]
	var n int
	switch {
	case rq.delayed:
		n = rq.dequeueDelayed(pkts)
	case len(rq.lanes) == 1:
		n = rq.lanes[0].DequeueBurst(pkts)
	default:
		nl := len(rq.lanes)
		j := rq.next
		for i := 0; i < nl && n < len(pkts); i++ {
			n += rq.lanes[j].DequeueBurst(pkts[n:])
			if j++; j == nl {
				j = 0
			}
		}
		if rq.next++; rq.next == nl {
			rq.next = 0
		}
	}
	if n == 0 {
		return 0
	}
	var bytes uint64
	for _, m := range pkts[:n] {
		bytes += uint64(m.Received(p.idx, q))
	}
	rq.packets.Add(uint64(n))
	rq.bytes.Add(bytes)
	return n
}

// TxBurst sends frames to the peer. The wire takes every frame: one the peer
// cannot receive (full ring, empty pool) is dropped and counted at the peer,
// as on a real link.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	tq := p.checkTx(q)
	if !p.zc && !tq.impair.active() {
		p.copyBurst(tq, q, pkts)
		return len(pkts)
	}
	maxFrame := p.info.MTU + maxLinkHeader
	var bytes, sent uint64
	for _, m := range pkts {
		n := m.PktLen()
		if n > maxFrame || n == 0 {
			tq.drops[engine.DropTooLong].Add(1)
			tq.done.Free(m)
			continue
		}
		bytes += uint64(n)
		sent++
		if tq.impair.active() {
			p.impairedSend(tq, q, m)
			continue
		}
		p.deliver(tq, q, m, 0, false)
	}
	p.flushStage(tq, q)
	tq.packets.Add(sent)
	tq.bytes.Add(bytes)
	return len(pkts)
}

// SetTxCaches makes the queue free the frames it took (dropped, or done once
// the copy has left) into cs, the caches of the goroutine that drives it;
// nil restores the queue's own. The copies the port makes in the peer's pool
// come from and go back to the queue's own caches whatever cs is: they are
// the peer's receive buffers, not the caller's.
func (p *Port) SetTxCaches(q int, cs *engine.Caches) {
	tq := p.checkTx(q)
	if cs == nil {
		cs = &tq.caches
	}
	tq.done = cs
}

// RxStats returns a receive queue's counters.
func (p *Port) RxStats(q int) engine.QueueStats {
	rq := p.checkRx(q)
	s := engine.QueueStats{Packets: rq.packets.Load(), Bytes: rq.bytes.Load(), Interrupts: rq.irq.Raised()}
	for i := range s.Drops {
		s.Drops[i] = rq.drops[i].Load()
	}
	return s
}

// TxStats returns a transmit queue's counters.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.txq[q]
	s := engine.QueueStats{Packets: tq.packets.Load(), Bytes: tq.bytes.Load()}
	for i := range s.Drops {
		s.Drops[i] = tq.drops[i].Load()
	}
	return s
}

// SetRxInterrupt installs the queue's interrupt handler.
func (p *Port) SetRxInterrupt(q int, handler func()) { p.checkRx(q).irq.SetHandler(handler) }

// ArmRx unmasks the queue's interrupt, raising it at once if frames are
// already waiting: a frame that landed while the interrupt was masked must
// not be stranded. On a delay line, frames not yet due raise it when they
// are. Call it on the goroutine that receives from the queue.
func (p *Port) ArmRx(q int) { p.checkRx(q).irq.Arm() }

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) { p.checkRx(q).irq.Disarm() }

// SetCoalesce sets interrupt coalescing on every receive queue, like
// `ethtool -C rx-usecs N rx-frames M`.
func (p *Port) SetCoalesce(usecs, frames int) error {
	for _, rq := range p.rxq {
		if err := rq.irq.SetCoalesce(usecs, frames); err != nil {
			return fmt.Errorf("wire %s: %w", p.info.Name, err)
		}
	}
	return nil
}

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("wire: port already closed")

// Close frees every frame the port still holds. When both ports of the pair
// are closed their pools are closed too, which fails if an mbuf of theirs is
// still out (a leak).
func (p *Port) Close() error {
	pr := p.pair
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if p.rxq == nil {
		return ErrClosed
	}
	var scratch [engine.Burst]engine.Mbuf
	var free engine.Caches
	for _, rq := range p.rxq {
		rq.irq.Stop()
		for _, l := range rq.lanes {
			for n := l.DequeueBurst(scratch[:]); n > 0; n = l.DequeueBurst(scratch[:]) {
				free.FreeBulk(scratch[:n])
			}
		}
	}
	for _, tq := range p.txq {
		if tq.held != engine.NoMbuf {
			tq.caches.Free(tq.held)
			tq.held = engine.NoMbuf
		}
		tq.caches.FreeBulk(tq.sent) // not into the caller's caches: not its goroutine
		tq.sent = tq.sent[:0]
		tq.caches.Flush()
	}
	free.Flush()
	p.rxq = nil
	if pr.closed.Add(1) < 2 {
		return nil
	}
	var errs []error
	for _, q := range pr.Ports {
		if err := q.pool.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pending is how many frames wait on the port's receive rings.
func (p *Port) Pending() int {
	n := 0
	for _, rq := range p.rxq {
		for _, l := range rq.lanes {
			n += l.Len()
		}
	}
	return n
}

// ArmRaised counts the interrupts a receive queue raised at arming time
// because frames had landed while it was masked.
func (p *Port) ArmRaised(q int) uint64 { return p.checkRx(q).irq.ArmRaised() }

// InterruptTime is the CPU time spent in the port's receive interrupt
// handlers, summed over its queues (estimated by sampling, see
// engine.RxInterrupt.HandlerTime): the hard interrupt work, done on the
// threads of the port's peer that sent the frames. Read it before Close.
func (p *Port) InterruptTime() time.Duration {
	var d time.Duration
	for _, rq := range p.rxq {
		d += rq.irq.HandlerTime()
	}
	return d
}

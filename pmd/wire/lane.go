package wire

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// Lanes. A receive queue has one single-producer/single-consumer ring per
// transmit queue of the peer, so each lane has one writer (the goroutine
// driving that transmit queue) and one reader (the one receiving): a frame
// crosses with no lock and no compare-and-swap. A transmit burst stages its
// frames per destination queue and enqueues each stage in one burst, which
// raises that queue's interrupt once. Sent frames the port is done with wait
// in their transmit queue's completions until reaped.

type counter = atomic.Uint64

// rxQueue is a receive queue: one lane per peer transmit queue.
// Fields are grouped by writer, a cache line apart, so the receiving core and
// the sending cores do not bounce lines between them.
type rxQueue struct {
	_       [64]byte
	lanes   []*ring.SPSC[engine.Mbuf] // read-mostly, from here to irq
	delayed bool
	irq     *engine.RxInterrupt
	_       [64]byte
	next    int // lane to poll first, for fairness; written by the receiver
	packets counter
	bytes   counter
	_       [64]byte
	drops   [engine.NumDropReasons]counter // written by senders
	_       [64]byte
}

// txQueue is a transmit queue. Its caches allocate in the peer's pool (the
// copies the port makes) and take back those copies when they go nowhere;
// the frames the port took from its caller go back to done, the caller's
// caches (engine.Port.SetTxCaches) or these. Its random source drives the
// impairment. Only the goroutine that drives the queue touches it.
type txQueue struct {
	_       [64]byte
	caches  engine.Caches
	done    *engine.Caches // where taken frames are freed: &caches or the caller's
	rng     *rand.Rand
	impair  Impairment
	finish  bool          // offloaded checksums are finished in software: the lane corrupts
	held    engine.Mbuf   // a frame held back for reordering
	heldCp  bool          // held is already a copy in the peer's pool
	sent    []engine.Mbuf // sent frames whose buffers are not yet reaped
	stage   [][engine.Burst]engine.Mbuf
	staged  []int
	packets counter
	bytes   counter
	drops   [engine.NumDropReasons]counter
	_       [64]byte
}

// stage queues a frame for the peer queue its hash picks; a full stage goes
// out at once.
func (p *Port) stage(tq *txQueue, lane int, m engine.Mbuf) {
	rqi := p.queueFor(m)
	k := tq.staged[rqi]
	tq.stage[rqi][k] = m
	k++
	tq.staged[rqi] = k
	if k == engine.Burst {
		p.flushLane(tq, lane, rqi)
	}
}

// flushStage pushes every staged frame to its lane.
func (p *Port) flushStage(tq *txQueue, lane int) {
	for rqi, k := range tq.staged {
		if k > 0 {
			p.flushLane(tq, lane, rqi)
		}
	}
}

// flushLane enqueues the frames staged for one peer queue in one burst and
// raises the peer's interrupt if it is armed.
func (p *Port) flushLane(tq *txQueue, lane, rqi int) {
	rq := p.peer.rxq[rqi]
	k := tq.staged[rqi]
	stage := tq.stage[rqi][:k]
	var due int64
	if rq.delayed {
		// Read before the frames are the receiver's: the first is due
		// first, as every frame of a lane waits the same delay.
		due = stage[0].Stamp()
	}
	n := rq.lanes[lane].EnqueueBurst(stage)
	if n < k {
		rq.drops[engine.DropRingFull].Add(uint64(k - n))
		if p.zc {
			tq.done.FreeBulk(stage[n:]) // the caller's frames (or a duplicate)
		} else {
			tq.caches.FreeBulk(stage[n:]) // copies in the peer's pool
		}
	}
	tq.staged[rqi] = 0
	if n > 0 {
		rq.irq.LandedAt(due)
	}
}

// waiting counts the frames on the queue's lanes, due or not. Senders and
// the coalescing timer call it, so it reads only the rings' lengths: peeking
// is for the receiver alone.
func (rq *rxQueue) waiting() int {
	n := 0
	for _, l := range rq.lanes {
		n += l.Len()
	}
	return n
}

// txFreeThresh is how many completed frames a transmit queue lets pile up
// before TxBurst frees them itself, as DPDK drivers' tx_free_thresh; a NAPI
// poll reaps them sooner through ReapTx.
const txFreeThresh = 64

// complete records sent frames as done: their buffers are free to reuse once
// reaped, like descriptors a NIC has written back.
func (tq *txQueue) complete(sent []engine.Mbuf) {
	if len(tq.sent)+len(sent) > cap(tq.sent) {
		tq.reap()
	}
	tq.sent = append(tq.sent, sent...)
	if len(tq.sent) >= txFreeThresh {
		tq.reap()
	}
}

// reap frees the completed frames into the queue's done caches.
func (tq *txQueue) reap() int {
	n := len(tq.sent)
	tq.done.FreeBulk(tq.sent)
	tq.sent = tq.sent[:0]
	return n
}

// ReapTx frees the buffers of frames the queue has sent (igb_clean_tx_irq).
// Call it from the goroutine that transmits on the queue.
func (p *Port) ReapTx(q int) int { return p.txq[q].reap() }

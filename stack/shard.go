package stack

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/frag"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/tcp"
)

// MaxShards bounds Config.Shards.
const MaxShards = 64

// handoffSize is the number of datagrams applications may have handed a busy
// shard before a send fails for want of room (ENOBUFS).
const handoffSize = 1024

// timerTick is the shard wheel's granularity.
const timerTick = int64(1e6)

// socketPeriod is how often shard 0 runs the sockets' housekeeping.
const socketPeriod = int64(100e6)

// shard is one slice of a stack instance, as mTCP, F-Stack and Seastar cut
// theirs. It receives from queue i of every interface with more than i
// receive queues (and from queues i+N, i+2N... when a port has more queues
// than the stack has shards; shard 0 also drains the loopback backlog), sends
// on transmit queue i, and owns its mbuf caches, its counters, its
// reassembler and its timer wheel.
//
// Nothing it touches per packet is guarded by a lock another shard takes:
// devices are fixed, routes and the neighbour and socket tables are read
// without locks, a socket's receive queue has a lock of its own. A frame
// that lands on a shard other than the one owning its flow (a port whose
// queue choice is not ours) is passed to the owner through the owner's
// steering backlog, never handled under the owner's lock.
type shard struct {
	id int
	s  *Stack

	// mu is held by the shard's loop while it runs a burst or its timers,
	// and by an application goroutine that sends through the shard while
	// it is idle (see output in handoff.go). No other shard takes it.
	mu    sync.Mutex
	cs    engine.Caches // under mu
	tx    []txQueue     // by device index, under mu
	stats Stats         // under mu
	reasm *frag.Reassembler
	wheel timer.Wheel
	// reasmTimer expires the reassembler's oldest datagram.
	reasmTimer timer.Timer
	// socketTimer, on shard 0, runs the UDP table's housekeeping every
	// socketPeriod: sockets give back spare send buffers, and those that
	// found the pool empty learn when it is not (sk_write_space).
	socketTimer timer.Timer
	socketDue   bool
	// timersMoved is set when the wheel may have a new earliest deadline
	// (a timer armed, cancelled or fired), for publishNext.
	timersMoved bool
	ready       []readySocket // sockets that got data during this burst
	tcpStats    tcp.Counters  // under mu

	// steerOut collects, per shard, the frames of flows another shard owns,
	// passed on at the end of the burst.
	steerOut [][]engine.Mbuf
	// steer is where other shards pass this one the frames of its flows.
	steer *link.Backlog
	// handoff holds IPv4 datagrams that application goroutines built while
	// the shard was busy; whoever holds mu sends them before letting go.
	handoff *ring.MPMC[engine.Mbuf]

	rx      []engine.QueueRef
	rxDev   []*link.Device // the device of each of rx
	worker  *engine.Worker
	softirq *engine.Softirq
	// nextDue is the earliest timer deadline the loop was last told of
	// (for a sleeping softirq's bound): a sender that arms an earlier one
	// kicks the softirq.
	nextDue atomic.Int64

	count     shardCounters
	handedOff atomic.Uint64 // counted by the senders, who do not hold mu
	senders   atomic.Int32  // application goroutines sending through the shard (see output)
}

// shardCounters are a shard's own counters, kept under its lock.
type shardCounters struct {
	rxFrames, steeredOut, steeredIn, directSends, txFrames, txDropped, timers uint64
}

// ShardStats are one shard's counters.
type ShardStats struct {
	Shard int
	Core  int // the core its worker is pinned to, or engine.AnyCore
	// RxFrames is the number of frames its receive queues gave it.
	RxFrames uint64
	// SteeredOut is the number of frames it passed to the shard owning
	// their flow (receive packet steering); SteeredIn, the number it
	// received so from other shards.
	SteeredOut, SteeredIn uint64
	// HandedOff is the number of datagrams applications handed it through
	// its ring because it was busy; DirectSends, the number an application
	// goroutine sent through it itself while it was idle.
	HandedOff, DirectSends uint64
	// TxFrames is the number of frames its transmit queues took; TxDropped,
	// the number they refused (counted in IPOutDiscards too).
	TxFrames, TxDropped uint64
	// Timers is the number of timers its wheel fired.
	Timers uint64
	// SteerDrops is the number of frames other shards steered to it that
	// its full steering backlog dropped (softnet_stat's dropped).
	SteerDrops uint64
	// Stats is the shard's share of the stack's counters (the neighbour
	// table's are the stack's alone).
	Stats Stats
}

// txQueue is a shard's transmit queue on one device, and the frames waiting
// to leave at the end of the burst or send (dev_queue_xmit with xmit_more).
type txQueue struct {
	dev   *link.Device
	queue int
	// shared is set when the port has fewer transmit queues than the stack
	// has shards, so several shards send on this one: its lock is taken
	// per burst, as HARD_TX_LOCK is, and is the one lock between shards on
	// the transmit path of such a port.
	shared  *sync.Mutex
	pending []engine.Mbuf
}

func newShard(s *Stack, id, n int, rc frag.ReasmConfig) (*shard, error) {
	sh := &shard{id: id, s: s, steerOut: make([][]engine.Mbuf, n)}
	var err error
	if sh.steer, err = link.NewBacklog(fmt.Sprintf("%s-steer%d", s.name, id), 0); err != nil {
		return nil, err
	}
	if sh.handoff, err = ring.NewMPMC[engine.Mbuf](handoffSize); err != nil {
		return nil, err
	}
	sh.reasm = frag.NewReassembler(&sh.cs, s.pool, rc)
	now := s.clock()
	sh.wheel.Init(now, timerTick)
	sh.reasmTimer.Init(sh.expireReassembly)
	if id == 0 {
		sh.socketTimer.Init(func(now int64) {
			sh.socketDue = true
			sh.wheel.Arm(&sh.socketTimer, now+socketPeriod)
		})
		sh.wheel.Arm(&sh.socketTimer, now+socketPeriod)
	}
	sh.publishNext()
	for _, d := range s.devs {
		q := txQueue{dev: d, queue: id % max(1, d.Port.Info().TxQueues)}
		if !d.Loopback && d.Port.Info().TxQueues < n {
			q.shared = s.txLock(d, q.queue)
		}
		sh.tx = append(sh.tx, q)
		if d.Loopback {
			if id == 0 {
				sh.rx, sh.rxDev = append(sh.rx, engine.QueueRef{Port: d.Port}), append(sh.rxDev, d)
			}
			continue
		}
		for q := id; q < d.Queues; q += n {
			sh.rx, sh.rxDev = append(sh.rx, engine.QueueRef{Port: d.Port, Queue: q}), append(sh.rxDev, d)
		}
	}
	if n > 1 { // a lone shard is never steered to: no backlog to poll
		sh.rx, sh.rxDev = append(sh.rx, engine.QueueRef{Port: sh.steer}), append(sh.rxDev, nil)
	}
	return sh, nil
}

// txLockKey names a transmit queue that several shards share.
type txLockKey struct {
	dev, queue int
}

// txLock is the lock of a shared transmit queue, made by the first shard
// to need it (shards are made one after another by New).
func (s *Stack) txLock(d *link.Device, q int) *sync.Mutex {
	k := txLockKey{d.ID, q}
	if s.txLocks[k] == nil {
		if s.txLocks == nil {
			s.txLocks = map[txLockKey]*sync.Mutex{}
		}
		s.txLocks[k] = new(sync.Mutex)
	}
	return s.txLocks[k]
}

// start runs the shard on a worker pinned to core: a poll loop, or a
// softirq woken by its queues' interrupts.
func (sh *shard) start(mode Mode, core int, si engine.SoftirqConfig) error {
	w, err := engine.NewWorker(core)
	if err != nil {
		return err
	}
	w.SetTimers(sh)
	var run func() error
	var soft *engine.Softirq
	switch mode {
	case ModePMD:
		// Claim the core now, so a second busy worker on it is refused
		// here and not inside a loop whose error nobody reads.
		if err := w.ClaimBusy(); err != nil {
			return err
		}
		run = func() error {
			return w.Poll(engine.PollConfig{Rx: sh.rx, Handler: sh.input, Idle: sh.s.idle, Tick: sh.pollTick})
		}
	case ModeNAPI:
		if soft, err = engine.NewSoftirq(w, si); err != nil {
			return err
		}
		for _, q := range sh.rx {
			if _, err := soft.Add(engine.NAPIConfig{Port: q.Port, Queue: q.Queue, Handler: sh.input}); err != nil {
				return err
			}
		}
		run = soft.Run
	}
	// Under mu: senders read softirq (publishNext), and whoever holds mu
	// drives the transmit queues, whose completions now go to the shard.
	sh.mu.Lock()
	sh.worker, sh.softirq = w, soft
	sh.setTxCaches(&sh.cs)
	sh.letGo()
	return w.Start(func(*engine.Worker) { run() })
}

// stop stops the shard's worker and hands its transmit queues' completions
// back to the ports' own caches.
func (sh *shard) stop() {
	if sh.worker == nil {
		return
	}
	sh.worker.Stop()
	sh.mu.Lock()
	sh.setTxCaches(nil)
	sh.mu.Unlock()
}

// setTxCaches tells the ports of the transmit queues the shard alone drives
// where to free what they sent: cs, or their own caches (nil). Under mu.
func (sh *shard) setTxCaches(cs *engine.Caches) {
	for _, q := range sh.tx {
		if q.shared == nil && !q.dev.Loopback {
			q.dev.Port.SetTxCaches(q.queue, cs)
		}
	}
}

// release frees everything the shard holds.
func (sh *shard) release() {
	sh.mu.Lock()
	sh.reasm.Clear()
	sh.wheel.Cancel(&sh.reasmTimer)
	var burst [engine.Burst]engine.Mbuf
	for n := sh.handoff.DequeueBurst(burst[:]); n > 0; n = sh.handoff.DequeueBurst(burst[:]) {
		sh.cs.FreeBulk(burst[:n])
	}
	for i := range sh.tx {
		q := &sh.tx[i]
		sh.cs.FreeBulk(q.pending)
		q.pending = q.pending[:0]
		// Sent frames of ours that the port has not yet reaped.
		if r, ok := q.dev.Port.(engine.TxReaper); ok {
			r.ReapTx(q.queue)
		}
	}
	for i, out := range sh.steerOut {
		sh.cs.FreeBulk(out)
		sh.steerOut[i] = out[:0]
	}
	sh.mu.Unlock()
	sh.steer.Close()
	sh.cs.Close() // the ports' pools outlive the stack: retire its caches
	if sh.worker != nil {
		sh.worker.Caches.Close()
	}
}

// input is the engine.Handler of every queue the shard polls: it runs a
// burst of received frames up the stack to completion, sends what the burst
// produced, then tells the sockets that got data.
func (sh *shard) input(_ *engine.Worker, from engine.QueueRef, pkts []engine.Mbuf) {
	dev, steered := sh.deviceOf(from)
	sh.mu.Lock()
	sh.count.rxFrames += uint64(len(pkts))
	switch {
	case steered:
		sh.count.steeredIn += uint64(len(pkts))
		for _, m := range pkts {
			if d := m.Port(); d >= 0 && d < len(sh.s.devs) {
				sh.receive(sh.s.devs[d], m, true)
			} else {
				sh.stats.EthInErrors++
				sh.cs.Free(m)
			}
		}
	case dev == nil:
		sh.stats.EthInErrors += uint64(len(pkts))
		sh.cs.FreeBulk(pkts)
	default:
		for _, m := range pkts {
			sh.receive(dev, m, false)
		}
	}
	ready := sh.unlock()
	sh.notify(ready)
}

// deviceOf finds the device a queue belongs to; steered reports the shard's
// steering backlog, whose frames name their device themselves.
func (sh *shard) deviceOf(q engine.QueueRef) (dev *link.Device, steered bool) {
	for i, r := range sh.rx {
		if r.Port == q.Port {
			return sh.rxDev[i], sh.rxDev[i] == nil
		}
	}
	// A test driving the stack by hand hands any queue to any shard.
	for _, d := range sh.s.devs {
		if d.Port == q.Port {
			return d, false
		}
	}
	return nil, false
}

// pollTick runs after every round of a poll-mode shard: the application
// living in the loop, then what senders handed over meanwhile.
func (sh *shard) pollTick(w *engine.Worker, n int) {
	if sh.s.pollTick != nil {
		sh.s.pollTick(w, n)
	}
	if sh.handoff.Len() > 0 {
		sh.mu.Lock()
		sh.notify(sh.unlock())
	}
}

// unlock sends what the shard queued while it held mu: the datagrams
// handed over meanwhile, the frames for other shards, the transmit queues;
// then it lets go. A sender that handed datagrams over as the holder was
// letting go finds them sent: the holder looks at the ring again after
// unlocking and takes the lock back if something came. It returns the
// sockets that got data, to be told outside the lock.
func (sh *shard) unlock() []readySocket {
	var ready []readySocket
	for {
		sh.drainHandoff()
		sh.flushSteer()
		sh.flushTx()
		if r := sh.takeReady(); ready == nil {
			ready = r // the usual case: no copy, so nothing allocated
		} else {
			ready = append(ready, r...)
		}
		if sh.timersMoved {
			sh.publishNext()
		}
		sh.mu.Unlock()
		if sh.handoff.Len() == 0 || !sh.mu.TryLock() {
			return ready
		}
	}
}

// takeReady hands over the sockets that got data. Under mu.
func (sh *shard) takeReady() []readySocket {
	if len(sh.ready) == 0 {
		return nil
	}
	r := sh.ready
	sh.ready = nil
	return r
}

// readySocket is a socket the shard tells of events after letting go of
// its lock: a UDP or a TCP socket.
type readySocket interface{ Notify() }

// markReady notes that c got data in this burst, once.
func (sh *shard) markReady(c readySocket) {
	// A burst reaches few sockets: a short scan from the most recent.
	for i := len(sh.ready) - 1; i >= 0; i-- {
		if sh.ready[i] == c {
			return
		}
	}
	sh.ready = append(sh.ready, c)
}

// notify runs the data-ready callbacks (sk_data_ready) outside the lock:
// wake parked readers and pollers, or run the socket's read handler on the
// calling goroutine (the poll loop, in PMD mode).
func (sh *shard) notify(ready []readySocket) {
	if len(ready) == 0 {
		return
	}
	for _, c := range ready {
		c.Notify()
	}
	sh.mu.Lock()
	if sh.ready == nil {
		sh.ready = ready[:0] // reuse the array
	}
	sh.letGo()
}

// letGo releases mu taken for a short look (the ready array, counters). A
// sender that handed datagrams over meanwhile, failing to take the lock
// because we held it, finds them sent: as unlock does, look at the ring
// after letting go and take the lock back to send what came.
func (sh *shard) letGo() {
	sh.mu.Unlock()
	if sh.handoff.Len() > 0 && sh.mu.TryLock() {
		sh.notify(sh.unlock())
	}
}

// Next is the earliest deadline among the shard's timers and the neighbour
// table's, for its loop (engine.Timers). Lock-free: the wheel's is
// published at every unlock.
func (sh *shard) Next() (int64, bool) {
	next := sh.nextDue.Load()
	if n, ok := sh.s.neigh.Next(); ok && n < next {
		next = n
	}
	return next, next != 1<<63-1
}

// Advance runs the shard's due timers, and the neighbour table's if no
// other shard is running them (engine.Timers).
func (sh *shard) Advance(now int64) int {
	sh.mu.Lock()
	// The loop read now before waiting for the lock, which a sender may
	// have held while it stamped segments with later times: timers must
	// not run in the past of what they see (RACK compares send times).
	if t := sh.s.clock(); t > now {
		now = t
	}
	n := sh.wheel.Advance(now)
	sh.timersMoved = true
	n += sh.s.neigh.Advance(sh, now)
	sh.count.timers += uint64(n)
	due := sh.socketDue
	sh.socketDue = false
	sh.notify(sh.unlock())
	if due {
		sh.s.udp.Tick() // outside the lock: it wakes pollers
	}
	return n
}

// publishNext publishes the wheel's earliest deadline for the loop, and
// wakes a sleeping softirq when a sender armed one earlier than it sleeps
// until. Under mu.
func (sh *shard) publishNext() {
	sh.timersMoved = false
	next, ok := sh.wheel.Next()
	if !ok {
		next = 1<<63 - 1
	}
	// Most unlocks change nothing: a load, not a store, so the loop
	// reading nextDue keeps its cache line.
	if old := sh.nextDue.Load(); next != old {
		sh.nextDue.Store(next)
		if next < old && sh.softirq != nil {
			sh.softirq.Kick()
		}
	}
}

// expireReassembly drops the datagrams whose time ran out and re-arms for
// the next one to.
func (sh *shard) expireReassembly(now int64) {
	sh.stats.ReasmTimeouts += uint64(sh.reasm.Expire(now))
	sh.armReassembly()
}

// armReassembly keeps the reassembly timer on the oldest pending datagram.
func (sh *shard) armReassembly() {
	when, ok := sh.reasm.Next()
	switch {
	case ok && (!sh.reasmTimer.Armed() || sh.reasmTimer.When() != when):
		sh.wheel.Arm(&sh.reasmTimer, when)
		sh.timersMoved = true
	case !ok && sh.reasmTimer.Armed():
		sh.wheel.Cancel(&sh.reasmTimer)
		sh.timersMoved = true
	}
}

// Stats of one shard, for ShardStats.
func (sh *shard) snapshot() ShardStats {
	sh.mu.Lock()
	defer sh.letGo()
	c := sh.count
	st := ShardStats{Shard: sh.id, Core: engine.AnyCore, RxFrames: c.rxFrames, SteeredOut: c.steeredOut,
		SteeredIn: c.steeredIn, HandedOff: sh.handedOff.Load(), DirectSends: c.directSends, TxFrames: c.txFrames,
		TxDropped: c.txDropped, Timers: c.timers, Stats: sh.stats}
	st.Stats.TCP = sh.tcpStats
	rc := sh.reasm.Counters()
	st.Stats.ReasmReqds, st.Stats.ReasmOKs, st.Stats.ReasmFails = rc.ReasmReqds, rc.ReasmOKs, rc.ReasmFails
	if sh.worker != nil {
		st.Core = sh.worker.Core()
	}
	st.SteerDrops = sh.steer.RxStats(0).Drops[engine.DropRingFull]
	return st
}

// ShardStats returns every shard's counters.
func (s *Stack) ShardStats() []ShardStats {
	out := make([]ShardStats, len(s.shards))
	for i, sh := range s.shards {
		out[i] = sh.snapshot()
	}
	return out
}

// The shard is the neighbour table's link: what the table sends, it sends
// on the calling shard's transmit queue.

// Output puts the Ethernet header on and queues the frame (neigh.Link).
func (sh *shard) Output(dev *link.Device, dst eth.MAC, typ uint16, m engine.Mbuf) {
	sh.linkOutput(dev, dst, typ, m)
}

// Alloc takes a buffer from the shard's caches (neigh.Link).
func (sh *shard) Alloc() (engine.Mbuf, error) { return sh.cs.Alloc(sh.s.pool) }

// Free gives a buffer back to the shard's caches (neigh.Link).
func (sh *shard) Free(m engine.Mbuf) { sh.cs.Free(m) }

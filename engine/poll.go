package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Burst is the number of descriptors moved per ring operation.
const Burst = 32

// QueueRef names one queue of one port.
type QueueRef struct {
	Port  Port
	Queue int
}

// Handler runs a burst of received packets to completion. It owns the mbufs
// in pkts: it frees them, queues them for transmit, or keeps them.
type Handler func(w *Worker, from QueueRef, pkts []Mbuf)

// Idle says what a poll loop does when a round found no packets.
type Idle int

const (
	// IdleSpin polls again at once: the lowest latency and a whole core
	// burnt, as a DPDK PMD does.
	IdleSpin Idle = iota
	// IdleSpinYield spins for a while, then gives the core to other threads
	// (sched_yield) between polls, for cores shared with other work.
	IdleSpinYield
)

func (i Idle) String() string {
	switch i {
	case IdleSpin:
		return "spin"
	case IdleSpinYield:
		return "spin-yield"
	}
	return fmt.Sprintf("idle(%d)", int(i))
}

// ParseIdle reads an idle strategy name.
func ParseIdle(s string) (Idle, error) {
	switch s {
	case "spin":
		return IdleSpin, nil
	case "spin-yield", "yield":
		return IdleSpinYield, nil
	}
	return 0, fmt.Errorf("idle strategy %q unknown: use spin or spin-yield", s)
}

// PollConfig is what a poll-mode worker does.
type PollConfig struct {
	Rx      []QueueRef
	Handler Handler
	Idle    Idle
	// SpinPolls is how many empty rounds IdleSpinYield spins before it
	// yields (0 means 256).
	SpinPolls int
	// Tick, if set, runs after every round on the worker's goroutine with
	// the number of packets that round received. A generator uses it to
	// send; it must not block.
	Tick func(w *Worker, received int)
}

// PollStats count what a poll loop did.
type PollStats struct {
	Rounds     uint64 // the number of passes over all the queues
	Polls      uint64 // the number of RxBurst calls
	EmptyPolls uint64 // the number of RxBurst calls that returned nothing
	Packets    uint64 // the number of packets received
	Yields     uint64 // the number of times the idle strategy gave the core away
	Timers     uint64 // the number of timers fired: After and Every callbacks, and what Timers.Advance reported
	TxPackets  uint64 // the number of packets TxBurst took from this worker's buffers
	TxDropped  uint64 // the number of packets freed because the transmit ring was full
	// BurstHist[n] is the number of RxBurst calls that returned n packets.
	BurstHist [Burst + 1]uint64
}

// publishedStats is the copy of PollStats other goroutines read. The whole
// struct is copied under a lock, so a counter added to PollStats is
// published with no further change here.
type publishedStats struct {
	mu sync.Mutex
	s  PollStats
}

func (p *publishedStats) store(s *PollStats) {
	p.mu.Lock()
	p.s = *s
	p.mu.Unlock()
}

func (p *publishedStats) load() PollStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// timerRounds is how many rounds pass between looks at the timers. A look
// reads the clock when a timer is armed, which on a busy loop cost a fifth
// of its time when done every round; a round takes well under a
// microsecond, so a timer fires at most some microseconds late, far below
// the stack's 1 ms timer tick.
const timerRounds = 16

// publishEvery is how many rounds pass between snapshots of the counters: the
// worker keeps plain counters and publishes them now and then, because an
// atomic store per poll would cost more than the poll.
const publishEvery = 1024

// Stats returns the worker's counters as last published (at most
// publishEvery rounds old while it runs, exact once it has stopped). When
// rounds are slow, publishEvery of them can be a long time: FreshStats
// asks for a snapshot.
func (w *Worker) Stats() PollStats { return w.pub.load() }

// FreshStats asks a running poll loop to publish its counters at the end of
// its current round and returns them, waiting at most timeout; a worker not
// polling has them exact already. For measuring windows, not for every
// packet: the loop pays one load of the request flag a round.
func (w *Worker) FreshStats(timeout time.Duration) PollStats {
	if !w.polling.Load() {
		return w.pub.load()
	}
	w.pubAsk.Store(true)
	for deadline := time.Now().Add(timeout); w.pubAsk.Load() && w.polling.Load() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Microsecond)
	}
	return w.pub.load()
}

// Poll runs the poll-mode loop until Stop: each round receives a burst from
// every queue, runs the handler on it to completion, flushes transmit buffers
// and fires due timers (the worker's own and its Timers). Call it from the
// worker's function. The worker busy-polls its core: Poll claims it
// (ClaimBusy) and returns the error if another busy worker holds it.
func (w *Worker) Poll(cfg PollConfig) error {
	if len(cfg.Rx) == 0 && cfg.Tick == nil {
		return errors.New("poll: no receive queues and no tick: nothing to do")
	}
	if len(cfg.Rx) > 0 && cfg.Handler == nil {
		return errors.New("poll: receive queues but no handler")
	}
	claimed, err := w.claimBusy()
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	if claimed {
		defer w.releaseBusy()
	}
	w.polling.Store(true)
	defer w.polling.Store(false)
	spin := cfg.SpinPolls
	if spin <= 0 {
		spin = 256
	}
	s := &w.stats
	var pkts [Burst]Mbuf
	empty := 0
	for round := 1; !w.stop.Load(); round++ {
		got := 0
		for _, q := range cfg.Rx {
			n := q.Port.RxBurst(q.Queue, pkts[:])
			s.Polls++
			s.BurstHist[n]++
			if n == 0 {
				s.EmptyPolls++
				continue
			}
			got += n
			cfg.Handler(w, q, pkts[:n])
		}
		s.Packets += uint64(got)
		if cfg.Tick != nil {
			cfg.Tick(w, got)
		}
		w.FlushTx()
		if round%timerRounds == 0 {
			s.Timers += uint64(w.runDueTimers(Nanotime))
		}
		s.Rounds++
		if got == 0 {
			empty++
			if cfg.Idle == IdleSpinYield && empty > spin {
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
				s.Yields++
			}
		} else {
			empty = 0
		}
		if round%publishEvery == 0 || w.pubAsk.Load() {
			w.pub.store(s)
			w.pubAsk.Store(false)
		}
	}
	w.FlushTx()
	w.pub.store(s)
	return nil
}

// TxBuffer gathers packets for one transmit queue so they leave in bursts
// (rte_eth_tx_buffer). It belongs to one worker.
type TxBuffer struct {
	_     [64]byte // keeps another core's data off these lines
	w     *Worker
	port  Port
	queue int
	n     int
	pkts  [Burst]Mbuf
	_     [64]byte
}

// TxBuffer returns the worker's buffer for a transmit queue, creating it on
// first use. The poll loop flushes it after every round.
func (w *Worker) TxBuffer(p Port, queue int) *TxBuffer {
	for _, t := range w.txq {
		if t.port == p && t.queue == queue {
			return t
		}
	}
	t := &TxBuffer{w: w, port: p, queue: queue}
	w.txq = append(w.txq, t)
	return t
}

// Add queues one packet, sending the burst once it is full.
func (t *TxBuffer) Add(m Mbuf) {
	t.pkts[t.n] = m
	t.n++
	if t.n == Burst {
		t.Flush()
	}
}

// Flush sends what is queued; what the port does not take is freed and
// counted as dropped, as DPDK's default tx-buffer error callback does.
func (t *TxBuffer) Flush() int {
	if t.n == 0 {
		return 0
	}
	sent := t.port.TxBurst(t.queue, t.pkts[:t.n])
	s := &t.w.stats
	s.TxPackets += uint64(sent)
	if sent < t.n {
		s.TxDropped += uint64(t.n - sent)
		t.w.Caches.FreeBulk(t.pkts[sent:t.n])
	}
	t.n = 0
	return sent
}

// FlushTx flushes every transmit buffer of the worker.
func (w *Worker) FlushTx() {
	for _, t := range w.txq {
		if t.n > 0 {
			t.Flush()
		}
	}
}

package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine/ring"
	"github.com/pollnet/pollnet/internal/futex"
)

// Defaults of the receive softirq, as Linux's net.core sysctls.
const (
	DefaultBudget      = 300  // netdev_budget: frames per softirq round
	DefaultBudgetUsecs = 2000 // netdev_budget_usecs: time per softirq round
	DefaultWeight      = 64   // NAPI weight: frames per poll of one queue
)

// SoftirqConfig are the knobs of one core's receive softirq.
type SoftirqConfig struct {
	Budget      int // frames per round (netdev_budget)
	BudgetUsecs int // microseconds per round (netdev_budget_usecs)
}

func (c *SoftirqConfig) fill() error {
	if c.Budget == 0 {
		c.Budget = DefaultBudget
	}
	if c.BudgetUsecs == 0 {
		c.BudgetUsecs = DefaultBudgetUsecs
	}
	if c.Budget < 1 || c.Budget > 1<<20 {
		return fmt.Errorf("softirq budget %d out of range 1..%d", c.Budget, 1<<20)
	}
	if c.BudgetUsecs < 1 || c.BudgetUsecs > 1e6 {
		return fmt.Errorf("softirq budget-usecs %d out of range 1..1000000", c.BudgetUsecs)
	}
	return nil
}

// SoftnetStats are one core's counters, the columns of /proc/net/softnet_stat
// that this engine has, plus what its parking adds.
type SoftnetStats struct {
	// Processed is the number of frames handed to the stack (softnet_stat
	// column 1, processed).
	Processed uint64
	// Dropped is the number of frames refused by a full backlog that this
	// softirq drains (column 2, dropped, which enqueue_to_backlog counts):
	// the sum of Dropped over its queues' ports that are Backlogs. A NIC
	// ring's overflow is the port's rx_missed, not this.
	Dropped uint64
	// TimeSqueeze is the number of rounds cut short because a poll spent
	// the budget or reached the time limit (column 3, time_squeeze),
	// whether or not work was left.
	TimeSqueeze uint64
	// Rounds is the number of receive actions run (net_rx_action calls).
	Rounds uint64
	// Polls is the number of NAPI polls.
	Polls uint64
	// Completes is the number of polls that finished under their weight and
	// re-armed the interrupt (napi_complete_done).
	Completes uint64
	// Wakeups is the number of times the softirq goroutine was woken.
	Wakeups uint64
	// Parks is the number of times it went to sleep with nothing to do.
	Parks uint64
	// Yields is the number of times it gave the core away after a round
	// that left work.
	Yields uint64
	// Scheduled is the number of napi_schedule calls that put a queue on the
	// poll list.
	Scheduled uint64
}

// Backlog is a port whose receive queue is a software backlog that senders
// fill directly, as netif_rx fills Linux's per-CPU input_pkt_queue, rather
// than a device ring. The frames it refuses when full are the softnet
// "dropped" of the softirq that drains it. A backlog has one queue.
type Backlog interface {
	Backlog() int    // the number of frames waiting
	Dropped() uint64 // the number of frames refused because it was full
}

// NAPI is one receive queue's poll context (struct napi_struct): the queue,
// its weight, and the handler that runs received bursts to completion.
type NAPI struct {
	id        int
	softirq   *Softirq
	port      Port
	queue     int
	weight    int
	handler   Handler
	groFlush  func()
	scheduled atomic.Bool
	polls     uint64 // owned by the softirq goroutine
	// pkts is the receive burst, owned by the softirq goroutine. It lives
	// here because a local array passed to RxBurst through the Port
	// interface would escape and be allocated on every poll.
	pkts [Burst]Mbuf
}

// NAPIConfig adds a queue to a softirq.
type NAPIConfig struct {
	Port    Port
	Queue   int
	Weight  int     // frames per poll (default 64)
	Handler Handler // runs each received burst to completion
	// GROFlush, if set, runs when a poll completes, as napi_complete_done
	// flushes GRO before re-arming.
	GROFlush func()
}

// Softirq is one core's receive softirq: a goroutine pinned to the core (the
// ksoftirqd of this engine) that sleeps until an interrupt schedules a NAPI
// context, then drains the poll list under a budget and a time limit. It
// also fires its worker's timers (After, Every, SetTimers), sleeping no
// longer than the next is due.
type Softirq struct {
	w      *Worker
	cfg    SoftirqConfig
	napis  []*NAPI
	sched  *ring.MPMC[int32] // NAPI ids put on the list by interrupt handlers
	list   pollList          // owned by the softirq goroutine
	asleep atomic.Uint32     // 1 while the softirq sleeps on it (a futex word)
	clock  func() int64      // Nanotime, or a fake one in tests

	stats    SoftnetStats // owned by the softirq goroutine
	backlogs []Backlog    // ports among napis' that are backlogs; guarded by mu
	mu       sync.Mutex   // guards napis and backlogs while adding

	pubMu sync.Mutex   // guards pub
	pub   SoftnetStats // the copy other goroutines read
}

// NewSoftirq prepares the softirq of a worker; add queues with Add, then run
// it with Run on the worker's goroutine.
func NewSoftirq(w *Worker, cfg SoftirqConfig) (*Softirq, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	sched, err := ring.NewMPMC[int32](maxNAPIs)
	if err != nil {
		return nil, err
	}
	return &Softirq{w: w, cfg: cfg, sched: sched, clock: Nanotime}, nil
}

// pollList is the softirq's list of scheduled contexts, a circular queue:
// each context is on it at most once, so it never holds more than all of
// them and never allocates once sized.
type pollList struct {
	q          []*NAPI
	head, size int
}

func (l *pollList) len() int { return l.size }

func (l *pollList) push(n *NAPI) {
	if l.size == len(l.q) {
		q := make([]*NAPI, max(8, 2*len(l.q)))
		for i := 0; i < l.size; i++ {
			q[i] = l.q[(l.head+i)%len(l.q)]
		}
		l.q, l.head = q, 0
	}
	l.q[(l.head+l.size)%len(l.q)] = n
	l.size++
}

func (l *pollList) pop() *NAPI {
	n := l.q[l.head]
	l.q[l.head] = nil
	l.head = (l.head + 1) % len(l.q)
	l.size--
	return n
}

// Config returns the softirq's knobs.
func (s *Softirq) Config() SoftirqConfig { return s.cfg }

// maxNAPIs bounds the queues one softirq serves, so the schedule ring can
// hold every one of them at once and never overflow.
const maxNAPIs = 1024

// Add registers a receive queue with this softirq and installs its
// interrupt handler (napi_schedule). Call it before Run; the queue's
// interrupt is armed when Run starts.
func (s *Softirq) Add(cfg NAPIConfig) (*NAPI, error) {
	if cfg.Port == nil || cfg.Handler == nil {
		return nil, errors.New("napi: a port and a handler are required")
	}
	if cfg.Weight == 0 {
		cfg.Weight = DefaultWeight
	}
	if cfg.Weight < 1 || cfg.Weight > 1<<16 {
		return nil, fmt.Errorf("napi weight %d out of range 1..65536", cfg.Weight)
	}
	if !cfg.Port.Info().Features.Interrupts {
		return nil, fmt.Errorf("napi: port %s cannot raise interrupts", cfg.Port.Info().Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.napis) == maxNAPIs {
		return nil, fmt.Errorf("napi: at most %d queues per softirq", maxNAPIs)
	}
	n := &NAPI{id: len(s.napis), softirq: s, port: cfg.Port, queue: cfg.Queue, weight: cfg.Weight,
		handler: cfg.Handler, groFlush: cfg.GROFlush}
	s.napis = append(s.napis, n)
	if b, ok := cfg.Port.(Backlog); ok && !slices.Contains(s.backlogs, b) {
		s.backlogs = append(s.backlogs, b)
	}
	cfg.Port.SetRxInterrupt(cfg.Queue, n.Schedule)
	return n, nil
}

// Schedule puts the NAPI context on its softirq's poll list unless it is
// there already, and wakes the softirq if it sleeps (napi_schedule). It is the
// whole of the hard interrupt handler.
func (n *NAPI) Schedule() {
	if !n.scheduled.CompareAndSwap(false, true) {
		return
	}
	s := n.softirq
	for !s.sched.Enqueue(int32(n.id)) {
		// Cannot happen: the ring holds every NAPI and each is on it once.
		panic("napi: schedule ring full")
	}
	// The CAS is a full barrier after the enqueue: either the softirq sees
	// the entry before it sleeps, or we see it asleep and wake it.
	s.wakeup()
}

// wakeup wakes the softirq goroutine if it sleeps.
func (s *Softirq) wakeup() {
	if s.asleep.CompareAndSwap(1, 0) {
		futex.Wake(&s.asleep, 1)
	}
}

// poll receives up to weight frames from the queue in bursts and runs each
// burst through the handler, then reaps transmit completions.
func (n *NAPI) poll(w *Worker) int {
	pkts := &n.pkts
	done := 0
	for done < n.weight {
		k := min(Burst, n.weight-done)
		got := n.port.RxBurst(n.queue, pkts[:k])
		if got == 0 {
			break
		}
		done += got
		n.handler(w, QueueRef{Port: n.port, Queue: n.queue}, pkts[:got])
		if got < k {
			break
		}
	}
	w.FlushTx()
	w.reapTx()
	n.polls++
	return done
}

// complete ends a poll that finished under its weight: flush GRO, leave the
// list, re-arm the interrupt (napi_complete_done). Arming raises at once if
// frames landed since the poll found the ring empty, so none is stranded.
func (n *NAPI) complete() {
	if n.groFlush != nil {
		n.groFlush()
	}
	n.scheduled.Store(false)
	n.port.ArmRx(n.queue)
}

// TxReaper is a port whose transmit completions are reaped by the poll that
// owns the queue, as igb_clean_tx_irq does inside the NAPI poll.
type TxReaper interface {
	ReapTx(queue int) int
}

// reapTx frees the completed transmissions of every queue this worker sends
// on: the poll cleans its transmit rings as well as its receive ring.
func (w *Worker) reapTx() {
	for _, t := range w.txq {
		if r, ok := t.port.(TxReaper); ok {
			r.ReapTx(t.queue)
		}
	}
}

// Run is the softirq goroutine's loop: sleep until scheduled or until the
// worker's next timer is due, then fire due timers and run the receive
// action, until the worker is stopped. Call it on the worker.
func (s *Softirq) Run() error {
	if len(s.napis) == 0 {
		return errors.New("softirq: no queues added")
	}
	for _, n := range s.napis {
		n.port.ArmRx(n.queue)
	}
	w := s.w
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() { // wakes the softirq so that Stop is noticed while it sleeps
		<-w.stopc
		s.wakeup()
	}()
	for !w.Stopped() {
		s.runTimers()
		s.collect()
		if s.list.len() == 0 {
			s.sleep()
			continue
		}
		if s.rxAction() {
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			s.stats.Yields++
		}
		s.publish()
	}
	for _, n := range s.napis {
		n.port.DisarmRx(n.queue)
		n.port.SetRxInterrupt(n.queue, nil)
	}
	w.FlushTx()
	s.publish()
	w.pub.store(&w.stats)
	return nil
}

// runTimers fires the worker's due timers and sends what they queued for
// transmit at once, since the softirq may go to sleep next. The fired are
// counted in the worker's PollStats.Timers, published when Run returns.
func (s *Softirq) runTimers() {
	w := s.w
	if n := w.runDueTimers(s.clock); n > 0 {
		w.stats.Timers += uint64(n)
		w.FlushTx()
	}
}

// Kick wakes the softirq if it sleeps, so that it reads its timers' next
// deadline again. Whoever arms, from another goroutine, a timer that may be
// earlier than the one the softirq sleeps towards calls it after arming. It
// costs one atomic load when the softirq is awake: a softirq that goes to
// sleep reads the deadline after it says it sleeps, so either it sees the
// new timer or Kick sees it asleep.
func (s *Softirq) Kick() {
	if s.asleep.Load() != 0 {
		s.wakeup()
	}
}

// collect moves newly scheduled contexts onto the poll list.
func (s *Softirq) collect() {
	var ids [64]int32
	for {
		k := s.sched.DequeueBurst(ids[:])
		for _, id := range ids[:k] {
			s.list.push(s.napis[id])
			s.stats.Scheduled++
		}
		if k < len(ids) {
			return
		}
	}
}

// sleep parks the goroutine until an interrupt schedules work, a Kick comes,
// or the worker's next timer is due. With no timer armed it sleeps for as
// long as nothing happens: an idle softirq costs no wake-ups.
func (s *Softirq) sleep() {
	s.asleep.Store(1)
	s.collect() // anything scheduled before asleep became visible
	if s.list.len() > 0 || s.w.Stopped() {
		s.asleep.Store(0)
		return
	}
	// Read after asleep is 1, so a timer armed elsewhere before this read
	// is seen here, and one armed after it finds the softirq asleep and
	// Kicks it.
	due, timed := s.w.nextTimer()
	if timed && s.clock() >= due {
		s.asleep.Store(0)
		return
	}
	s.stats.Parks++
	s.publish()
	for s.asleep.Load() == 1 {
		if !timed {
			futex.Wait(&s.asleep, 1, 0) // returns at once if a waker already cleared it
			continue
		}
		left := due - s.clock()
		if left <= 0 {
			s.asleep.CompareAndSwap(1, 0) // a waker may have cleared it first
			break
		}
		futex.Wait(&s.asleep, 1, time.Duration(left))
	}
	s.stats.Wakeups++
}

// rxAction drains the poll list under the budget and the time limit, like
// net_rx_action. As there, a poll that spends the budget or reaches the time
// limit ends the round and counts a time squeeze, even if it emptied the
// list. It reports whether work was left, in which case the caller yields
// before the next round.
func (s *Softirq) rxAction() (workLeft bool) {
	s.stats.Rounds++
	budget := s.cfg.Budget
	deadline := s.clock() + int64(s.cfg.BudgetUsecs)*1000
	for s.list.len() > 0 {
		n := s.list.pop()
		work := n.poll(s.w)
		s.stats.Polls++
		s.stats.Processed += uint64(work)
		budget -= work
		if work < n.weight {
			s.stats.Completes++
			n.complete()
		} else {
			s.list.push(n) // used its whole weight: to the tail
		}
		s.collect()
		if budget <= 0 || s.clock() >= deadline {
			s.stats.TimeSqueeze++
			return s.list.len() > 0
		}
	}
	return false
}

// publish copies the counters, the whole struct at once, where other
// goroutines may read them.
func (s *Softirq) publish() {
	var dropped uint64
	for _, b := range s.backlogs { // fixed once Run starts
		dropped += b.Dropped()
	}
	s.stats.Dropped = dropped
	s.pubMu.Lock()
	s.pub = s.stats
	s.pubMu.Unlock()
}

// Stats returns the softirq's counters as last published (after every round
// and before every sleep).
func (s *Softirq) Stats() SoftnetStats {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.pub
}

// Core is the core the softirq runs on.
func (s *Softirq) Core() int { return s.w.Core() }

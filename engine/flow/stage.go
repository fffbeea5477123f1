package flow

import (
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
)

// Kind is what a stage does.
type Kind int

// Stage kinds; the package comment names each one's nff-go counterpart.
const (
	KindReceiver Kind = iota
	KindGenerator
	KindHandler
	KindSeparator
	KindSplitter
	KindPartitioner
	KindSender
	KindStopper
)

var kindNames = [...]string{"receiver", "generator", "handler", "separator", "splitter", "partitioner", "sender", "stopper"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "kind?"
	}
	return kindNames[k]
}

func (k Kind) source() bool { return k == KindReceiver || k == KindGenerator }

// cloneable kinds hold no state between packets that a clone would split.
func (k Kind) cloneable() bool {
	return k == KindHandler || k == KindSeparator || k == KindSplitter
}

// burstFunc picks a kind's burst function once, when the graph is built.
func (k Kind) burstFunc() func(*instance, bool) int {
	switch k {
	case KindReceiver:
		return (*instance).receive
	case KindGenerator:
		return (*instance).generate
	case KindSender:
		return (*instance).send
	case KindHandler:
		return func(in *instance, draining bool) int { return in.transform(draining, (*instance).handle) }
	case KindSeparator:
		return func(in *instance, draining bool) int { return in.transform(draining, (*instance).separate) }
	case KindSplitter:
		return func(in *instance, draining bool) int { return in.transform(draining, (*instance).split) }
	case KindPartitioner:
		return func(in *instance, draining bool) int { return in.transform(draining, (*instance).partition) }
	}
	return func(in *instance, draining bool) int { return in.transform(draining, (*instance).stop) }
}

// stage is one node of the graph and the instances that run it.
type stage struct {
	g         *Graph
	kind      Kind
	name      string
	cloneable bool

	// What the stage does; set when it is added, read-only once started.
	port   engine.Port
	queue  int
	pool   *engine.Pool
	gen    func(engine.Mbuf) bool
	keep   func(engine.Mbuf) bool
	pick   func(engine.Mbuf) int
	counts []int

	inEdge   *edge
	outEdges []*edge
	in       queue   // set at Start; nil for a source
	outs     []queue // set at Start, one per output flow
	burst    func(in *instance, draining bool) int

	insts []*instance // every instance ever started, the original first; guarded by g.mu

	// The scheduler's, owned by its goroutine.
	high, low int

	clonesStarted atomic.Uint64
	clonesRetired atomic.Uint64
}

// instances is a snapshot of st.insts.
func (st *stage) instances() []*instance {
	st.g.mu.Lock()
	defer st.g.mu.Unlock()
	return append([]*instance(nil), st.insts...)
}

const noCore = -2 // an instance on a plain goroutine, or whose core went back

// Instance states. An instance retiring takes no more input and exits once
// it has handed on what it holds; a halted one exits at once.
const (
	stateRun int32 = iota
	stateRetire
	stateHalt
)

// outBuf is an output's packets of the current burst, off of which the
// ring has taken so far.
type outBuf struct {
	q      queue
	off, n int
	buf    [engine.Burst]engine.Mbuf
}

func (o *outBuf) pending() bool { return o.off < o.n }

// push offers the rest of the buffer to the ring and returns how many it
// took.
func (o *outBuf) push() int {
	k := o.q.EnqueueBurst(o.buf[o.off:o.n])
	o.off += k
	if o.off == o.n {
		o.off, o.n = 0, 0
	}
	return k
}

// instance is one running copy of a stage: the original or a clone. Its
// goroutine owns everything but the counters and state.
type instance struct {
	_     [64]byte
	st    *stage
	clone bool
	core  int // guarded by g.mu
	w     *engine.Worker
	cs    engine.Caches
	rx    [engine.Burst]engine.Mbuf
	drop  [engine.Burst]engine.Mbuf
	outs  []outBuf
	// The partitioner's place in its deal.
	part, left int

	done chan struct{}

	_       [64]byte // counters are written by the owner, read by anyone
	state   atomic.Int32
	in      atomic.Uint64
	out     atomic.Uint64
	dropped atomic.Uint64
	bursts  atomic.Uint64
	_       [64]byte
}

// startInstance runs a new instance of st: on a worker pinned to a free
// core when the graph has cores, else on a goroutine. It fails when no core
// is free.
func (st *stage) startInstance(clone bool) (*instance, error) {
	g := st.g
	in := st.newInstance(clone)
	if g.cfg.Cores != nil {
		g.mu.Lock()
		if len(g.freeCores) == 0 {
			g.mu.Unlock()
			return nil, errNoCore
		}
		in.core = g.freeCores[len(g.freeCores)-1]
		g.freeCores = g.freeCores[:len(g.freeCores)-1]
		g.mu.Unlock()
		w, err := engine.NewWorker(in.core)
		if err == nil {
			in.w = w
			err = w.Start(func(*engine.Worker) { in.run() })
		}
		if err != nil {
			g.mu.Lock()
			g.freeCores = append(g.freeCores, in.core)
			g.mu.Unlock()
			return nil, err
		}
	} else {
		go in.run()
	}
	g.mu.Lock()
	st.insts = append(st.insts, in)
	g.mu.Unlock()
	return in, nil
}

// newInstance prepares an instance of st that is not running yet.
func (st *stage) newInstance(clone bool) *instance {
	in := &instance{st: st, clone: clone, core: noCore, done: make(chan struct{})}
	n := len(st.outs)
	if st.kind == KindSender {
		n = 1 // the transmit buffer
	}
	in.outs = make([]outBuf, n)
	for i := range st.outs {
		in.outs[i].q = st.outs[i]
	}
	if st.kind == KindPartitioner {
		in.left = st.counts[0]
	}
	return in
}

// run is an instance's loop.
func (in *instance) run() {
	defer close(in.done)
	st := in.st
	defer in.cs.Close()
	if st.kind == KindSender {
		// Sent frames come back into this instance's caches.
		st.port.SetTxCaches(st.queue, &in.cs)
		defer st.port.SetTxCaches(st.queue, nil)
	}
	for {
		s := in.state.Load()
		if s == stateHalt {
			return
		}
		draining := s == stateRetire
		if draining && !in.holding() {
			return
		}
		if st.burst(in, draining) == 0 {
			st.g.idle()
		}
	}
}

func (in *instance) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

func (in *instance) wait() {
	<-in.done
	if in.w != nil {
		in.w.Stop()
	}
}

// holding reports whether the instance holds packets it has not handed on.
func (in *instance) holding() bool {
	for i := range in.outs {
		if in.outs[i].pending() {
			return true
		}
	}
	return false
}

// release frees what an exited instance still holds, into cs, and returns
// how many packets that was.
func (in *instance) release(cs *engine.Caches) int {
	n := 0
	for i := range in.outs {
		o := &in.outs[i]
		cs.FreeBulk(o.buf[o.off:o.n])
		n += o.n - o.off
		o.off, o.n = 0, 0
	}
	return n
}

// flush offers every output's held packets to its ring; it returns how
// many went and whether all did.
func (in *instance) flush() (moved int, clear bool) {
	clear = true
	for i := range in.outs {
		o := &in.outs[i]
		if o.pending() {
			moved += o.push()
			clear = clear && !o.pending()
		}
	}
	if moved > 0 {
		in.out.Add(uint64(moved))
	}
	return moved, clear
}

// transform is the burst of every stage that has one input: it hands on
// what the last burst left, then takes a burst only when nothing is held,
// so a full output holds the stage back instead of dropping.
func (in *instance) transform(draining bool, classify func(*instance, []engine.Mbuf) int) int {
	moved, clear := in.flush()
	if !clear || draining {
		return moved
	}
	n := in.st.in.DequeueBurst(in.rx[:])
	if n == 0 {
		return moved
	}
	in.in.Add(uint64(n))
	in.bursts.Add(1)
	if d := classify(in, in.rx[:n]); d > 0 {
		in.cs.FreeBulk(in.drop[:d])
		in.dropped.Add(uint64(d))
	}
	in.flush()
	return moved + n
}

func (o *outBuf) add(m engine.Mbuf) {
	o.buf[o.n] = m
	o.n++
}

// handle keeps the packets its function accepts; it returns the number put
// in in.drop.
func (in *instance) handle(ms []engine.Mbuf) int {
	keep, out, d := in.st.keep, &in.outs[0], 0
	for _, m := range ms {
		if keep(m) {
			out.add(m)
		} else {
			in.drop[d] = m
			d++
		}
	}
	return d
}

func (in *instance) separate(ms []engine.Mbuf) int {
	keep, yes, no := in.st.keep, &in.outs[0], &in.outs[1]
	for _, m := range ms {
		if keep(m) {
			yes.add(m)
		} else {
			no.add(m)
		}
	}
	return 0
}

func (in *instance) split(ms []engine.Mbuf) int {
	pick, outs, d := in.st.pick, in.outs, 0
	for _, m := range ms {
		if i := pick(m); i >= 0 && i < len(outs) {
			outs[i].add(m)
		} else {
			in.drop[d] = m
			d++
		}
	}
	return d
}

func (in *instance) partition(ms []engine.Mbuf) int {
	counts := in.st.counts
	for _, m := range ms {
		in.outs[in.part].add(m)
		if in.left--; in.left == 0 {
			in.part++
			if in.part == len(counts) {
				in.part = 0
			}
			in.left = counts[in.part]
		}
	}
	return 0
}

func (in *instance) stop(ms []engine.Mbuf) int { return copy(in.drop[:], ms) }

// receive takes a burst from the port's queue once the last one is in the
// ring; a full ring leaves packets in the port, which counts them missed.
func (in *instance) receive(draining bool) int {
	moved, clear := in.flush()
	if !clear || draining {
		return moved
	}
	o := &in.outs[0]
	n := in.st.port.RxBurst(in.st.queue, o.buf[:])
	if n == 0 {
		return moved
	}
	in.in.Add(uint64(n))
	in.bursts.Add(1)
	o.n = n
	in.flush()
	return moved + n
}

// generate fills a burst of fresh mbufs once the last one is in the ring.
func (in *instance) generate(draining bool) int {
	moved, clear := in.flush()
	if !clear || draining {
		return moved
	}
	st, o := in.st, &in.outs[0]
	if in.cs.AllocBulk(st.pool, in.rx[:]) != nil {
		return moved // the pool is empty for now; its EmptyEvents say so
	}
	d := 0
	for _, m := range in.rx {
		if st.gen(m) {
			o.add(m)
		} else {
			in.drop[d] = m
			d++
		}
	}
	in.cs.FreeBulk(in.drop[:d]) // declined: never made, so not counted
	if o.n == 0 {
		return moved
	}
	in.in.Add(uint64(o.n))
	in.bursts.Add(1)
	in.flush()
	return moved + o.n
}

// send transmits a burst, and the rest of the last one first: the port
// owns what it took, the stage keeps the rest.
func (in *instance) send(draining bool) int {
	st, o := in.st, &in.outs[0]
	moved := 0
	if o.pending() {
		moved = in.tx(o)
		if o.pending() || draining {
			return moved
		}
	} else if draining {
		return 0
	}
	n := st.in.DequeueBurst(o.buf[:])
	if n == 0 {
		return moved
	}
	in.in.Add(uint64(n))
	in.bursts.Add(1)
	o.off, o.n = 0, n
	return moved + n + in.tx(o)
}

func (in *instance) tx(o *outBuf) int {
	k := in.st.port.TxBurst(in.st.queue, o.buf[o.off:o.n])
	o.off += k
	if o.off == o.n {
		o.off, o.n = 0, 0
	}
	in.out.Add(uint64(k))
	return k
}

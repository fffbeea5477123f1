package flow

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// Config shapes a graph and its scheduler. Zero fields take the defaults
// given beside them.
type Config struct {
	// RingSize is the number of slots of every ring between stages, a
	// power of two (1024).
	RingSize int

	// Cores, when set, runs each stage instance on an engine.Worker pinned
	// to a core taken from this list (engine.AnyCore entries give workers
	// that are locked to a thread but not pinned); a clone needs a free
	// core, as nff-go's scheduler needs one. Nil runs every instance on a
	// plain goroutine.
	Cores []int

	// IdleSleep is how long an instance sleeps after a burst that moved
	// nothing. Zero yields the processor instead (runtime.Gosched): a busy
	// poll, as a DPDK lcore does, that still lets other goroutines run.
	IdleSleep time.Duration

	// MaxClones is the most clones the scheduler runs of one stage beside
	// its original. Zero turns the scheduler off.
	MaxClones int
	// Clock is what the scheduler's periods are measured on (RealClock).
	Clock Clock
	// Period is how often the scheduler looks at the input rings (100 ms).
	Period time.Duration
	// CloneAbove is the fill of a stage's input ring, in mbufs, above
	// which a period counts towards a clone (half the ring).
	CloneAbove int
	// ClonePeriods is the number of periods in a row the fill must stay
	// above CloneAbove before a clone starts (3).
	ClonePeriods int
	// RetireBelow is the fill under which a period counts towards retiring
	// a clone (engine.Burst).
	RetireBelow int
	// RetirePeriods is the number of periods in a row the fill must stay
	// under RetireBelow before the newest clone is retired (5).
	RetirePeriods int

	// DrainTimeout bounds how long Stop waits for packets in flight to
	// reach a sender or a drop (1 s).
	DrainTimeout time.Duration
}

func (c *Config) setDefaults() error {
	if c.RingSize == 0 {
		c.RingSize = 1024
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Period == 0 {
		c.Period = 100 * time.Millisecond
	}
	if c.CloneAbove == 0 {
		c.CloneAbove = c.RingSize / 2
	}
	if c.ClonePeriods == 0 {
		c.ClonePeriods = 3
	}
	if c.RetireBelow == 0 {
		c.RetireBelow = engine.Burst
	}
	if c.RetirePeriods == 0 {
		c.RetirePeriods = 5
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = time.Second
	}
	switch {
	case c.MaxClones < 0:
		return fmt.Errorf("flow: MaxClones %d is negative", c.MaxClones)
	case c.Period < 0 || c.IdleSleep < 0 || c.DrainTimeout < 0:
		return errors.New("flow: a negative duration in the config")
	case c.RetireBelow > c.CloneAbove:
		return fmt.Errorf("flow: RetireBelow %d is above CloneAbove %d", c.RetireBelow, c.CloneAbove)
	case c.ClonePeriods < 0 || c.RetirePeriods < 0:
		return errors.New("flow: a negative number of periods in the config")
	}
	for _, core := range c.Cores {
		if err := engine.CheckCore(core); err != nil {
			return fmt.Errorf("flow: %w", err)
		}
	}
	return nil
}

// Errors of graph construction.
var (
	ErrStarted  = errors.New("flow: the graph has already been started")
	ErrClosed   = errors.New("flow: the flow has already been consumed by a stage")
	ErrForeign  = errors.New("flow: the flow belongs to another graph")
	ErrNoOutput = errors.New("flow: a stage needs at least one output")
)

// Graph is a set of stages joined by flows. One goroutine builds it with the
// stage methods, then Starts and Stops it; Stats may be read from any
// goroutine at any time.
type Graph struct {
	cfg     Config
	stages  []*stage
	edges   []*edge
	started bool
	stopped bool

	mu        sync.Mutex // guards freeCores and every stage's insts
	freeCores []int

	ticks   atomic.Uint64
	flushed atomic.Uint64

	schedStop chan struct{}
	schedDone chan struct{}
}

// New makes an empty graph.
func New(cfg Config) (*Graph, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := ring.NewSPSC[engine.Mbuf](cfg.RingSize); err != nil {
		return nil, fmt.Errorf("flow: %w", err)
	}
	return &Graph{cfg: cfg, freeCores: append([]int(nil), cfg.Cores...)}, nil
}

// Flow is a stream of mbufs between two stages: the caller's handle on the
// edge a stage produces, until another stage consumes it.
type Flow struct {
	g *Graph
	e *edge // nil once consumed
}

// edge is one ring of the graph. Several edges merged into one share the
// ring of the last (into).
type edge struct {
	producers []*stage
	consumer  *stage
	into      *edge // set by Merger
	q         queue // set at Start, on the edge that is not merged
}

// queue is what SPSC and MPMC rings of mbufs have in common.
type queue interface {
	EnqueueBurst([]engine.Mbuf) int
	DequeueBurst([]engine.Mbuf) int
	Len() int
	Cap() int
}

// final is the edge whose ring e's producers write into.
func (e *edge) final() *edge {
	for e.into != nil {
		e = e.into
	}
	return e
}

func (g *Graph) newFlow(producer *stage) *Flow {
	e := &edge{producers: []*stage{producer}}
	g.edges = append(g.edges, e)
	producer.outEdges = append(producer.outEdges, e)
	return &Flow{g: g, e: e}
}

// take checks that f may be consumed now.
func (g *Graph) take(f *Flow) error {
	switch {
	case g.started:
		return ErrStarted
	case f == nil || f.g != g:
		return ErrForeign
	case f.e == nil:
		return ErrClosed
	}
	return nil
}

// consume ends f at stage st.
func (g *Graph) consume(f *Flow, st *stage) {
	f.e.consumer = st
	st.inEdge = f.e
	f.e = nil
}

func (g *Graph) addStage(kind Kind) *stage {
	n := 1
	for _, s := range g.stages {
		if s.kind == kind {
			n++
		}
	}
	st := &stage{g: g, kind: kind, name: fmt.Sprintf("%s%d", kind, n)}
	g.stages = append(g.stages, st)
	return st
}

// Receiver starts a flow with the packets received on a port's queue.
func (g *Graph) Receiver(p engine.Port, queue int) (*Flow, error) {
	if g.started {
		return nil, ErrStarted
	}
	if p == nil || queue < 0 || queue >= p.Info().RxQueues {
		return nil, fmt.Errorf("flow: receiver: no receive queue %d on the port", queue)
	}
	st := g.addStage(KindReceiver)
	st.port, st.queue = p, queue
	return g.newFlow(st), nil
}

// Generator starts a flow of packets that fn writes into fresh mbufs from
// pool. fn returns false to decline the mbuf (it is freed, not counted), as
// a generator with nothing to send for now does.
func (g *Graph) Generator(pool *engine.Pool, fn func(m engine.Mbuf) bool) (*Flow, error) {
	if g.started {
		return nil, ErrStarted
	}
	if pool == nil || fn == nil {
		return nil, errors.New("flow: generator: needs a pool and a function")
	}
	st := g.addStage(KindGenerator)
	st.pool, st.gen = pool, fn
	return g.newFlow(st), nil
}

// Handler runs fn on every packet of f, in place: packets for which it
// returns true go on along f, the others are freed and counted as dropped.
func (g *Graph) Handler(f *Flow, fn func(m engine.Mbuf) bool) error {
	if err := g.take(f); err != nil {
		return err
	}
	if fn == nil {
		return errors.New("flow: handler: no function")
	}
	st := g.addStage(KindHandler)
	st.keep = fn
	g.consume(f, st)
	f.e = g.newFlow(st).e
	return nil
}

// Separator sends the packets of f for which fn returns false to a new
// flow; the others stay on f.
func (g *Graph) Separator(f *Flow, fn func(m engine.Mbuf) bool) (*Flow, error) {
	if err := g.take(f); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("flow: separator: no function")
	}
	st := g.addStage(KindSeparator)
	st.keep = fn
	g.consume(f, st)
	f.e = g.newFlow(st).e
	return g.newFlow(st), nil
}

// Splitter consumes f and sends each packet to the output fn names, one of
// n; an index outside 0..n-1 drops the packet.
func (g *Graph) Splitter(f *Flow, fn func(m engine.Mbuf) int, n int) ([]*Flow, error) {
	if err := g.take(f); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("flow: splitter: no function")
	}
	if n < 1 {
		return nil, ErrNoOutput
	}
	st := g.addStage(KindSplitter)
	st.pick = fn
	g.consume(f, st)
	return g.newFlows(st, n), nil
}

// Partitioner consumes f and deals its packets to len(counts) outputs in
// turn: counts[0] packets to the first, counts[1] to the second, and round
// again. The deal runs across bursts.
func (g *Graph) Partitioner(f *Flow, counts ...int) ([]*Flow, error) {
	if err := g.take(f); err != nil {
		return nil, err
	}
	if len(counts) == 0 {
		return nil, ErrNoOutput
	}
	for _, c := range counts {
		if c < 1 {
			return nil, fmt.Errorf("flow: partitioner: count %d is not positive", c)
		}
	}
	st := g.addStage(KindPartitioner)
	st.counts = append([]int(nil), counts...)
	g.consume(f, st)
	return g.newFlows(st, len(counts)), nil
}

func (g *Graph) newFlows(st *stage, n int) []*Flow {
	fs := make([]*Flow, n)
	for i := range fs {
		fs[i] = g.newFlow(st)
	}
	return fs
}

// Merger consumes fs and returns one flow that carries the packets of all:
// their producers write into one ring, so it costs no stage.
func (g *Graph) Merger(fs ...*Flow) (*Flow, error) {
	if len(fs) == 0 {
		return nil, errors.New("flow: merger: no flows")
	}
	for i, f := range fs {
		if err := g.take(f); err != nil {
			return nil, err
		}
		for _, h := range fs[:i] {
			if h == f {
				return nil, errors.New("flow: merger: a flow given twice")
			}
		}
	}
	out := &edge{}
	g.edges = append(g.edges, out)
	for _, f := range fs {
		f.e.into = out
		out.producers = append(out.producers, f.e.producers...)
		f.e = nil
	}
	return &Flow{g: g, e: out}, nil
}

// Sender consumes f by transmitting its packets on a port's queue. A queue
// that takes only part of a burst holds the stage back until it takes the
// rest.
func (g *Graph) Sender(f *Flow, p engine.Port, queue int) error {
	if err := g.take(f); err != nil {
		return err
	}
	if p == nil || queue < 0 || queue >= p.Info().TxQueues {
		return fmt.Errorf("flow: sender: no transmit queue %d on the port", queue)
	}
	st := g.addStage(KindSender)
	st.port, st.queue = p, queue
	g.consume(f, st)
	return nil
}

// Stopper consumes f by freeing its packets, counted as dropped.
func (g *Graph) Stopper(f *Flow) error {
	if err := g.take(f); err != nil {
		return err
	}
	g.consume(f, g.addStage(KindStopper))
	return nil
}

// build checks the graph and makes its rings and first instances.
func (g *Graph) build() error {
	if g.started {
		return ErrStarted
	}
	if len(g.stages) == 0 {
		return errors.New("flow: the graph has no stages")
	}
	for _, st := range g.stages {
		st.cloneable = g.cfg.MaxClones > 0 && st.kind.cloneable()
	}
	for _, e := range g.edges {
		if e.into != nil {
			continue
		}
		if e.consumer == nil {
			return fmt.Errorf("flow: a flow from %s is never consumed: end it with Sender or Stopper", e.producers[0].name)
		}
		multi := len(e.producers) > 1 || e.consumer.cloneable
		for _, p := range e.producers {
			multi = multi || p.cloneable
		}
		var err error
		if multi {
			e.q, err = ring.NewMPMC[engine.Mbuf](g.cfg.RingSize)
		} else {
			e.q, err = ring.NewSPSC[engine.Mbuf](g.cfg.RingSize)
		}
		if err != nil {
			return fmt.Errorf("flow: %w", err)
		}
	}
	for _, st := range g.stages {
		if st.inEdge != nil {
			st.in = st.inEdge.final().q
		}
		for _, e := range st.outEdges {
			st.outs = append(st.outs, e.final().q)
		}
		st.burst = st.kind.burstFunc()
	}
	g.started = true
	return nil
}

// Start builds the rings and runs one instance of every stage, then the
// scheduler when MaxClones is above zero.
func (g *Graph) Start() error {
	if err := g.build(); err != nil {
		return err
	}
	for _, st := range g.stages {
		if _, err := st.startInstance(false); err != nil {
			g.halt()
			return err
		}
	}
	if g.cfg.MaxClones > 0 {
		g.schedStop = make(chan struct{})
		g.schedDone = make(chan struct{})
		go g.schedule()
	}
	return nil
}

// inFlight is the number of packets that sources have made and that have
// neither left through a sender nor been dropped. Drops and sends are read
// before makes: a packet counted as sent was counted as made before it.
func (g *Graph) inFlight() int64 {
	var gone, made uint64
	for _, st := range g.stages {
		for _, in := range st.instances() {
			gone += in.dropped.Load()
			if st.kind == KindSender {
				gone += in.out.Load()
			}
		}
	}
	for _, st := range g.stages {
		if st.kind.source() {
			for _, in := range st.instances() {
				made += in.in.Load()
			}
		}
	}
	return int64(made) - int64(gone)
}

// Stop ends the graph: sources stop making packets and hand on what they
// hold, the rest of the graph runs until every packet in flight has left or
// Config.DrainTimeout has passed, then every instance stops and whatever is
// still in a ring or held by a stage is freed (Stats.Flushed). Stop
// returns an error when packets had to be freed that way.
func (g *Graph) Stop() error {
	if !g.started || g.stopped {
		return nil
	}
	g.stopped = true
	if g.schedStop != nil {
		close(g.schedStop)
		<-g.schedDone
	}
	deadline := time.Now().Add(g.cfg.DrainTimeout)
	for _, st := range g.stages {
		if st.kind.source() {
			for _, in := range st.instances() {
				in.state.CompareAndSwap(stateRun, stateRetire)
			}
		}
	}
	for _, st := range g.stages {
		if st.kind.source() {
			for _, in := range st.instances() {
				waitUntil(deadline, func() bool { return in.exited() })
			}
		}
	}
	waitUntil(deadline, func() bool { return g.inFlight() == 0 })
	g.halt()
	if n := g.flushed.Load(); n > 0 {
		return fmt.Errorf("flow: stop: %d packets still in flight after %v were freed", n, g.cfg.DrainTimeout)
	}
	return nil
}

func waitUntil(deadline time.Time, done func() bool) {
	for !done() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
}

// halt stops every instance at once, then frees what they and the rings
// still hold.
func (g *Graph) halt() {
	var all []*instance
	for _, st := range g.stages {
		all = append(all, st.instances()...)
	}
	for _, in := range all {
		in.state.Store(stateHalt)
	}
	for _, in := range all {
		in.wait()
	}
	// Every owner has exited: what is left is ours to free.
	var cs engine.Caches
	for _, in := range all {
		g.flushed.Add(uint64(in.release(&cs)))
	}
	buf := make([]engine.Mbuf, engine.Burst)
	for _, e := range g.edges {
		if e.q == nil {
			continue
		}
		for {
			n := e.q.DequeueBurst(buf)
			if n == 0 {
				break
			}
			cs.FreeBulk(buf[:n])
			g.flushed.Add(uint64(n))
		}
	}
	cs.Close()
	g.mu.Lock()
	for _, st := range g.stages {
		for _, in := range st.insts {
			if in.core != noCore {
				g.freeCores = append(g.freeCores, in.core)
				in.core = noCore
			}
		}
	}
	g.mu.Unlock()
}

// idle is what an instance does after a burst that moved nothing.
func (g *Graph) idle() {
	if g.cfg.IdleSleep > 0 {
		time.Sleep(g.cfg.IdleSleep)
		return
	}
	runtime.Gosched()
}

package flow

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// testPool makes a pool and checks, when the test ends, that every mbuf came
// back to it.
func testPool(t *testing.T, size int) *engine.Pool {
	t.Helper()
	p, err := engine.NewPool(t.Name(), size, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := p.Available(); n != p.Size() {
			t.Errorf("pool leak: %d of %d mbufs not returned", p.Size()-n, p.Size())
		}
		if p.DoubleFrees() != 0 {
			t.Errorf("%d double frees", p.DoubleFrees())
		}
		p.Close()
	})
	return p
}

// seqGen returns a generator function that writes 0, 1, ... n-1 into the
// first 8 bytes of its packets and then declines, and the count it made.
func seqGen(n uint64) (func(engine.Mbuf) bool, *atomic.Uint64) {
	var next atomic.Uint64
	return func(m engine.Mbuf) bool {
		s := next.Load()
		if s >= n {
			return false
		}
		next.Store(s + 1) // one generator instance: no race on next
		b, err := m.Append(8)
		if err != nil {
			return false
		}
		binary.LittleEndian.PutUint64(b, s)
		return true
	}, &next
}

func seqOf(m engine.Mbuf) uint64 {
	d := m.Data()
	if len(d) < 8 {
		return ^uint64(0)
	}
	return binary.LittleEndian.Uint64(d)
}

// fakePort is a port whose receive queues the test fills and whose transmit
// queues count, per sequence number, what they took.
type fakePort struct {
	rx    []*ring.MPMC[engine.Mbuf]
	txq   []*fakeTx
	limit atomic.Int64 // the most a TxBurst takes; negative: no limit
}

type fakeTx struct {
	cs   *engine.Caches // owned by the queue's driving goroutine
	seen []uint32       // times each sequence number was sent
	log  []uint64       // sequence numbers in the order sent
	bad  int            // frames without a sequence number in range
}

func newFakePort(t *testing.T, queues, maxSeq int) *fakePort {
	p := &fakePort{}
	p.limit.Store(-1)
	for i := 0; i < queues; i++ {
		r, err := ring.NewMPMC[engine.Mbuf](4096)
		if err != nil {
			t.Fatal(err)
		}
		p.rx = append(p.rx, r)
		p.txq = append(p.txq, &fakeTx{seen: make([]uint32, maxSeq)})
	}
	return p
}

func (p *fakePort) Info() engine.PortInfo {
	return engine.PortInfo{Name: "fake", RxQueues: len(p.rx), TxQueues: len(p.txq)}
}

func (p *fakePort) RxBurst(q int, pkts []engine.Mbuf) int { return p.rx[q].DequeueBurst(pkts) }

func (p *fakePort) TxBurst(q int, pkts []engine.Mbuf) int {
	n := len(pkts)
	if l := p.limit.Load(); l >= 0 {
		n = min(n, int(l))
	}
	tq := p.txq[q]
	for _, m := range pkts[:n] {
		s := seqOf(m)
		if s < uint64(len(tq.seen)) {
			tq.seen[s]++
			tq.log = append(tq.log, s)
		} else {
			tq.bad++
		}
	}
	tq.cs.FreeBulk(pkts[:n])
	return n
}

func (p *fakePort) SetTxCaches(q int, cs *engine.Caches) { p.txq[q].cs = cs }
func (p *fakePort) RxStats(int) engine.QueueStats        { return engine.QueueStats{} }
func (p *fakePort) TxStats(int) engine.QueueStats        { return engine.QueueStats{} }
func (p *fakePort) SetRxInterrupt(int, func())           {}
func (p *fakePort) ArmRx(int)                            {}
func (p *fakePort) DisarmRx(int)                         {}

// Close frees what the receive queues still hold.
func (p *fakePort) Close() error {
	buf := make([]engine.Mbuf, 64)
	for _, r := range p.rx {
		for n := r.DequeueBurst(buf); n > 0; n = r.DequeueBurst(buf) {
			(*engine.Caches)(nil).FreeBulk(buf[:n])
		}
	}
	return nil
}

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Duration
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Duration
	c  chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now + d, ch})
	return ch
}

func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// Advance moves the clock on by d and fires every waiter now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at <= c.now {
			w.c <- time.Unix(0, int64(c.now))
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// eventually waits, in real time, for cond; it fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// step lets the scheduler run exactly one more period on the fake clock.
func step(t *testing.T, g *Graph, clk *fakeClock) {
	t.Helper()
	eventually(t, "the scheduler waits for its period", func() bool { return clk.waiting() > 0 })
	n := g.Stats().Ticks
	clk.Advance(g.cfg.Period)
	eventually(t, "the scheduler has ticked", func() bool { return g.Stats().Ticks == n+1 })
}

func stageStats(t *testing.T, g *Graph, name string) StageStats {
	t.Helper()
	s, ok := g.Stats().Stage(name)
	if !ok {
		t.Fatalf("no stage %q", name)
	}
	return s
}

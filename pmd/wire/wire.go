// Package wire is an in-memory port pair joined back to back, like a veth
// pair: what one port transmits lands on the other's receive queues. It needs
// no root and no setup, so it is the default port of every benchmark.
//
// Each receive queue has one single-producer/single-consumer descriptor ring
// per transmit queue of the peer (a lane), so a frame crosses cores with no
// lock and no compare-and-swap. A full lane drops the frame and counts it as
// rx_missed, as a NIC does when its RingBuffer overflows. By default a frame
// is copied into the receiver's pool, as DMA would; in zero-copy mode the
// mbuf itself is handed over.
//
// Whatever the path (copy or zero-copy, one segment or a chain, impaired or
// not), what crosses is the frame's bytes. The receiver's metadata is what a
// NIC would write: the port and queue, and the RSS hash when the port has
// several queues. No offload request, hash or header length of the sender
// crosses: the wire offers no transmit offloads.
//
// RSS hashes TCP and UDP over addresses and ports, and every other frame,
// IPv4 fragments included, over addresses only, so that all the fragments of
// a datagram land on one queue.
package wire

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// Impairment degrades the link on purpose, driven by a seed so that a failing
// run can be replayed. Probabilities are per frame, 0..1.
type Impairment struct {
	Loss      float64       // drop the frame
	Duplicate float64       // deliver it twice
	Reorder   float64       // hold it back until the queue's next frame has gone
	Corrupt   float64       // flip one bit of it
	Delay     time.Duration // deliver it this much later (frames keep their order)
	Seed      uint64
}

func (im Impairment) active() bool {
	return im.Loss > 0 || im.Duplicate > 0 || im.Reorder > 0 || im.Corrupt > 0 || im.Delay > 0
}

func (im Impairment) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", im.Loss}, {"duplicate", im.Duplicate}, {"reorder", im.Reorder}, {"corrupt", im.Corrupt}} {
		if p.v < 0 || p.v > 1 || p.v != p.v {
			return fmt.Errorf("wire: %s probability %v out of range 0..1", p.name, p.v)
		}
	}
	if im.Delay < 0 {
		return fmt.Errorf("wire: delay %v is negative", im.Delay)
	}
	return nil
}

// Config shapes a pair. Both ports get the same shape.
type Config struct {
	Names    [2]string // default "wire0", "wire1"
	Queues   int       // receive and transmit queues per port (default 1)
	RingSize int       // descriptors per lane, a power of two (default 1024)
	PoolSize int       // mbufs in each port's receive pool (default 8192 per queue)
	MTU      int       // largest IP packet (default 9000)
	ZeroCopy bool      // hand mbufs over instead of copying into the peer's pool
	RSSKey   []byte    // Toeplitz key (default engine.DefaultRSSKey)
	// Impair degrades frames sent from port 0 to port 1 and from 1 to 0.
	Impair [2]Impairment
}

// Defaults for Config's zero fields.
const (
	DefaultRingSize = 1024
	DefaultMTU      = 9000
	maxLinkHeader   = 14
)

// Pair is the two ports and the pools behind them.
type Pair struct {
	Ports  [2]*Port
	closed atomic.Int32
	mu     sync.Mutex
}

// Port is one end of a pair. It implements engine.Port.
type Port struct {
	pair *Pair
	peer *Port
	info engine.PortInfo
	pool *engine.Pool
	zc   bool
	rss  *engine.Toeplitz
	reta [128]uint16 // RSS redirection table: hash -> receive queue
	rxq  []*rxQueue
	txq  []*txQueue
	idx  int
}

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

// txQueue is a transmit queue. Its caches allocate in the peer's pool and free
// sent frames; its random source drives the impairment.
type txQueue struct {
	_       [64]byte
	caches  engine.Caches
	rng     *rand.Rand
	impair  Impairment
	held    engine.Mbuf   // a frame held back for reordering
	heldCp  bool          // held is already a copy in the peer's pool
	done    []engine.Mbuf // sent frames whose buffers are not yet reaped
	stage   [][engine.Burst]engine.Mbuf
	staged  []int
	packets counter
	bytes   counter
	drops   [engine.NumDropReasons]counter
	_       [64]byte
}

// NewPair creates two ports joined back to back.
func NewPair(cfg Config) (*Pair, error) {
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > 64 {
		return nil, fmt.Errorf("wire: %d queues out of range 1..64", cfg.Queues)
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.RingSize < 2 || cfg.RingSize > 1<<16 || cfg.RingSize&(cfg.RingSize-1) != 0 {
		return nil, fmt.Errorf("wire: ring size %d must be a power of two in 2..65536", cfg.RingSize)
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 8192 * cfg.Queues
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 68 || cfg.MTU+maxLinkHeader > engine.MaxPacket {
		return nil, fmt.Errorf("wire: MTU %d out of range 68..%d", cfg.MTU, engine.MaxPacket-maxLinkHeader)
	}
	for _, im := range cfg.Impair {
		if err := im.validate(); err != nil {
			return nil, err
		}
	}
	key := cfg.RSSKey
	if key == nil {
		key = engine.DefaultRSSKey[:]
	}
	rss, err := engine.NewToeplitz(key, 12)
	if err != nil {
		return nil, err
	}
	pr := &Pair{}
	for i := range pr.Ports {
		name := cfg.Names[i]
		if name == "" {
			name = fmt.Sprintf("wire%d", i)
		}
		pool, err := engine.NewPool(name+"-rx", cfg.PoolSize, 0)
		if err != nil {
			for _, p := range pr.Ports[:i] {
				p.pool.Close()
			}
			return nil, err
		}
		p := &Port{pair: pr, pool: pool, zc: cfg.ZeroCopy, rss: rss, idx: i}
		p.info = engine.PortInfo{
			Name:       name,
			Driver:     "wire",
			MAC:        [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, byte(i + 1)},
			MTU:        cfg.MTU,
			RxQueues:   cfg.Queues,
			TxQueues:   cfg.Queues,
			RxRingSize: cfg.RingSize,
			TxRingSize: cfg.RingSize,
			Features:   engine.Features{RSS: cfg.Queues > 1, Interrupts: true},
		}
		for j := range p.reta {
			p.reta[j] = uint16(j % cfg.Queues)
		}
		for q := 0; q < cfg.Queues; q++ {
			rq := &rxQueue{delayed: cfg.Impair[1-i].Delay > 0}
			rq.irq = engine.NewRxInterrupt(rq.waiting)
			if rq.delayed {
				rq.irq.SetDelayLine(rq.ready)
			}
			for l := 0; l < cfg.Queues; l++ {
				r, _ := ring.NewSPSC[engine.Mbuf](cfg.RingSize) // size checked above
				rq.lanes = append(rq.lanes, r)
			}
			p.rxq = append(p.rxq, rq)
			tq := &txQueue{
				impair: cfg.Impair[i],
				rng:    rand.New(rand.NewPCG(cfg.Impair[i].Seed, uint64(i)<<32|uint64(q))),
				held:   engine.NoMbuf,
				done:   make([]engine.Mbuf, 0, cfg.RingSize),
				stage:  make([][engine.Burst]engine.Mbuf, cfg.Queues),
				staged: make([]int, cfg.Queues),
			}
			p.txq = append(p.txq, tq)
		}
		pr.Ports[i] = p
	}
	pr.Ports[0].peer, pr.Ports[1].peer = pr.Ports[1], pr.Ports[0]
	return pr, nil
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

// dequeueDelayed takes, from every lane, the frames whose delivery time has
// come.
func (rq *rxQueue) dequeueDelayed(pkts []engine.Mbuf) int {
	now := engine.Nanotime()
	n := 0
	for _, l := range rq.lanes {
		n += dequeueDue(l, pkts[n:], now)
	}
	return n
}

// dequeueDue takes frames whose delivery time has come, in order. The
// receiver alone may peek: a frame it has not taken is its to look at.
func dequeueDue(l *ring.SPSC[engine.Mbuf], out []engine.Mbuf, now int64) int {
	n := 0
	for n < len(out) {
		m, ok := l.Peek()
		if !ok || m.Stamp() > now {
			break
		}
		out[n], _ = l.Dequeue()
		n++
	}
	return n
}

// TxBurst sends frames to the peer. The wire takes every frame: one the peer
// cannot receive (full ring, empty pool) is dropped and counted at the peer,
// as on a real link.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("wire %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	tq := p.txq[q]
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
			tq.caches.Free(m)
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

// txFreeThresh is how many completed frames a transmit queue lets pile up
// before TxBurst frees them itself, as DPDK drivers' tx_free_thresh; a NAPI
// poll reaps them sooner through ReapTx.
const txFreeThresh = 64

// complete records sent frames as done: their buffers are free to reuse once
// reaped, like descriptors a NIC has written back.
func (tq *txQueue) complete(sent []engine.Mbuf) {
	if len(tq.done)+len(sent) > cap(tq.done) {
		tq.reap()
	}
	tq.done = append(tq.done, sent...)
	if len(tq.done) >= txFreeThresh {
		tq.reap()
	}
}

func (tq *txQueue) reap() int {
	n := len(tq.done)
	tq.caches.FreeBulk(tq.done)
	tq.done = tq.done[:0]
	return n
}

// ReapTx frees the buffers of frames the queue has sent (igb_clean_tx_irq).
// Call it from the goroutine that transmits on the queue.
func (p *Port) ReapTx(q int) int { return p.txq[q].reap() }

// queueFor picks the peer's receive queue for a frame by its RSS hash,
// recording the hash on the frame.
func (p *Port) queueFor(m engine.Mbuf) int {
	if len(p.peer.rxq) == 1 {
		return 0
	}
	h := p.hash(m)
	m.SetHash(h)
	return int(p.peer.reta[h&127])
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
		tq.caches.Free(m) // transmit completion: the frame has left
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
		tq.caches.FreeBulk(stage[n:])
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

// ready counts the lanes of a delay line whose oldest frame is due at now
// (the poll takes the rest) and says when the earliest of the others is due
// (0 if none). The interrupt line calls it from ArmRx, on the receiving
// goroutine, the one that may peek.
func (rq *rxQueue) ready(now int64) (n int, next int64) {
	for _, l := range rq.lanes {
		m, ok := l.Peek()
		if !ok {
			continue
		}
		if d := m.Stamp(); d <= now {
			n++
		} else if next == 0 || d < next {
			next = d
		}
	}
	return n, next
}

// dropNoMbuf counts a frame the peer had no buffer for, on the queue it was
// bound for.
func (p *Port) dropNoMbuf(m engine.Mbuf) {
	p.peer.rxq[p.queueFor(m)].drops[engine.DropNoMbuf].Add(1)
}

// impairedSend applies the loss model to one frame before delivering it. A
// frame copied on the way (to corrupt it, or a duplicate) is already in the
// peer's pool and is not copied again.
func (p *Port) impairedSend(tq *txQueue, lane int, m engine.Mbuf) {
	im := &tq.impair
	r := tq.rng
	if im.Loss > 0 && r.Float64() < im.Loss {
		tq.drops[engine.DropImpairment].Add(1)
		tq.caches.Free(m)
		return
	}
	copied := false
	if im.Corrupt > 0 && r.Float64() < im.Corrupt {
		if m, copied = p.corrupt(tq, m); m == engine.NoMbuf {
			return
		}
	}
	if im.Reorder > 0 && tq.held == engine.NoMbuf && r.Float64() < im.Reorder {
		tq.held, tq.heldCp = m, copied
		return
	}
	dup := engine.NoMbuf
	if im.Duplicate > 0 && r.Float64() < im.Duplicate {
		if c, ok := p.copyFrame(tq, m); ok {
			dup = c
		} else {
			p.dropNoMbuf(m)
		}
	}
	p.stampAndDeliver(tq, lane, m, copied)
	if dup != engine.NoMbuf {
		p.stampAndDeliver(tq, lane, dup, true)
	}
	if h := tq.held; h != engine.NoMbuf {
		tq.held = engine.NoMbuf
		p.stampAndDeliver(tq, lane, h, tq.heldCp)
	}
}

// corrupt flips one random bit of the frame, copying it into the peer's pool
// first if others share its bytes or it is chained; copied says it did.
func (p *Port) corrupt(tq *txQueue, m engine.Mbuf) (_ engine.Mbuf, copied bool) {
	if !m.Writable() || m.Next() != engine.NoMbuf {
		c, ok := p.copyFrame(tq, m)
		if !ok {
			p.dropNoMbuf(m)
		}
		tq.caches.Free(m)
		if !ok {
			return engine.NoMbuf, false
		}
		m, copied = c, true
	}
	d := m.Data()
	bit := tq.rng.IntN(len(d) * 8)
	d[bit/8] ^= 1 << (bit % 8)
	return m, copied
}

func (p *Port) stampAndDeliver(tq *txQueue, lane int, m engine.Mbuf, copied bool) {
	var due int64
	if tq.impair.Delay > 0 {
		due = engine.Nanotime() + int64(tq.impair.Delay)
	}
	p.deliver(tq, lane, m, due, copied)
}

// hash is the Toeplitz hash over the IPv4 source and destination addresses
// and, for TCP and UDP datagrams that are not fragments, the ports; other
// frames hash to 0. A fragment, the first included (MF set), hashes on the
// addresses alone, as a NIC's RSS and Linux's flow dissector do, so that a
// datagram's fragments stay on one queue.
func (p *Port) hash(m engine.Mbuf) uint32 {
	d := m.Data()
	if len(d) < 34 || d[12] != 0x08 || d[13] != 0x00 || d[14]>>4 != 4 {
		return 0
	}
	ihl := int(d[14]&0x0f) * 4
	var in [12]byte
	copy(in[:8], d[26:34])
	proto := d[23]
	fragment := d[20]&0x3f != 0 || d[21] != 0 // MF, or a fragment offset
	if (proto == 6 || proto == 17) && !fragment && ihl >= 20 && len(d) >= 14+ihl+4 {
		copy(in[8:12], d[14+ihl:14+ihl+4])
		return p.rss.Hash(in[:12])
	}
	return p.rss.Hash(in[:8])
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
		tq.reap()
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

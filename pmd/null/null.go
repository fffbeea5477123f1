// Package null is a port like DPDK's net_null (drivers/net/null/rte_eth_null.c):
// a receive burst always finds a full burst of frames, and a transmit burst
// takes every frame and frees it. Nothing arrives from anywhere and nothing
// leaves, so a forwarder on a null port measures its own cost and nothing
// else: the benchmark DPDK's testpmd runs on net_null, and pollnet beside it.
//
// Frames are a template of a configured size: Ethernet from PeerMAC to the
// port's MAC, IPv4 and UDP inside (see Template). As net_null's copy devarg,
// Copy chooses what the port does with the bytes:
//   - Copy off (net_null copy=0): the port writes no byte. Every buffer of
//     its pool is filled with the template once, when the port is made; a
//     receive hands out an mbuf whose length says Size bytes, and they hold
//     whatever the buffer held last: the template, or what the previous
//     holder wrote into it (a forwarder's MAC swap). net_null's frames hold
//     whatever its buffers held too. (The debug build, pollnetdebug,
//     poisons every buffer it frees, the filled ones included: there the
//     frames hold the poison.)
//   - Copy on (copy=1): each receive copies the template into the mbuf, and
//     each transmit copies the frame out into a scratch buffer before it
//     frees it, the cost a NIC's DMA would put on memory in both directions.
//
// The burst functions for the chosen mode are picked once, when the port is
// made, not tested per burst or per packet (net_null sets rx_pkt_burst and
// tx_pkt_burst in eth_dev_null_create).
//
// Each receive queue allocates from the port's pool through a cache of its
// own; each transmit queue frees through its own caches, or through the
// caches of the goroutine that drives it (SetTxCaches). Neither locks
// anything: a queue is driven by one goroutine at a time (engine.Port).
// With Config.SharedCache, one goroutine drives both halves of a queue pair
// and they share one cache, as a DPDK lcore's mempool cache serves both.
//
// What is not there: interrupts (Features.Interrupts is false, so the NAPI
// mode refuses the port, as net_null offers no receive interrupts), RSS (every
// queue makes the same frame), offloads, link state, and net_null's no-rx
// devarg.
package null

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
)

// Limits and defaults of Config.
const (
	// MinSize is the shortest frame: Ethernet's minimum without FCS
	// (ETH_ZLEN), room for the template's headers.
	MinSize = 60
	// MaxSize is the longest frame: one mbuf's data room, so every frame
	// is one segment.
	MaxSize = engine.DataRoom
	// DefaultSize is net_null's default packet size.
	DefaultSize = 64
	// DefaultPoolPerQueue is the pool's size per queue when Config leaves
	// it 0: room for every queue's receive and transmit caches with the
	// same again in flight.
	DefaultPoolPerQueue = 4096
	// MaxQueues bounds Config.Queues.
	MaxQueues = 16
)

// DefaultMAC is the port's MAC when Config leaves it zero: locally
// administered, as net_null's is (its own is random).
var DefaultMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x4e, 0x00}

// Config shapes a null port.
type Config struct {
	Name     string  // default "null0"
	Size     int     // frame bytes without FCS, MinSize..MaxSize (default 64), as net_null's size devarg
	Copy     bool    // copy frames in on receive and out on transmit, as net_null's copy=1
	Queues   int     // receive and transmit queues, 1..MaxQueues (default 1)
	PoolSize int     // mbufs in the port's pool (default DefaultPoolPerQueue per queue)
	MAC      [6]byte // the port's address, the template's destination (default DefaultMAC)
	// PortIndex is recorded on received mbufs as their port (default 0).
	PortIndex int
	// SharedCache promises that one goroutine drives both queue q's
	// receive and its transmit (run to completion, as a DPDK lcore owns
	// its queue pair), so that the two share one mbuf cache: a frame sent
	// is freed into the cache the next receive allocates from, and the
	// pool's shared ring is not touched in a steady state. net_null gets
	// this for nothing: it allocates and frees through the calling lcore's
	// mempool cache. Without the promise, each queue has a cache of its
	// own, and frames travel from the transmit cache to the receive cache
	// through the ring.
	SharedCache bool
}

func (cfg *Config) setDefaults() error {
	if cfg.Name == "" {
		cfg.Name = "null0"
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Size < MinSize || cfg.Size > MaxSize {
		return fmt.Errorf("null: frame size %d out of range %d..%d", cfg.Size, MinSize, MaxSize)
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return fmt.Errorf("null: %d queues out of range 1..%d", cfg.Queues, MaxQueues)
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolPerQueue * cfg.Queues
	}
	if cfg.PoolSize < 2*engine.Burst*cfg.Queues || cfg.PoolSize > engine.MaxPoolSize {
		return fmt.Errorf("null: pool size %d out of range %d..%d (two bursts per queue at least)",
			cfg.PoolSize, 2*engine.Burst*cfg.Queues, engine.MaxPoolSize)
	}
	if cfg.PortIndex < 0 || cfg.PortIndex > 0xffff {
		return fmt.Errorf("null: port index %d out of range 0..65535", cfg.PortIndex)
	}
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = DefaultMAC
	}
	return nil
}

var _ engine.Port = (*Port)(nil)

// Port is a null port. It implements engine.Port.
type Port struct {
	info engine.PortInfo
	pool *engine.Pool
	size int
	copy bool
	tmpl []byte

	// The burst functions, chosen by Copy when the port is made.
	rx func(rq *rxQueue, pkts []engine.Mbuf) int
	tx func(tq *txQueue, pkts []engine.Mbuf) int

	rxq []*rxQueue
	txq []*txQueue

	mu     sync.Mutex
	closed bool // guarded by mu
}

// counter is a queue counter. Only the goroutine that drives the queue
// writes it, with a plain load and store (no read-modify-write is needed
// with one writer, and none costs a locked instruction per burst); any
// goroutine may read it.
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64)   { c.v.Store(c.v.Load() + n) }
func (c *counter) load() uint64   { return c.v.Load() }
func (c *counter) store(n uint64) { c.v.Store(n) }

// rxQueue is one receive queue. Padding keeps it off the lines of other
// queues, which other cores drive.
type rxQueue struct {
	_      [64]byte
	cache  *engine.Cache // the queue's cache of the port's pool (its transmit queue's, with SharedCache)
	tmpl   []byte        // the template, copied in on receive (Copy)
	size   int
	port   int
	queue  int
	pkts   counter // the number of frames received (ipackets)
	bytes  counter // the number of bytes received (ibytes)
	nombuf counter // the number of frames not received for want of an mbuf (rx_nombuf)
	_      [64]byte
}

// txQueue is one transmit queue.
type txQueue struct {
	_       [64]byte
	caches  engine.Caches  // frees sent frames to whichever pool they came from
	done    *engine.Caches // where sent frames go: &caches, or the caller's (SetTxCaches)
	scratch []byte         // where Copy copies sent frames (net_null's dummy_packet)
	pkts    counter        // the number of frames sent (opackets)
	bytes   counter        // the number of bytes sent (obytes)
	_       [64]byte
}

// New makes a null port: its pool, filled with the template, and its queues.
func New(cfg Config) (*Port, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tmpl, err := Template(cfg.Size, cfg.MAC)
	if err != nil {
		return nil, err
	}
	pool, err := engine.NewPool(cfg.Name+"-rx", cfg.PoolSize, 0)
	if err != nil {
		return nil, fmt.Errorf("null: %w", err)
	}
	p := &Port{
		info: engine.PortInfo{
			Name:       cfg.Name,
			Driver:     "null",
			MAC:        cfg.MAC,
			MTU:        cfg.Size - ethLen,
			RxQueues:   cfg.Queues,
			TxQueues:   cfg.Queues,
			RxRingSize: engine.Burst,
			TxRingSize: engine.Burst,
		},
		pool: pool,
		size: cfg.Size,
		copy: cfg.Copy,
		tmpl: tmpl,
	}
	if cfg.Copy {
		p.rx, p.tx = rxCopy, txCopy
	} else {
		p.rx, p.tx = rxNoCopy, txNoCopy
	}
	if err := p.fill(); err != nil {
		pool.Close()
		return nil, err
	}
	for q := 0; q < cfg.Queues; q++ {
		tq := &txQueue{scratch: make([]byte, cfg.Size)}
		tq.done = &tq.caches
		rq := &rxQueue{tmpl: tmpl, size: cfg.Size, port: cfg.PortIndex, queue: q}
		if cfg.SharedCache {
			rq.cache = tq.caches.For(pool)
		} else {
			rq.cache = pool.NewCache()
		}
		p.rxq = append(p.rxq, rq)
		p.txq = append(p.txq, tq)
	}
	return p, nil
}

// fill writes the template into every buffer of the pool, where a fresh
// mbuf's data begins, so that without Copy a frame still holds the
// template until someone writes into it.
func (p *Port) fill() error {
	all := make([]engine.Mbuf, p.pool.Size())
	c := p.pool.NewCache()
	defer c.Close()
	if err := c.GetBulk(all); err != nil {
		return fmt.Errorf("null: fill the pool: %w", err)
	}
	var free engine.Caches
	defer free.Close()
	defer free.FreeBulk(all)
	for _, m := range all {
		b, err := m.Append(p.size)
		if err != nil {
			return fmt.Errorf("null: fill the pool: %w", err)
		}
		copy(b, p.tmpl)
	}
	return nil
}

// Info describes the port.
func (p *Port) Info() engine.PortInfo { return p.info }

// Pool is the pool the port receives into.
func (p *Port) Pool() *engine.Pool { return p.pool }

// Copy reports whether the port copies frames (net_null's copy=1).
func (p *Port) Copy() bool { return p.copy }

// Size is the length of the frames the port makes.
func (p *Port) Size() int { return p.size }

// Template returns a copy of the frame the port makes.
func (p *Port) Template() []byte { return append([]byte(nil), p.tmpl...) }

// RxBurst fills pkts with frames: all of them, or none when the pool cannot
// give that many (rte_pktmbuf_alloc_bulk's all-or-nothing, which net_null
// uses), counted as rx_nombuf.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int { return p.rx(p.rxq[q], pkts) }

// TxBurst takes every frame, copies it out if Copy is on, and frees it.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int { return p.tx(p.txq[q], pkts) }

// SetTxCaches makes the queue free the frames it sends into cs, the caches
// of the goroutine that drives it; nil restores the queue's own. With
// SharedCache the receive queue still allocates from the queue's own cache.
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
	s := engine.QueueStats{Packets: rq.pkts.load(), Bytes: rq.bytes.load()}
	s.Drops[engine.DropNoMbuf] = rq.nombuf.load()
	return s
}

// TxStats returns a transmit queue's counters.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.checkTx(q)
	return engine.QueueStats{Packets: tq.pkts.load(), Bytes: tq.bytes.load()}
}

func (p *Port) checkTx(q int) *txQueue {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("null %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	return p.txq[q]
}

func (p *Port) checkRx(q int) *rxQueue {
	if q < 0 || q >= len(p.rxq) {
		panic(fmt.Sprintf("null %s: receive queue %d out of range 0..%d", p.info.Name, q, len(p.rxq)-1))
	}
	return p.rxq[q]
}

// SetRxInterrupt does nothing: the port raises no interrupts
// (Features.Interrupts is false, and the NAPI mode refuses it).
func (p *Port) SetRxInterrupt(q int, handler func()) { p.checkRx(q) }

// ArmRx does nothing: the port raises no interrupts.
func (p *Port) ArmRx(q int) { p.checkRx(q) }

// DisarmRx does nothing: the port raises no interrupts.
func (p *Port) DisarmRx(q int) { p.checkRx(q) }

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("null: port already closed")

// Close returns the queues' cached mbufs and closes the pool, which fails,
// naming how many, if mbufs of the port are still held elsewhere (a leak).
// No queue may be used during or after it.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	for _, rq := range p.rxq {
		rq.cache.Close()
	}
	for _, tq := range p.txq {
		tq.caches.Close()
	}
	if err := p.pool.Close(); err != nil {
		return fmt.Errorf("null %s: %w", p.info.Name, err)
	}
	return nil
}

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
// crosses, unless checksum offload is on.
//
// Checksum offload (Config.ChecksumOffload) is veth's: both ports advertise
// Features.TxChecksum and RxChecksum, and a frame sent with
// engine.FlagTxL4Csum (its checksum field holding the pseudo-header sum,
// engine.Mbuf.SetHeaderLens giving where the headers are) crosses as it is,
// no checksum computed: the receiver gets it with FlagRxL4CsumGood, and still
// FlagTxL4Csum with its header lengths, the checksum left to finish should
// it be forwarded (Linux keeps CHECKSUM_PARTIAL across a veth the same way).
// FlagTxIPCsum likewise arrives as FlagRxIPCsumGood, the header checksum as
// the sender left it. A frame sent without those flags is not marked: the
// receiver verifies it, as veth leaves a CHECKSUM_NONE packet. On a lane
// whose impairment corrupts (Corrupt > 0) the bytes on the wire must be
// real, so there the wire finishes every offloaded checksum in software, on
// a copy in the peer's pool, before impairing, and marks nothing good: a
// corrupted segment is caught by the receiver's own verification. Loss,
// duplication, reordering and delay need no real checksum and keep the
// fast path.
//
// RSS hashes TCP and UDP over addresses and ports, and every other frame,
// IPv4 fragments included, over addresses only, so that all the fragments of
// a datagram land on one queue.
package wire

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// Config shapes a pair. Both ports get the same shape.
type Config struct {
	Names    [2]string // default "wire0", "wire1"
	Queues   int       // receive and transmit queues per port (default 1)
	RingSize int       // descriptors per lane, a power of two (default 1024)
	PoolSize int       // mbufs in each port's receive pool (default 8192 per queue)
	MTU      int       // largest IP packet (default 9000)
	ZeroCopy bool      // hand mbufs over instead of copying into the peer's pool
	// ChecksumOffload makes both ports take TCP/UDP checksums off the
	// sender, as veth does (see the package comment).
	ChecksumOffload bool
	RSSKey          []byte // Toeplitz key (default engine.DefaultRSSKey)
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
		p := &Port{pair: pr, pool: pool, zc: cfg.ZeroCopy, rss: rss, idx: i, offload: cfg.ChecksumOffload}
		p.info = engine.PortInfo{
			Name:       name,
			Driver:     "wire",
			MAC:        [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, byte(i + 1)},
			MTU:        cfg.MTU,
			RxQueues:   cfg.Queues,
			TxQueues:   cfg.Queues,
			RxRingSize: cfg.RingSize,
			TxRingSize: cfg.RingSize,
			Features: engine.Features{RSS: cfg.Queues > 1, Interrupts: true,
				TxChecksum: cfg.ChecksumOffload, RxChecksum: cfg.ChecksumOffload},
		}
		if cfg.Queues > 1 {
			p.info.RSSKey = append([]byte(nil), key...)
			p.info.RETA = make([]uint16, retaSize)
			for j := range p.info.RETA {
				p.info.RETA[j] = uint16(j % cfg.Queues)
			}
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
				finish: cfg.ChecksumOffload && cfg.Impair[i].Corrupt > 0,
				rng:    rand.New(rand.NewPCG(cfg.Impair[i].Seed, uint64(i)<<32|uint64(q))),
				held:   engine.NoMbuf,
				sent:   make([]engine.Mbuf, 0, cfg.RingSize),
				stage:  make([][engine.Burst]engine.Mbuf, cfg.Queues),
				staged: make([]int, cfg.Queues),
			}
			tq.done = &tq.caches
			p.txq = append(p.txq, tq)
		}
		pr.Ports[i] = p
	}
	pr.Ports[0].peer, pr.Ports[1].peer = pr.Ports[1], pr.Ports[0]
	return pr, nil
}

package link

import (
	"fmt"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// Backlog is a port with one queue whose transmit feeds its receive through
// a bounded ring that any number of goroutines may send into at once: the
// queue through which one shard hands another the frames of a flow the other
// owns, as Linux's enqueue_to_backlog hands a packet to the CPU that RPS
// chose. Frames pass unchanged: their checksum flags and receive metadata
// stay as the port that received them set them. Its interrupt lets a
// sleeping softirq know that frames wait.
type Backlog struct {
	ring    *ring.MPMC[engine.Mbuf]
	limit   int
	irq     *engine.RxInterrupt
	name    string
	rxPkts  atomic.Uint64
	txPkts  atomic.Uint64
	dropped atomic.Uint64
	txFree  *engine.Caches // where refused frames go (SetTxCaches); nil: their pools
}

// NewBacklog returns a backlog of n frames (0 means DefaultBacklog).
func NewBacklog(name string, n int) (*Backlog, error) {
	if n == 0 {
		n = DefaultBacklog
	}
	if n < 1 || n > 1<<20 {
		return nil, fmt.Errorf("backlog %s: length %d out of range 1..%d", name, n, 1<<20)
	}
	size := 2
	for size < n {
		size <<= 1
	}
	r, err := ring.NewMPMC[engine.Mbuf](size)
	if err != nil {
		return nil, err
	}
	b := &Backlog{ring: r, limit: n, name: name}
	b.irq = engine.NewRxInterrupt(r.Len)
	return b, nil
}

// Info describes the backlog as a port.
func (b *Backlog) Info() engine.PortInfo {
	return engine.PortInfo{Name: b.name, Driver: "backlog", MTU: engine.MaxPacket, RxQueues: 1, TxQueues: 1,
		RxRingSize: b.limit, TxRingSize: b.limit, Features: engine.Features{Interrupts: true}}
}

// RxBurst takes frames off the backlog.
func (b *Backlog) RxBurst(_ int, pkts []engine.Mbuf) int {
	n := b.ring.DequeueBurst(pkts)
	if n > 0 { // an empty poll, the common case, writes no shared line
		b.rxPkts.Add(uint64(n))
	}
	return n
}

// TxBurst queues frames; every frame is taken, those past the limit are
// freed and counted, as a full backlog drops.
func (b *Backlog) TxBurst(_ int, pkts []engine.Mbuf) int {
	room := max(0, b.limit-b.ring.Len())
	n := b.ring.EnqueueBurst(pkts[:min(room, len(pkts))])
	if n < len(pkts) {
		b.dropped.Add(uint64(len(pkts) - n))
		b.txFree.FreeBulk(pkts[n:])
	}
	b.txPkts.Add(uint64(len(pkts)))
	if n > 0 {
		b.irq.Landed()
	}
	return len(pkts)
}

// SetTxCaches makes TxBurst free the frames the backlog refuses into cs, the
// caches of the one goroutine that sends on it; nil (the default) frees them
// to their pools, for a backlog several goroutines send on.
func (b *Backlog) SetTxCaches(_ int, cs *engine.Caches) { b.txFree = cs }

// Len is the number of frames waiting.
func (b *Backlog) Len() int { return b.ring.Len() }

// Backlog is Len, for engine.Backlog.
func (b *Backlog) Backlog() int { return b.ring.Len() }

var _ engine.Port = (*Backlog)(nil)

// RxStats counts what the backlog delivered and what a full ring dropped.
func (b *Backlog) RxStats(int) engine.QueueStats {
	s := engine.QueueStats{Packets: b.rxPkts.Load(), Interrupts: b.irq.Raised()}
	s.Drops[engine.DropRingFull] = b.dropped.Load()
	return s
}

// TxStats counts what was queued.
func (b *Backlog) TxStats(int) engine.QueueStats {
	return engine.QueueStats{Packets: b.txPkts.Load()}
}

// SetRxInterrupt installs the softirq's handler.
func (b *Backlog) SetRxInterrupt(_ int, h func()) { b.irq.SetHandler(h) }

// ArmRx unmasks the interrupt, raising it at once if frames wait.
func (b *Backlog) ArmRx(int) { b.irq.Arm() }

// DisarmRx masks the interrupt.
func (b *Backlog) DisarmRx(int) { b.irq.Disarm() }

// Close frees what is still queued.
func (b *Backlog) Close() error {
	b.irq.Stop()
	var burst [engine.Burst]engine.Mbuf
	for n := b.ring.DequeueBurst(burst[:]); n > 0; n = b.ring.DequeueBurst(burst[:]) {
		for _, m := range burst[:n] {
			engine.Free(m)
		}
	}
	return nil
}

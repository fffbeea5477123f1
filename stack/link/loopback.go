// Package netdev holds the stack's own devices. Loopback is a port whose
// transmit feeds its receive through a bounded backlog, the way Linux's
// loopback_xmit hands packets to netif_rx and process_backlog drains them.
package link

import (
	"fmt"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// DefaultBacklog is the backlog length, as net.core.netdev_max_backlog.
const DefaultBacklog = 1000

// Loopback is the loopback device: frames sent on it are received on it. Its
// one queue is a backlog of bounded length (input_pkt_queue); a full backlog
// drops the frame and counts it, as softnet_stat's dropped column does.
type Loopback struct {
	backlog *ring.MPMC[engine.Mbuf]
	limit   int
	irq     *engine.RxInterrupt
	rxPkts  atomic.Uint64
	rxBytes atomic.Uint64
	txPkts  atomic.Uint64
	txBytes atomic.Uint64
	dropped atomic.Uint64
	mtu     int
	txFree  *engine.Caches // where dropped frames go (SetTxCaches); nil: the pools' rings
}

// NewLoopback returns a loopback device with a backlog of n frames (0 means
// DefaultBacklog) and the given MTU (0 means 65536, as Linux's lo).
func NewLoopback(n, mtu int) (*Loopback, error) {
	if n == 0 {
		n = DefaultBacklog
	}
	if mtu == 0 {
		mtu = engine.MaxPacket
	}
	if n < 1 || n > 1<<20 {
		return nil, fmt.Errorf("loopback: backlog %d out of range 1..%d", n, 1<<20)
	}
	size := 2
	for size < n {
		size <<= 1
	}
	r, err := ring.NewMPMC[engine.Mbuf](size)
	if err != nil {
		return nil, err
	}
	l := &Loopback{backlog: r, limit: n, mtu: mtu}
	l.irq = engine.NewRxInterrupt(r.Len)
	return l, nil
}

// Info describes the device.
func (l *Loopback) Info() engine.PortInfo {
	return engine.PortInfo{Name: "lo", Driver: "loopback", MTU: l.mtu, RxQueues: 1, TxQueues: 1,
		RxRingSize: l.limit, TxRingSize: l.limit,
		Features: engine.Features{Interrupts: true, RxChecksum: true, TxChecksum: true}}
}

// RxBurst drains the backlog (process_backlog).
func (l *Loopback) RxBurst(q int, pkts []engine.Mbuf) int {
	n := l.backlog.DequeueBurst(pkts)
	if n > 0 {
		var bytes uint64
		for _, m := range pkts[:n] {
			m.SetRxInfo(0, 0)
			m.SetFlags(m.Flags() | engine.FlagRxIPCsumGood | engine.FlagRxL4CsumGood)
			bytes += uint64(m.PktLen())
		}
		l.rxPkts.Add(uint64(n))
		l.rxBytes.Add(bytes)
	}
	return n
}

// TxBurst queues frames on the backlog. Every frame is taken: those that do
// not fit under the backlog limit are dropped and counted.
func (l *Loopback) TxBurst(q int, pkts []engine.Mbuf) int {
	var bytes uint64
	for _, m := range pkts {
		bytes += uint64(m.PktLen())
	}
	room := max(0, l.limit-l.backlog.Len())
	n := l.backlog.EnqueueBurst(pkts[:min(room, len(pkts))])
	if n < len(pkts) {
		l.dropped.Add(uint64(len(pkts) - n))
		l.txFree.FreeBulk(pkts[n:])
	}
	l.txPkts.Add(uint64(len(pkts)))
	l.txBytes.Add(bytes)
	if n > 0 {
		l.irq.Landed()
	}
	return len(pkts)
}

// SetTxCaches makes TxBurst free the frames the backlog refuses into cs, the
// caches of the one goroutine that sends on the device; nil (the default)
// frees them to their pools' shared rings, for a device several goroutines
// send on.
func (l *Loopback) SetTxCaches(q int, cs *engine.Caches) { l.txFree = cs }

// RxStats counts what the backlog delivered and dropped.
func (l *Loopback) RxStats(int) engine.QueueStats {
	s := engine.QueueStats{Packets: l.rxPkts.Load(), Bytes: l.rxBytes.Load(), Interrupts: l.irq.Raised()}
	s.Drops[engine.DropRingFull] = l.dropped.Load()
	return s
}

// TxStats counts what was sent.
func (l *Loopback) TxStats(int) engine.QueueStats {
	return engine.QueueStats{Packets: l.txPkts.Load(), Bytes: l.txBytes.Load()}
}

// Dropped counts frames dropped for a full backlog.
func (l *Loopback) Dropped() uint64 { return l.dropped.Load() }

// Backlog is the number of frames waiting.
func (l *Loopback) Backlog() int { return l.backlog.Len() }

func (l *Loopback) SetRxInterrupt(q int, h func()) { l.irq.SetHandler(h) }
func (l *Loopback) ArmRx(int)                      { l.irq.Arm() }
func (l *Loopback) DisarmRx(int)                   { l.irq.Disarm() }

// Close frees every frame still on the backlog.
func (l *Loopback) Close() error {
	l.irq.Stop()
	var pkts [engine.Burst]engine.Mbuf
	for n := l.backlog.DequeueBurst(pkts[:]); n > 0; n = l.backlog.DequeueBurst(pkts[:]) {
		for _, m := range pkts[:n] {
			engine.Free(m)
		}
	}
	return nil
}

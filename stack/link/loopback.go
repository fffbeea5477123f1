// Package link holds the stack's devices: the Device type that pairs a port
// with its addresses, the loopback device, and the backlogs through which
// shards pass each other frames.
package link

import (
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
)

// DefaultBacklog is the backlog length, as net.core.netdev_max_backlog.
const DefaultBacklog = 1000

// Loopback is the loopback device: frames sent on it are received on it,
// through a backlog of bounded length (input_pkt_queue), the way Linux's
// loopback_xmit hands packets to netif_rx and process_backlog drains them.
// A full backlog drops the frame and counts it, as softnet_stat's dropped
// column does. Every goroutine may send on it at once.
type Loopback struct {
	q       *Backlog
	rxBytes atomic.Uint64
	txBytes atomic.Uint64
	mtu     int
}

// NewLoopback returns a loopback device with a backlog of n frames (0 means
// DefaultBacklog) and the given MTU (0 means 65536, as Linux's lo).
func NewLoopback(n, mtu int) (*Loopback, error) {
	if mtu == 0 {
		mtu = engine.MaxPacket
	}
	b, err := NewBacklog("lo", n)
	if err != nil {
		return nil, err
	}
	return &Loopback{q: b, mtu: mtu}, nil
}

// Info describes the device.
func (l *Loopback) Info() engine.PortInfo {
	return engine.PortInfo{Name: "lo", Driver: "loopback", MTU: l.mtu, RxQueues: 1, TxQueues: 1,
		RxRingSize: l.q.limit, TxRingSize: l.q.limit,
		Features: engine.Features{Interrupts: true, RxChecksum: true, TxChecksum: true}}
}

// RxBurst drains the backlog (process_backlog). Our own datagrams need no
// checksum verification: the flags say so, as CHECKSUM_UNNECESSARY does.
func (l *Loopback) RxBurst(q int, pkts []engine.Mbuf) int {
	n := l.q.RxBurst(q, pkts)
	if n == 0 {
		return 0
	}
	var bytes uint64
	for _, m := range pkts[:n] {
		m.SetRxInfo(0, 0)
		m.SetFlags(m.Flags() | engine.FlagRxIPCsumGood | engine.FlagRxL4CsumGood)
		bytes += uint64(m.PktLen())
	}
	l.rxBytes.Add(bytes)
	return n
}

// TxBurst queues frames on the backlog; every frame is taken.
func (l *Loopback) TxBurst(q int, pkts []engine.Mbuf) int {
	var bytes uint64
	for _, m := range pkts {
		bytes += uint64(m.PktLen())
	}
	l.txBytes.Add(bytes)
	return l.q.TxBurst(q, pkts)
}

// RxStats counts what the backlog delivered and dropped.
func (l *Loopback) RxStats(q int) engine.QueueStats {
	s := l.q.RxStats(q)
	s.Bytes = l.rxBytes.Load()
	return s
}

// TxStats counts what was sent.
func (l *Loopback) TxStats(q int) engine.QueueStats {
	s := l.q.TxStats(q)
	s.Bytes = l.txBytes.Load()
	return s
}

// Dropped counts frames dropped for a full backlog.
func (l *Loopback) Dropped() uint64 { return l.q.dropped.Load() }

// Backlog is the number of frames waiting (engine.Backlog).
func (l *Loopback) Backlog() int { return l.q.Len() }

// SetTxCaches sets where refused frames are freed (see Backlog.SetTxCaches).
func (l *Loopback) SetTxCaches(q int, cs *engine.Caches) { l.q.SetTxCaches(q, cs) }

// SetRxInterrupt, ArmRx and DisarmRx drive the backlog's interrupt.
func (l *Loopback) SetRxInterrupt(q int, h func()) { l.q.SetRxInterrupt(q, h) }
func (l *Loopback) ArmRx(q int)                    { l.q.ArmRx(q) }
func (l *Loopback) DisarmRx(q int)                 { l.q.DisarmRx(q) }

// Close frees every frame still on the backlog.
func (l *Loopback) Close() error { return l.q.Close() }

var _ engine.Port = (*Loopback)(nil)

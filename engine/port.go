package engine

import (
	"fmt"
	"sync/atomic"
)

// Features are what a port can do for the stack, like the capabilities that
// rte_eth_dev_info_get or `ethtool -k` report.
type Features struct {
	TSO        bool // segments large TCP packets itself (FlagTSO)
	RxChecksum bool // verifies IPv4/L4 checksums on receive
	TxChecksum bool // fills IPv4/L4 checksums on transmit
	RSS        bool // spreads flows over receive queues and reports the hash
	Interrupts bool // can raise receive interrupts (the NAPI mode needs it)
}

// PortInfo describes a port's shape.
type PortInfo struct {
	Name       string
	Driver     string
	MAC        [6]byte
	MTU        int
	RxQueues   int
	TxQueues   int
	RxRingSize int
	TxRingSize int
	Features   Features
	// RSSKey is the Toeplitz key the port hashes received flows with
	// (rte_eth_dev_rss_hash_conf_get), and RETA its redirection table
	// (rte_eth_dev_rss_reta_query): a frame whose hash is h lands on
	// receive queue RETA[h mod len(RETA)], which QueueOf looks up. With
	// Toeplitz.HashIPv4Ports and HashIPv4 over a key's tables, a stack
	// predicts the queue of a flow's replies. Both are nil when the port
	// has no RSS, or spreads flows in a way this cannot predict (a TAP's
	// queues, chosen by the kernel): a stack then re-steers in software.
	// They are the port's own: read them, never write them.
	RSSKey []byte
	RETA   []uint16
}

// QueueOf is the receive queue a frame whose RSS hash is hash lands on: its
// entry in the redirection table, or queue 0 when the port has no RSS.
func (i PortInfo) QueueOf(hash uint32) int {
	n := uint32(len(i.RETA))
	switch {
	case n == 0:
		return 0
	case n&(n-1) == 0: // the usual size, a power of two: the hash's low bits
		return int(i.RETA[hash&(n-1)])
	}
	return int(i.RETA[hash%n])
}

// DropReason says why a port dropped a frame.
type DropReason int

// Drop reasons, each a counter per queue.
const (
	DropRingFull   DropReason = iota // receive ring full: rx_missed, the RingBuffer overflow
	DropNoMbuf                       // no buffer to receive into: rx_nombuf
	DropImpairment                   // dropped on purpose by a loss model
	DropTooLong                      // larger than the port's MTU or buffers
	DropTxFull                       // transmit ring full, the caller gave up
	DropError                        // any other driver error
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"rx_missed", "rx_nombuf", "impaired", "too_long", "tx_full", "error"}

func (r DropReason) String() string {
	if r < 0 || r >= NumDropReasons {
		return fmt.Sprintf("drop(%d)", int(r))
	}
	return dropNames[r]
}

// QueueStats are one queue's counters. Drops are indexed by DropReason.
type QueueStats struct {
	Packets    uint64
	Bytes      uint64
	Drops      [NumDropReasons]uint64
	Interrupts uint64 // receive interrupts raised
}

// Dropped is the sum of all drop reasons.
func (s QueueStats) Dropped() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

// Add accumulates o into s.
func (s *QueueStats) Add(o QueueStats) {
	s.Packets += o.Packets
	s.Bytes += o.Bytes
	s.Interrupts += o.Interrupts
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
}

// Port is what every driver implements: queues of descriptors that move mbufs
// in bursts (rte_eth_rx_burst and rte_eth_tx_burst), counters, and receive
// interrupt control for the NAPI mode.
//
// A queue is driven by one goroutine at a time, as in DPDK: RxBurst(q) from
// one, TxBurst(q) from one (maybe another). Counters, SetRxInterrupt and
// DisarmRx may be used from any goroutine; ArmRx is called by the goroutine
// that receives from the queue, as a driver re-enables its interrupt at the
// end of its poll, so a port may look into its ring then.
type Port interface {
	Info() PortInfo

	// RxBurst moves up to len(pkts) received packets into pkts and returns
	// how many. The caller owns them and must free them.
	RxBurst(queue int, pkts []Mbuf) int

	// TxBurst hands pkts to the port and returns how many it took; the
	// port frees those once sent. The caller still owns pkts[n:].
	TxBurst(queue int, pkts []Mbuf) int

	// SetTxCaches makes the port free the frames it took on a transmit
	// queue (dropped at TxBurst, done at completion, reaped by ReapTx) into
	// cs instead of caches of its own, so that the goroutine driving the
	// queue gets its mbufs back in its own cache without a trip through
	// the pool's shared ring. Only the goroutine that drives the queue
	// uses cs. nil restores the port's own caches. Call it before the
	// queue is driven or from the goroutine that drives it; Close frees
	// what the port still holds into its own caches, never into cs.
	SetTxCaches(queue int, cs *Caches)

	RxStats(queue int) QueueStats
	TxStats(queue int) QueueStats

	// SetRxInterrupt installs the handler a queue calls when a frame lands
	// while its interrupt is armed. The port disarms the queue before
	// calling it, so it runs once per arming; it must be short and must not
	// block (it is the hard interrupt handler).
	SetRxInterrupt(queue int, handler func())
	// ArmRx unmasks the queue's interrupt. A port must raise the interrupt
	// at once if frames are already waiting, so none is stranded. Only the
	// queue's receiving goroutine calls it.
	ArmRx(queue int)
	// DisarmRx masks the queue's interrupt.
	DisarmRx(queue int)

	// Close stops the port and frees every packet it still holds.
	Close() error
}

// PortStats sums a port's counters over its queues.
func PortStats(p Port) (rx, tx QueueStats) {
	info := p.Info()
	for q := 0; q < info.RxQueues; q++ {
		rx.Add(p.RxStats(q))
	}
	for q := 0; q < info.TxQueues; q++ {
		tx.Add(p.TxStats(q))
	}
	return rx, tx
}

// QueueCounters are a queue's counters as a driver keeps them: atomics that
// the goroutine driving the queue adds to and any goroutine may read.
type QueueCounters struct {
	Packets, Bytes atomic.Uint64
	Drops          [NumDropReasons]atomic.Uint64
}

// Count adds a burst: packets and bytes that went through, and drops by
// reason, skipping the reasons that did not happen.
func (c *QueueCounters) Count(packets, bytes uint64, drops *[NumDropReasons]uint64) {
	if packets > 0 {
		c.Packets.Add(packets)
		c.Bytes.Add(bytes)
	}
	if drops != nil {
		for i, d := range drops {
			if d > 0 {
				c.Drops[i].Add(d)
			}
		}
	}
}

// CountTx adds a transmit burst: packets and bytes sent, and frames dropped
// as longer than the MTU (DropTooLong) or in error (DropError).
func (c *QueueCounters) CountTx(packets, bytes, long, errs uint64) {
	if packets > 0 {
		c.Packets.Add(packets)
		c.Bytes.Add(bytes)
	}
	if long > 0 {
		c.Drops[DropTooLong].Add(long)
	}
	if errs > 0 {
		c.Drops[DropError].Add(errs)
	}
}

// Stats reads the counters (Interrupts is left to the caller).
func (c *QueueCounters) Stats() QueueStats {
	s := QueueStats{Packets: c.Packets.Load(), Bytes: c.Bytes.Load()}
	for i := range s.Drops {
		s.Drops[i] = c.Drops[i].Load()
	}
	return s
}

// Package afpacket is a port on a Linux network interface through AF_PACKET
// sockets with memory-mapped rings (Documentation/networking/packet_mmap.rst),
// the way DPDK's net_af_packet driver works: the kernel's driver still runs,
// but frames cross into the process without a system call per frame.
//
// Each queue is one socket bound to the interface, holding two rings mapped
// into the process:
//
//   - a TPACKET_V3 receive ring, in blocks: the kernel packs frames of any
//     size into the block it owns and hands the block over (retires it)
//     when it is full or when Config.RetireTimeout passes with frames in it.
//     RxBurst copies each frame once into the port's own mbufs (the ring is
//     the kernel's memory, not our arena) and gives each emptied block back.
//   - a TPACKET_V3 transmit ring of fixed-size frames: TxBurst copies each
//     frame into a free slot, marks it for sending and kicks the kernel with
//     one sendto(2) per burst. Transmit uses V3 as well as receive because
//     the version belongs to the socket: V2 for transmit would take a second
//     socket per queue; the kernel (4.11 on) treats V3 transmit frames as
//     fixed slots, as V2's, so nothing is lost by it. PACKET_QDISC_BYPASS
//     sends straight to the driver, as a NIC's ring does, without the qdisc.
//
// Several queues are several sockets in one PACKET_FANOUT group of type hash:
// the kernel spreads flows over them by the packet's flow hash, a software
// RSS whose key the port cannot report, so the stack re-steers in software.
//
// The status words the kernel and the port both write (a block's status on
// receive, a slot's on transmit) are read and written only with atomic loads
// and stores: the kernel writes them concurrently, and the atomic store is
// what orders the port's copy of a frame before the kernel may see the slot
// (or the kernel's frame before the port reads it, on receive).
//
// Checksums. A frame the local kernel sends may leave its TCP or UDP
// checksum to the device (CHECKSUM_PARTIAL: veth offers tx checksum
// offload). The ring marks such frames TP_STATUS_CSUMNOTREADY and the
// checksum field holds only the pseudo-header sum; the port marks them, and
// those the kernel has verified (TP_STATUS_CSUM_VALID), checksum-good, as
// Linux trusts a CHECKSUM_PARTIAL packet that never left the host, so the
// peer's offload needs no `ethtool -K tx off`. Every other frame is
// verified by the stack.
//
// Super-frames. A veth peer with TSO or GSO on, or a NIC with GRO or LRO
// on, hands the socket frames far beyond the MTU, which the port drops as
// too long: turn those offloads off on the interface (`ethtool -K DEV gro
// off`, and on a veth's peer `tso off gso off`).
//
// Latency. A block is handed over when full or on its timeout, so under
// light load a frame waits up to RetireTimeout (rounded up to the kernel's
// timer tick) before the port can see it: the cost of V3's batching.
//
// Frames the kernel sends out of the interface (its own, or other sockets')
// are not received (PACKET_IGNORE_OUTGOING): the port sees what arrives on
// the interface, as a NIC does.
package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/epollirq"
)

// Config shapes an AF_PACKET port.
type Config struct {
	// Name is the interface to attach to, in the calling thread's network
	// namespace (the sockets stay in that namespace).
	Name string
	// Queues is the number of receive and transmit queues: sockets in one
	// fanout group (default 1).
	Queues int
	// BlockSize is the size of a ring block in bytes: a multiple of the
	// page size and of FrameSize (default 64 KiB, or one frame if larger).
	BlockSize int
	// BlockCount is the number of blocks in each queue's receive ring and
	// in its transmit ring (default 64).
	BlockCount int
	// FrameSize is the largest slot a frame takes, header included: a
	// multiple of 16 that fits a frame of the interface's MTU (default the
	// smallest power of two that does: 2048 for an MTU of 1500).
	FrameSize int
	// RetireTimeout is how long the kernel keeps a receive block that has
	// frames in it before handing it over unfilled (tp_retire_blk_tov, in
	// whole milliseconds; default 1 ms). It bounds the latency a lightly
	// loaded queue adds to a frame.
	RetireTimeout time.Duration
	// PoolSize is the number of mbufs in the port's receive pool (default
	// DefaultPoolPerQueue per queue).
	PoolSize int
	// PortIndex is recorded on received mbufs as their port (default 0).
	PortIndex int
}

// Limits and defaults of Config.
const (
	DefaultBlockSize     = 64 << 10
	DefaultBlockCount    = 64
	DefaultRetireTimeout = time.Millisecond
	DefaultPoolPerQueue  = 4096
	// MaxQueues bounds the fanout group; the kernel allows 256 members
	// (PACKET_FANOUT_MAX) but a queue per core is the use.
	MaxQueues = 16
	ethHeader = 14
)

// Port is an interface reached through AF_PACKET sockets. It implements
// engine.Port.
type Port struct {
	info     engine.PortInfo
	pool     *engine.Pool
	rxq      []*rxQueue
	txq      []*txQueue
	index    int
	maxFrame int // the largest frame transmitted: MTU plus the Ethernet header

	irq *epollirq.Line // receive interrupts, over every queue's socket

	// statsMu orders PACKET_STATISTICS reads (RLock) before Close closes
	// the sockets (Lock), so a read never lands on a reused descriptor.
	statsMu sync.RWMutex
	closed  atomic.Bool
}

var _ engine.Port = (*Port)(nil)

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("afpacket: port already closed")

// geometry is the rings' shape, the same for every queue.
type geometry struct {
	blockSize, blockCount, frameSize int
	retireMs                         int
}

func (cfg *Config) setDefaults(mtu int) (geometry, error) {
	var g geometry
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return g, fmt.Errorf("afpacket %s: %d queues out of range 1..%d", cfg.Name, cfg.Queues, MaxQueues)
	}
	if mtu+ethHeader > engine.MaxPacket {
		return g, fmt.Errorf("afpacket %s: interface MTU %d is larger than a packet may be (%d)", cfg.Name, mtu, engine.MaxPacket-ethHeader)
	}
	need := frameOverhead + ethHeader + mtu
	if cfg.FrameSize == 0 {
		cfg.FrameSize = 1 << bits.Len(uint(need-1))
	}
	if cfg.FrameSize < need || cfg.FrameSize%unix.TPACKET_ALIGNMENT != 0 {
		return g, fmt.Errorf("afpacket %s: frame size %d must be a multiple of %d and at least %d for the interface's MTU of %d",
			cfg.Name, cfg.FrameSize, unix.TPACKET_ALIGNMENT, need, mtu)
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = max(DefaultBlockSize, cfg.FrameSize)
	}
	page := unix.Getpagesize()
	if cfg.BlockSize%page != 0 || cfg.BlockSize%cfg.FrameSize != 0 || cfg.BlockSize < cfg.FrameSize || cfg.BlockSize > 1<<30 {
		return g, fmt.Errorf("afpacket %s: block size %d must be a multiple of the page size (%d) and of the frame size (%d)",
			cfg.Name, cfg.BlockSize, page, cfg.FrameSize)
	}
	if cfg.BlockCount == 0 {
		cfg.BlockCount = DefaultBlockCount
	}
	if cfg.BlockCount < 2 || cfg.BlockCount > 1<<16 {
		return g, fmt.Errorf("afpacket %s: block count %d out of range 2..65536", cfg.Name, cfg.BlockCount)
	}
	if cfg.RetireTimeout == 0 {
		cfg.RetireTimeout = DefaultRetireTimeout
	}
	if cfg.RetireTimeout < time.Millisecond || cfg.RetireTimeout > time.Minute {
		return g, fmt.Errorf("afpacket %s: retire timeout %v out of range 1ms..1m (the kernel counts whole milliseconds)", cfg.Name, cfg.RetireTimeout)
	}
	segs := (mtu + ethHeader + 4 + engine.DataRoom - 1) / engine.DataRoom // a VLAN tag put back too
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolPerQueue * cfg.Queues
	}
	if least := 2 * segs * cfg.Queues; cfg.PoolSize < least || cfg.PoolSize > engine.MaxPoolSize {
		return g, fmt.Errorf("afpacket %s: pool size %d out of range %d..%d", cfg.Name, cfg.PoolSize, least, engine.MaxPoolSize)
	}
	if cfg.PortIndex < 0 || cfg.PortIndex > 0xffff {
		return g, fmt.Errorf("afpacket %s: port index %d out of range 0..65535", cfg.Name, cfg.PortIndex)
	}
	return geometry{cfg.BlockSize, cfg.BlockCount, cfg.FrameSize, int(cfg.RetireTimeout / time.Millisecond)}, nil
}

// iface is what the port learns of its interface.
type iface struct {
	index int
	mtu   int
	mac   [6]byte
}

// lookup reads the interface's index, MTU and address through the socket fd,
// so in the socket's network namespace.
func lookup(fd int, name string) (iface, error) {
	var ifc iface
	if name == "" {
		return ifc, errors.New("afpacket: interface name is empty: set Config.Name")
	}
	if len(name) > unix.IFNAMSIZ-1 || strings.ContainsAny(name, "/: \t\n") {
		return ifc, fmt.Errorf("afpacket: %q is not an interface name", name)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return ifc, fmt.Errorf("afpacket %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return ifc, fmt.Errorf("afpacket %s: %w: no such interface in this network namespace", name, err)
		}
		return ifc, fmt.Errorf("afpacket %s: interface index (SIOCGIFINDEX): %w", name, err)
	}
	ifc.index = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return ifc, fmt.Errorf("afpacket %s: MTU (SIOCGIFMTU): %w", name, err)
	}
	ifc.mtu = int(ifr.Uint32())
	// struct ifreq: the name, then a struct sockaddr whose family is
	// ARPHRD_* and whose data starts with the address. x/sys has no
	// accessor for it, so the ioctl is made on the raw bytes.
	var raw [unix.IFNAMSIZ + 24]byte
	copy(raw[:], name)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGIFHWADDR, uintptr(unsafe.Pointer(&raw[0]))); errno != 0 {
		return ifc, fmt.Errorf("afpacket %s: hardware address (SIOCGIFHWADDR): %w", name, errno)
	}
	if fam := binary.NativeEndian.Uint16(raw[unix.IFNAMSIZ:]); fam != unix.ARPHRD_ETHER {
		return ifc, fmt.Errorf("afpacket %s: link type %d is not Ethernet", name, fam)
	}
	copy(ifc.mac[:], raw[unix.IFNAMSIZ+2:])
	return ifc, nil
}

// fanoutIDs hands out fanout group ids; groups are per network namespace,
// and a clash with another process's group is retried with the next id.
var fanoutIDs atomic.Uint32

func init() { fanoutIDs.Store(uint32(unix.Getpid())) }

// Open attaches a port to the interface cfg.Name, in the calling thread's
// network namespace: one socket per queue, each with its rings mapped. The
// MTU is the interface's. The interface should be up; the port does not
// change its state or addresses.
func Open(cfg Config) (*Port, error) {
	probe, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("afpacket: socket(AF_PACKET): %w: run as root or grant CAP_NET_RAW", err)
		}
		return nil, fmt.Errorf("afpacket: socket(AF_PACKET): %w", err)
	}
	ifc, err := lookup(probe, cfg.Name)
	unix.Close(probe)
	if err != nil {
		return nil, err
	}
	g, err := cfg.setDefaults(ifc.mtu)
	if err != nil {
		return nil, err
	}
	p := &Port{index: cfg.PortIndex, maxFrame: ifc.mtu + ethHeader}
	ok := false
	defer func() {
		if !ok {
			p.abort()
		}
	}()
	fanout := uint32(0)
	for q := 0; q < cfg.Queues; q++ {
		rq, tq, err := openQueue(cfg.Name, ifc, g)
		if err != nil {
			return nil, err
		}
		p.rxq = append(p.rxq, rq)
		p.txq = append(p.txq, tq)
		if cfg.Queues > 1 {
			if fanout, err = joinFanout(rq.fd, fanout, q == 0); err != nil {
				return nil, fmt.Errorf("afpacket %s: queue %d: %w", cfg.Name, q, err)
			}
		}
	}
	pool, err := engine.NewPool("afpacket-"+cfg.Name, cfg.PoolSize, 0)
	if err != nil {
		return nil, fmt.Errorf("afpacket %s: %w", cfg.Name, err)
	}
	p.pool = pool
	for _, rq := range p.rxq {
		rq.pool = pool
		rq.cache = rq.caches.For(pool)
	}
	p.info = engine.PortInfo{
		Name:     cfg.Name,
		Driver:   "afpacket",
		MAC:      ifc.mac,
		MTU:      ifc.mtu,
		RxQueues: cfg.Queues,
		TxQueues: cfg.Queues,
		// Frames of the largest size that the rings hold.
		RxRingSize: g.blockCount * (g.blockSize / g.frameSize),
		TxRingSize: g.blockCount * (g.blockSize / g.frameSize),
		// The fanout hash picks a flow's queue; its key is the kernel's.
		Features: engine.Features{Interrupts: true, RSS: cfg.Queues > 1},
	}
	fds := make([]int, len(p.rxq))
	for q, rq := range p.rxq {
		fds[q] = rq.fd
	}
	irq, err := epollirq.New(fds)
	if err != nil {
		return nil, fmt.Errorf("afpacket %s: %w", cfg.Name, err)
	}
	p.irq = irq
	ok = true
	return p, nil
}

// joinFanout adds fd to a hash fanout group: a fresh one for the first
// queue, whose id it returns, the same id for the others.
func joinFanout(fd int, id uint32, first bool) (uint32, error) {
	for try := 0; ; try++ {
		if first {
			id = fanoutIDs.Add(1) & 0xffff
		}
		err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(id|unix.PACKET_FANOUT_HASH<<16))
		if err == nil {
			return id, nil
		}
		// EINVAL or EALREADY: an id another group of this namespace holds.
		if !first || try == 16 {
			return 0, fmt.Errorf("join fanout group %d (PACKET_FANOUT): %w", id, err)
		}
	}
}

// abort undoes a failed Open.
func (p *Port) abort() {
	for _, rq := range p.rxq {
		rq.release()
	}
	if p.pool != nil {
		p.pool.Close()
	}
}

// Info describes the port.
func (p *Port) Info() engine.PortInfo { return p.info }

// Pool is the pool the port receives into.
func (p *Port) Pool() *engine.Pool { return p.pool }

func (p *Port) checkRx(q int) *rxQueue {
	if q < 0 || q >= len(p.rxq) {
		panic(fmt.Sprintf("afpacket %s: receive queue %d out of range 0..%d", p.info.Name, q, len(p.rxq)-1))
	}
	return p.rxq[q]
}

func (p *Port) checkTx(q int) *txQueue {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("afpacket %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	return p.txq[q]
}

// SetTxCaches makes the queue free the frames it has copied into the ring
// into cs, the caches of the goroutine that drives it; nil restores the
// queue's own.
func (p *Port) SetTxCaches(q int, cs *engine.Caches) {
	tq := p.checkTx(q)
	if cs == nil {
		cs = &tq.caches
	}
	tq.done = cs
}

// RxStats returns a receive queue's counters. Drops[rx_missed] is the
// kernel's tp_drops (PACKET_STATISTICS): frames that found every block of
// the ring still in the port's hands.
func (p *Port) RxStats(q int) engine.QueueStats {
	rq := p.checkRx(q)
	p.statsMu.RLock()
	if !p.closed.Load() {
		rq.readKernelStats()
	}
	p.statsMu.RUnlock()
	s := rq.ctr.Stats()
	s.Interrupts = p.irq.Interrupts(q)
	return s
}

// TxStats returns a transmit queue's counters: frames handed to the kernel
// through the ring. A frame the driver then drops (the veth peer's backlog
// full) is the interface's tx_dropped, which `ip -s link` shows.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.checkTx(q)
	s := tq.ctr.Stats()
	return s
}

// Close stops the interrupt goroutine, unmaps the rings, closes the sockets,
// returns every mbuf the port holds and closes its pool, which fails if
// mbufs of the pool are still out (a leak). No queue may be used during or
// after Close.
func (p *Port) Close() error {
	p.statsMu.Lock()
	if p.closed.Load() {
		p.statsMu.Unlock()
		return ErrClosed
	}
	for _, rq := range p.rxq {
		rq.readKernelStats() // the last drops, before the sockets go
	}
	p.closed.Store(true)
	p.statsMu.Unlock()

	var errs []error
	if err := p.irq.Close(); err != nil {
		errs = append(errs, fmt.Errorf("afpacket %s: %w", p.info.Name, err))
	}
	for _, rq := range p.rxq {
		if err := rq.release(); err != nil {
			errs = append(errs, fmt.Errorf("afpacket %s: %w", p.info.Name, err))
		}
		rq.caches.Flush()
	}
	for _, tq := range p.txq {
		tq.ring = nil
		tq.caches.Flush()
	}
	if err := p.pool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("afpacket %s: %w", p.info.Name, err))
	}
	return errors.Join(errs...)
}

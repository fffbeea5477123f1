// Package afxdp is a port over AF_XDP sockets: an XDP program redirects the
// frames an interface receives on each queue into a socket whose rings,
// shared with the kernel, the port drives without a system call per frame
// (Documentation/networking/af_xdp.rst).
//
// Each queue is one socket bound to (interface, queue) with a UMEM of its
// own and XDP_USE_NEED_WAKEUP, so the port makes a system call only when a
// ring's flags ask for one. Config.Bind picks the bind mode: BindAuto (the
// default) asks for zero-copy (XDP_ZEROCOPY) and, when the kernel refuses
// it because the driver has none, binds a fresh socket in copy mode
// (XDP_COPY, which every driver has); BindCopy binds in copy mode only;
// BindZeroCopy fails Open with ErrNoZeroCopy rather than copy. Stats says
// which mode each queue got (ZeroCopy) and why zero-copy was refused. veth
// has no zero-copy bind: on it, BindAuto gets copy mode. Zero-copy pays
// only with the program attached in Native mode, where the driver runs it
// on its own buffers. The redirect program is built with cilium/ebpf's asm
// package and attached in generic (SKB) or native mode.
//
// Frames are copied once at the boundary, into the port's mbufs on receive
// and out of them on transmit, in either bind mode: zero-copy saves the
// kernel's copy (skb to UMEM, UMEM to skb), not ours. A UMEM frame cannot
// be an mbuf here: UMEM frames in aligned mode are power-of-two chunks of
// one registered mapping, while an engine mbuf buffer is engine.BufSize
// (2176) bytes with 128 of headroom, and the pool's arena is the engine's,
// shared by every port (and on the Go heap under -race). Unaligned chunks
// (XDP_UMEM_UNALIGNED_CHUNK_FLAG) could map one onto the other, at the
// cost of mbufs held by the kernel and an engine that lets a driver own
// its pool's memory; not done. Stats counts the bytes copied each way.
// BenchmarkBoundaryCopy measures what the copy costs per frame, RxBurst and
// TxBurst run against rings whose kernel side it plays: on this project's
// 2-core AMD EPYC VM, shared and loaded (load average 3), one short run
// each, RxBurst took 43-48 ns a frame at 64 bytes and 139-258 ns at 1514
// (mbuf allocation and freeing included), TxBurst 55 and 153 ns; the copy
// alone was 22-31 and 52-62 ns in, 17 and 44 ns out.
//
// XDP sees a frame's bytes as they are: a frame the kernel sends with
// CHECKSUM_PARTIAL (a local socket over a veth, which offers checksum
// offload) arrives with its L4 checksum unfilled. Turn off the sender's
// offload (ethtool -K PEER tx off), as the stack's interop test does.
//
// What is not here: UMEM frames as mbufs (see above), shared UMEM between
// queues, RSS (the kernel picks the queue; the port sets no hash),
// multi-buffer frames larger than a UMEM frame, and TSO or checksum
// offload.
package afxdp

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/epollirq"
)

// Config shapes an AF_XDP port.
type Config struct {
	// Interface is the name of the interface, in the calling thread's
	// network namespace.
	Interface string
	// Queues is the number of queues, 0..Queues-1 of the interface, each
	// with its own socket (default 1).
	Queues int
	// FrameSize is the size of a UMEM frame, 2048 or 4096 (default 2048).
	// A received frame fits in FrameSize - XDP_PACKET_HEADROOM bytes.
	FrameSize int
	// RingSize is the number of slots of every ring, a power of two
	// (default 1024); each socket has 2*RingSize frames of UMEM.
	RingSize int
	// PoolSize is the number of mbufs the port receives into (default
	// DefaultPoolPerQueue per queue).
	PoolSize int
	// Mode is how the redirect program is attached (default Generic).
	Mode Mode
	// Bind is whether each queue's socket asks for zero-copy (default
	// BindAuto: zero-copy where the driver offers it, copy where not).
	Bind BindMode
	// PortIndex is recorded on received mbufs as their port.
	PortIndex int
}

// BindMode is how a queue's socket is bound: in copy mode the kernel copies
// each frame between the driver's buffers (an skb) and the UMEM; in
// zero-copy mode the driver receives into, and sends from, the UMEM itself.
type BindMode int

// Bind modes.
const (
	// BindAuto asks for zero-copy (XDP_ZEROCOPY) and, if the kernel refuses
	// it because the driver has none, binds a fresh socket in copy mode;
	// Stats says which mode each queue got, and why zero-copy was refused.
	BindAuto BindMode = iota
	// BindCopy binds in copy mode (XDP_COPY), which every driver has.
	BindCopy
	// BindZeroCopy binds in zero-copy mode or fails Open with an error that
	// is ErrNoZeroCopy when the driver has none (veth, for one).
	BindZeroCopy
)

func (b BindMode) String() string {
	switch b {
	case BindAuto:
		return "auto"
	case BindCopy:
		return "copy"
	case BindZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("BindMode(%d)", int(b))
}

// ErrNoZeroCopy is in Open's error when BindZeroCopy was asked of a driver
// the kernel says has no zero-copy bind.
var ErrNoZeroCopy = errors.New("the driver offers no zero-copy bind")

// refusesZeroCopy reports whether a bind with XDP_ZEROCOPY failed because
// the driver has no zero-copy: xp_assign_dev answers EOPNOTSUPP for a
// driver without ndo_bpf or ndo_xsk_wakeup and passes on the driver's own
// refusal of XDP_SETUP_XSK_POOL, EINVAL for most (veth's ndo_bpf knows no
// such command); EPROTONOSUPPORT is in the list for drivers that use it.
func refusesZeroCopy(err error) bool {
	var be *bindError
	if !errors.As(err, &be) || be.flags&unix.XDP_ZEROCOPY == 0 {
		return false
	}
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPROTONOSUPPORT)
}

// bindQueue opens queue's socket in mode. Under BindAuto a refused
// zero-copy bind is retried in copy mode on a new socket with a new UMEM:
// the refused one is closed first, rings and UMEM unmapped, since what a
// refused bind leaves on a socket differs between kernels (5.4's
// xdp_umem_assign_dev left the UMEM holding the device until release). It
// returns the kernel's refusal as why when it fell back.
func bindQueue(name string, ifindex, queue int, frameSize, frames uint32, mode BindMode) (s *socket, why string, err error) {
	if mode == BindCopy {
		s, err = openSocket(ifindex, queue, frameSize, frames, unix.XDP_COPY)
		return s, "", err
	}
	s, err = openSocket(ifindex, queue, frameSize, frames, unix.XDP_ZEROCOPY)
	if err == nil || !refusesZeroCopy(err) {
		return s, "", err
	}
	errno := err
	for u := errors.Unwrap(errno); u != nil; u = errors.Unwrap(errno) {
		errno = u
	}
	if mode == BindZeroCopy {
		return nil, "", fmt.Errorf("afxdp %s queue %d: %w: XDP_ZEROCOPY refused (%w); use BindCopy or BindAuto", name, queue, ErrNoZeroCopy, errno)
	}
	s, err = openSocket(ifindex, queue, frameSize, frames, unix.XDP_COPY)
	if err != nil {
		return nil, "", fmt.Errorf("afxdp %s queue %d: copy-mode bind after zero-copy was refused (%v): %w", name, queue, errno, err)
	}
	return s, "XDP_ZEROCOPY: " + errno.Error(), nil
}

// Defaults and limits of Config.
const (
	DefaultFrameSize    = 2048
	DefaultRingSize     = 1024
	DefaultPoolPerQueue = 4096
	MaxQueues           = 64
	ethHeader           = 14
)

// Port is an AF_XDP port. It implements engine.Port.
type Port struct {
	info     engine.PortInfo
	ifindex  int
	pool     *engine.Pool
	socks    []*socket
	rxq      []*rxQueue
	txq      []*txQueue
	prog     *redirect
	why      []string // per queue, the kernel's refusal of zero-copy under BindAuto
	maxFrame int      // the longest frame transmitted or received, Ethernet header included

	irq    *epollirq.Line // receive interrupts, over every queue's socket
	closed atomic.Bool
}

var _ engine.Port = (*Port)(nil)

type counter = atomic.Uint64

// rxQueue is one queue's receive side, owned by the goroutine that calls
// RxBurst on it: the socket's fill and rx rings, and the receive frames.
type rxQueue struct {
	_       [64]byte
	sock    *socket
	fill    *ring[uint64]
	rx      *ring[unix.XDPDesc]
	rxEnd   uint64 // receive frames are below it
	pool    *engine.Pool
	caches  engine.Caches
	cache   *engine.Cache
	port    int
	queue   int
	tq      *txQueue // the same socket's transmit side, for kickLate
	_       [64]byte
	ctr     engine.QueueCounters
	copied  counter // bytes copied from UMEM into mbufs
	wakeups counter // recvfrom kicks the fill ring's flags asked for
	_       [64]byte
}

// txQueue is one queue's transmit side, owned by the goroutine that calls
// TxBurst on it: the tx and completion rings, and a stack of free transmit
// frames. The last block is shared with the goroutine that calls RxBurst on
// the same queue index (engine.Port lets it be another): unsent says a
// TxBurst left descriptors on the tx ring that its kicks did not get the
// kernel to take, and RxBurst then kicks for them (kickLate), touching only
// that block, the socket and the ring's mapped indices.
type txQueue struct {
	_       [64]byte
	sock    *socket
	tx      *ring[unix.XDPDesc]
	comp    *ring[uint64]
	free    []uint64 // addresses of transmit frames not in the kernel's hands
	caches  engine.Caches
	done    *engine.Caches // &caches, or the caller's
	_       [64]byte
	ctr     engine.QueueCounters
	copied  counter // bytes copied from mbufs into UMEM
	wakeups counter // sendto kicks the tx ring's flags asked for, by TxBurst
	_       [64]byte
	unsent  atomic.Bool // descriptors wait on the tx ring for a kick
	late    counter     // sendto kicks RxBurst made for them
	busy    counter     // sendto kicks refused with EBUSY or ENOBUFS
	_       [64]byte
}

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("afxdp: port already closed")

func (cfg *Config) setDefaults() error {
	if cfg.Interface == "" {
		return errors.New("afxdp: no interface: set Config.Interface")
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return fmt.Errorf("afxdp %s: %d queues out of range 1..%d", cfg.Interface, cfg.Queues, MaxQueues)
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = DefaultFrameSize
	}
	if cfg.FrameSize != 2048 && cfg.FrameSize != 4096 {
		return fmt.Errorf("afxdp %s: frame size %d: want 2048 or 4096", cfg.Interface, cfg.FrameSize)
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.RingSize < 64 || cfg.RingSize > 1<<16 || cfg.RingSize&(cfg.RingSize-1) != 0 {
		return fmt.Errorf("afxdp %s: ring size %d: want a power of two in 64..65536", cfg.Interface, cfg.RingSize)
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolPerQueue * cfg.Queues
	}
	if cfg.PoolSize < 64*cfg.Queues || cfg.PoolSize > engine.MaxPoolSize {
		return fmt.Errorf("afxdp %s: pool size %d out of range %d..%d", cfg.Interface, cfg.PoolSize, 64*cfg.Queues, engine.MaxPoolSize)
	}
	if cfg.Mode != Generic && cfg.Mode != Native {
		return fmt.Errorf("afxdp %s: unknown attach mode %d", cfg.Interface, cfg.Mode)
	}
	if cfg.Bind < BindAuto || cfg.Bind > BindZeroCopy {
		return fmt.Errorf("afxdp %s: unknown bind mode %d", cfg.Interface, cfg.Bind)
	}
	if cfg.PortIndex < 0 || cfg.PortIndex > 0xffff {
		return fmt.Errorf("afxdp %s: port index %d out of range 0..65535", cfg.Interface, cfg.PortIndex)
	}
	return nil
}

// Open binds a socket to each queue of the interface and attaches the
// redirect program. The interface is looked up, and the program attached,
// in the calling thread's network namespace. The port's MAC and MTU are the
// interface's: the port is the interface's driver, as a DPDK port is.
func Open(cfg Config) (*Port, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("afxdp %s: %w", cfg.Interface, err)
	}
	room := cfg.FrameSize - unix.XDP_PACKET_HEADROOM
	if ifc.MTU+ethHeader > room {
		return nil, fmt.Errorf("afxdp %s: MTU %d does not fit a UMEM frame of %d (%d bytes after the kernel's headroom): lower the MTU or use 4096-byte frames",
			cfg.Interface, ifc.MTU, cfg.FrameSize, room)
	}
	p := &Port{ifindex: ifc.Index, maxFrame: ifc.MTU + ethHeader}
	ok := false
	defer func() {
		if !ok {
			p.abort()
		}
	}()
	var mac [6]byte
	copy(mac[:], ifc.HardwareAddr)
	p.info = engine.PortInfo{
		Name: cfg.Interface, Driver: "afxdp", MAC: mac, MTU: ifc.MTU,
		RxQueues: cfg.Queues, TxQueues: cfg.Queues,
		RxRingSize: cfg.RingSize, TxRingSize: cfg.RingSize,
		Features: engine.Features{Interrupts: true},
	}
	if p.pool, err = engine.NewPool("afxdp-"+cfg.Interface, cfg.PoolSize, 0); err != nil {
		return nil, fmt.Errorf("afxdp %s: %w", cfg.Interface, err)
	}
	if p.prog, err = newRedirect(cfg.Queues); err != nil {
		return nil, err
	}
	for q := 0; q < cfg.Queues; q++ {
		s, why, err := bindQueue(cfg.Interface, ifc.Index, q, uint32(cfg.FrameSize), uint32(cfg.RingSize), cfg.Bind)
		if err != nil {
			return nil, err
		}
		p.socks = append(p.socks, s)
		p.why = append(p.why, why)
		if err := p.prog.insert(q, s.fd); err != nil {
			return nil, err
		}
		rq := &rxQueue{sock: s, fill: &s.fill, rx: &s.rx, rxEnd: uint64(s.frames) * s.frameSize,
			pool: p.pool, port: cfg.PortIndex, queue: q}
		rq.cache = rq.caches.For(p.pool)
		p.rxq = append(p.rxq, rq)
		tq := &txQueue{sock: s, tx: &s.tx, comp: &s.comp, free: make([]uint64, 0, s.frames)}
		rq.tq = tq
		for i := s.frames; i < 2*s.frames; i++ {
			tq.free = append(tq.free, uint64(i)*s.frameSize)
		}
		tq.done = &tq.caches
		p.txq = append(p.txq, tq)
	}
	if err := p.prog.attach(ifc.Index, cfg.Mode); err != nil {
		return nil, err
	}
	fds := make([]int, len(p.rxq))
	for q, rq := range p.rxq {
		fds[q] = rq.sock.fd
	}
	irq, err := epollirq.New(fds)
	if err != nil {
		return nil, fmt.Errorf("afxdp %s: %w", cfg.Interface, err)
	}
	p.irq = irq
	ok = true
	return p, nil
}

// abort undoes a failed Open.
func (p *Port) abort() {
	if p.prog != nil {
		p.prog.close()
	}
	for _, s := range p.socks {
		s.close()
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
		panic(fmt.Sprintf("afxdp %s: receive queue %d out of range 0..%d", p.info.Name, q, len(p.rxq)-1))
	}
	return p.rxq[q]
}

func (p *Port) checkTx(q int) *txQueue {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("afxdp %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	return p.txq[q]
}

// RxBurst takes up to len(pkts) frames off the rx ring, copies each into an
// mbuf, and hands its UMEM frame straight back on the fill ring, so the
// kernel always has every receive frame but the ones being copied. A
// descriptor outside the receive frames is counted as an error and its
// frame is not recycled; with no mbuf the frame is dropped (rx_nombuf) and
// recycled all the same. It first kicks the kernel, once, for descriptors
// a TxBurst on the same queue left on the tx ring (kickLate), so they go out
// while the transmit side is quiet; with none left, that costs one load.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int {
	rq := p.checkRx(q)
	if rq.tq.unsent.Load() {
		rq.tq.kickLate()
	}
	n := rq.rx.avail(uint32(len(pkts)))
	if n > 0 {
		n = rq.fill.free(n) // always n: the fill ring has a slot per frame
	}
	if n == 0 {
		if rq.fill.needWakeup() {
			rq.sock.kickRx()
			rq.wakeups.Add(1)
		}
		return 0
	}
	umem, fsize := rq.sock.umem, rq.sock.frameSize
	got, back := 0, uint32(0)
	var bytes uint64
	var drops [engine.NumDropReasons]uint64
	for i := uint32(0); i < n; i++ {
		d := *rq.rx.slot(i)
		base := d.Addr &^ (fsize - 1)
		if d.Addr >= rq.rxEnd || d.Addr+uint64(d.Len) > base+fsize {
			drops[engine.DropError]++
			continue
		}
		*rq.fill.slot(back) = base
		back++
		if d.Len < ethHeader {
			drops[engine.DropError]++
			continue
		}
		m, err := rq.cache.Get()
		if err != nil {
			drops[engine.DropNoMbuf]++
			continue
		}
		if err := rq.caches.AppendBytes(m, rq.pool, umem[d.Addr:d.Addr+uint64(d.Len)]); err != nil {
			rq.caches.Free(m)
			drops[engine.DropNoMbuf]++
			continue
		}
		m.SetRxInfo(rq.port, rq.queue)
		bytes += uint64(d.Len)
		pkts[got] = m
		got++
	}
	rq.rx.release(n)
	rq.fill.submit(back)
	if rq.fill.needWakeup() {
		rq.sock.kickRx()
		rq.wakeups.Add(1)
	}
	if got > 0 {
		rq.copied.Add(bytes)
	}
	rq.ctr.Count(uint64(got), bytes, &drops)
	return got
}

// maxKicks bounds the sendto calls of one TxBurst: in copy mode each one
// sends a batch (32 frames by default) and returns EAGAIN if more wait, or
// EBUSY when the device dropped the frame it was handed (NET_XMIT_DROP) and
// stopped there, leaving the rest on the ring.
const maxKicks = 8

// kick sends what the tx ring holds, up to maxKicks sendto calls, as
// net_af_xdp's kick_tx does but bounded: EAGAIN and EINTR ask for another
// call, and so do EBUSY and ENOBUFS (the device refused a frame; the rest
// may pass), after a reap so the kernel's completion reservations find
// room. Any other error ends it. It then records in unsent whether
// descriptors are left for kickLate.
func (tq *txQueue) kick() {
	for kicks := 0; kicks < maxKicks && tq.tx.pending() > 0 && tq.tx.needWakeup(); kicks++ {
		tq.wakeups.Add(1)
		errno := tq.sock.kickTx()
		switch errno {
		case unix.EAGAIN, unix.EINTR:
			continue
		case unix.EBUSY, unix.ENOBUFS:
			tq.busy.Add(1)
			tq.reap()
			continue
		}
		break
	}
	// Written only on a change, so the receive side's load stays cached.
	if left := tq.tx.pending() > 0 && tq.tx.needWakeup(); left != tq.unsent.Load() {
		tq.unsent.Store(left)
	}
}

// kickLate is the receive side's kick for descriptors a TxBurst left on the
// tx ring: one sendto per call, so a poll loop drains a long ring a batch a
// poll. It clears unsent before the kick and sets it again if descriptors
// remain after, so a TxBurst that sets it meanwhile is never undone; at
// worst the flag is left set when nothing remains, and the next call costs
// one sendto that finds the ring empty.
func (tq *txQueue) kickLate() {
	if !tq.unsent.Swap(false) {
		return
	}
	tq.late.Add(1)
	if errno := tq.sock.kickTx(); errno == unix.EBUSY || errno == unix.ENOBUFS {
		tq.busy.Add(1)
	}
	if tq.tx.published() > 0 {
		tq.unsent.Store(true)
	}
}

// reap moves the transmit frames the kernel has finished with from the
// completion ring back to the free stack.
func (tq *txQueue) reap() {
	n := tq.comp.avail(uint32(cap(tq.free) - len(tq.free)))
	for i := uint32(0); i < n; i++ {
		tq.free = append(tq.free, *tq.comp.slot(i))
	}
	tq.comp.release(n)
}

// TxBurst copies each frame into a free transmit frame, posts them on the
// tx ring and, when the ring's flags ask, kicks the kernel with sendto. It
// frees the mbufs it took at once: their bytes are in the UMEM. With no
// free frame or tx slot left the burst ends and the caller keeps the rest.
// Frames longer than the MTU, or shorter than an Ethernet header, are
// dropped. Descriptors still on the ring after its kicks are kicked again
// by the next RxBurst on the queue, or by a call with no frames, which
// still reaps and kicks.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	tq := p.checkTx(q)
	tq.reap()
	room := tq.tx.free(uint32(min(len(pkts), len(tq.free))))
	umem := tq.sock.umem
	var k uint32
	var bytes, long, runts uint64
	i := 0
	for ; i < len(pkts) && k < room; i++ {
		m := pkts[i]
		size := m.PktLen()
		if size > p.maxFrame {
			long++
			continue
		}
		if size < ethHeader {
			runts++
			continue
		}
		addr := tq.free[len(tq.free)-1]
		tq.free = tq.free[:len(tq.free)-1]
		m.CopyOut(umem[addr:addr+uint64(size)], 0)
		*tq.tx.slot(k) = unix.XDPDesc{Addr: addr, Len: uint32(size)}
		k++
		bytes += uint64(size)
	}
	if k > 0 {
		tq.tx.submit(k)
	}
	tq.done.FreeBulk(pkts[:i])
	tq.kick()
	if k > 0 {
		tq.copied.Add(bytes)
	}
	tq.ctr.CountTx(uint64(k), bytes, long, runts)
	return i
}

// SetTxCaches makes the queue free the frames it sends into cs; nil
// restores the queue's own caches.
func (p *Port) SetTxCaches(q int, cs *engine.Caches) {
	tq := p.checkTx(q)
	if cs == nil {
		cs = &tq.caches
	}
	tq.done = cs
}

// RxStats returns a receive queue's counters as the port sees them. Frames
// the kernel dropped before the rx ring are in Stats.
func (p *Port) RxStats(q int) engine.QueueStats {
	rq := p.checkRx(q)
	s := rq.ctr.Stats()
	s.Interrupts = p.irq.Interrupts(q)
	return s
}

// TxStats returns a transmit queue's counters. Packets are frames posted
// on the tx ring; the kernel's own drops are in Stats.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.checkTx(q)
	s := tq.ctr.Stats()
	return s
}

// Stats are one queue's AF_XDP counters beside the engine's.
type Stats struct {
	// RxCopied and TxCopied are the number of bytes copied between UMEM
	// frames and mbufs on receive and on transmit: one copy per frame.
	RxCopied, TxCopied uint64
	// RxWakeups and TxWakeups are the number of recvfrom and sendto calls
	// made because the fill or tx ring's XDP_RING_NEED_WAKEUP was set, by
	// RxBurst and TxBurst.
	RxWakeups, TxWakeups uint64
	// TxLateKicks is the number of sendto calls RxBurst made for
	// descriptors a TxBurst left on the tx ring (kernel busy, or more than
	// maxKicks batches); they are not in TxWakeups.
	TxLateKicks uint64
	// TxBusy is the number of sendto kicks, of either kind, the kernel
	// refused with EBUSY or ENOBUFS: the device dropped a frame, or had no
	// room, and the rest stayed on the ring.
	TxBusy uint64
	// ZeroCopy says the queue's socket is bound in zero-copy mode, as the
	// kernel reports it (XDP_OPTIONS); false is copy mode. Either way the
	// port copies between UMEM and mbufs (RxCopied, TxCopied).
	ZeroCopy bool
	// ZeroCopyRefused is, when BindAuto fell back to copy mode, the
	// kernel's answer to the zero-copy bind; empty otherwise.
	ZeroCopyRefused string
	// Kernel is the socket's XDP_STATISTICS: frames the kernel dropped
	// with the rx ring full (Rx_ring_full), found no fill ring buffer
	// (Rx_fill_ring_empty_descs), or refused as invalid descriptors.
	Kernel unix.XDPStatistics
}

// Stats returns queue q's AF_XDP counters. It reads the kernel's with one
// getsockopt, so it is for reports, not for every poll.
func (p *Port) Stats(q int) (Stats, error) {
	rq, tq := p.checkRx(q), p.checkTx(q)
	s := Stats{RxCopied: rq.copied.Load(), TxCopied: tq.copied.Load(), RxWakeups: rq.wakeups.Load(), TxWakeups: tq.wakeups.Load(),
		TxLateKicks: tq.late.Load(), TxBusy: tq.busy.Load(), ZeroCopy: rq.sock.zeroCopy, ZeroCopyRefused: p.why[q]}
	if p.closed.Load() {
		return s, ErrClosed
	}
	k, err := rq.sock.statistics()
	if err != nil {
		return s, fmt.Errorf("afxdp %s: read XDP_STATISTICS of queue %d: %w", p.info.Name, q, err)
	}
	s.Kernel = k
	return s, nil
}

// Close stops the interrupt goroutine, detaches the redirect program,
// closes the sockets and unmaps their rings and UMEM, and closes the pool,
// which fails if mbufs of it are still out (a leak). The port holds no
// mbuf between bursts: frames in flight live in the UMEM. No queue may be
// used during or after Close.
func (p *Port) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	var errs []error
	if err := p.irq.Close(); err != nil {
		errs = append(errs, fmt.Errorf("afxdp %s: %w", p.info.Name, err))
	}
	if err := p.prog.close(); err != nil {
		errs = append(errs, err)
	}
	for _, rq := range p.rxq {
		rq.caches.Flush()
	}
	for _, tq := range p.txq {
		tq.caches.Flush()
	}
	for _, s := range p.socks {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.pool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("afxdp %s: %w", p.info.Name, err))
	}
	return errors.Join(errs...)
}

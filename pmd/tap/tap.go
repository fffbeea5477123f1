// Package tap is a port backed by a Linux TAP interface, so the host kernel
// is a real neighbour: what the port transmits, the kernel receives on the
// interface, and what the kernel sends out of the interface, the port
// receives. It is the simplest way to put pollnet's stack beside the kernel's
// own and check both against each other.
//
// Each queue is one file descriptor of /dev/net/tun, non-blocking. Receive is
// one readv(2) per frame straight into mbufs, transmit one writev(2) per
// frame straight from them, so a frame is copied once, by the kernel, and
// nothing is allocated per packet. A multi-queue TAP (IFF_MULTI_QUEUE) gives
// one descriptor per queue and the kernel spreads flows over them.
//
// The port plays the NIC on the far side of the wire: the interface is the
// kernel's end, with its own MAC, and the port's MAC (Info().MAC) is what
// the port writes in the frames it sends. The port receives every frame the
// kernel sends out of the interface, whatever its destination, as a wire does.
package tap

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/epollirq"
)

// Config shapes a TAP port.
type Config struct {
	// Name is the interface name, 1..15 bytes. A name with "%d" (such as
	// "pn%d") lets the kernel pick a free one; Port.Name reports it.
	Name string
	// Queues is the number of receive and transmit queues (default 1).
	// More than one opens a multi-queue TAP with one descriptor per queue.
	Queues int
	// PoolSize is the number of mbufs in the port's receive pool (default
	// DefaultPoolPerQueue per queue).
	PoolSize int
	// MTU is the largest IP packet, set on the interface (default 1500).
	// Frames over MTU+14 bytes are refused on transmit.
	MTU int
	// MAC is the port's own address, as Info reports it (default a locally
	// administered address derived from the interface name).
	MAC [6]byte
	// PortIndex is recorded on received mbufs as their port (default 0).
	PortIndex int
}

// Limits and defaults of Config.
const (
	DefaultMTU          = 1500
	DefaultPoolPerQueue = 4096
	MaxQueues           = 16
	minMTU              = 68
	ethHeader           = 14

	// maxSegs is the most mbufs a received frame is read into directly:
	// enough for the largest MTU. A frame longer than the configured MTU
	// (the MTU changed under the port) overflows into the queue's scratch
	// buffer and is copied from there.
	maxSegs = engine.MaxPacket / engine.DataRoom
	// maxTxIov is the most segments a transmitted frame is written from
	// directly; a longer chain is first copied into the queue's scratch.
	maxTxIov = 64

	// kernelTxQueueLen is the kernel's default tx_queue_len for a TAP: the
	// size of the ring (tun's ptr_ring) of frames the kernel has sent and
	// the port has yet to read, so it is this port's receive ring.
	kernelTxQueueLen = 1000
)

// Port is one TAP interface. It implements engine.Port.
type Port struct {
	info     engine.PortInfo
	pool     *engine.Pool
	rxq      []*rxQueue
	txq      []*txQueue
	maxFrame int
	index    int

	irq    *epollirq.Line // receive interrupts, over every queue's fd
	closed atomic.Bool
}

var _ engine.Port = (*Port)(nil)

// rxQueue is one queue's receive side. spare holds mbufs already taken from
// the pool with iov describing their buffers, so each readv lands in them;
// the ones a frame did not fill wait for the next read.
type rxQueue struct {
	_       [64]byte
	fd      int
	pool    *engine.Pool
	caches  engine.Caches
	cache   *engine.Cache
	segs    int // spares a frame of the configured MTU needs
	nspare  int
	spare   [maxSegs]engine.Mbuf
	iov     [maxSegs + 1]unix.Iovec // spares, then the scratch buffer
	scratch []byte
	_       [64]byte
	ctr     engine.QueueCounters
	_       [64]byte
}

// txQueue is one queue's transmit side. Its caches, or the caller's
// (SetTxCaches), take back the frames it has sent.
type txQueue struct {
	_       [64]byte
	fd      int
	caches  engine.Caches
	done    *engine.Caches // &caches, or the caller's
	iov     [maxTxIov]unix.Iovec
	scratch []byte
	ctr     engine.QueueCounters
	_       [64]byte
}

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("tap: port already closed")

func (cfg *Config) setDefaults() error {
	if err := validName(cfg.Name); err != nil {
		return err
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return fmt.Errorf("tap %s: %d queues out of range 1..%d", cfg.Name, cfg.Queues, MaxQueues)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < minMTU || cfg.MTU+ethHeader > engine.MaxPacket {
		return fmt.Errorf("tap %s: MTU %d out of range %d..%d", cfg.Name, cfg.MTU, minMTU, engine.MaxPacket-ethHeader)
	}
	segs := segsFor(cfg.MTU + ethHeader)
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolPerQueue * cfg.Queues
	}
	if need := 2 * segs * cfg.Queues; cfg.PoolSize < need || cfg.PoolSize > engine.MaxPoolSize {
		return fmt.Errorf("tap %s: pool size %d out of range %d..%d (two frames of MTU %d per queue at least)",
			cfg.Name, cfg.PoolSize, need, engine.MaxPoolSize, cfg.MTU)
	}
	if cfg.MAC[0]&1 != 0 {
		return fmt.Errorf("tap %s: MAC %x is a multicast address; a port needs a unicast one", cfg.Name, cfg.MAC)
	}
	if cfg.PortIndex < 0 || cfg.PortIndex > 0xffff {
		return fmt.Errorf("tap %s: port index %d out of range 0..65535", cfg.Name, cfg.PortIndex)
	}
	return nil
}

// validName applies the kernel's rules for interface names (dev_valid_name).
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("tap: interface name is empty: set Config.Name, e.g. \"pn0\"")
	case len(name) > unix.IFNAMSIZ-1:
		return fmt.Errorf("tap: interface name %q is %d bytes, longer than the kernel's limit of %d", name, len(name), unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("tap: interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("tap: interface name %q has a '/', ':' or space, which the kernel refuses", name)
	}
	return nil
}

func segsFor(frame int) int { return (frame + engine.DataRoom - 1) / engine.DataRoom }

// defaultMAC derives a stable, locally administered unicast address from the
// interface name, so a port keeps its address across runs.
func defaultMAC(name string) [6]byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := h.Sum64()
	return [6]byte{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// Open creates (or attaches to) the TAP interface cfg.Name and sets its MTU.
// It does not bring the link up nor give it addresses: do that with `ip`, or
// SetUp.
func Open(cfg Config) (*Port, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Port{index: cfg.PortIndex, maxFrame: cfg.MTU + ethHeader}
	ok := false
	defer func() {
		if !ok {
			p.abort()
		}
	}()

	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if cfg.Queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	name := cfg.Name
	var fds []int
	for q := 0; q < cfg.Queues; q++ {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, openError(err)
		}
		fds = append(fds, fd)
		p.rxq = append(p.rxq, &rxQueue{fd: fd})
		tq := &txQueue{fd: fd}
		tq.done = &tq.caches
		p.txq = append(p.txq, tq)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return nil, fmt.Errorf("tap %s: %w", name, err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return nil, setIffError(name, cfg.Queues, err)
		}
		name = ifr.Name() // the kernel's choice, if the name was a template
	}
	if err := setMTU(name, cfg.MTU); err != nil {
		return nil, err
	}

	mac := cfg.MAC
	if mac == ([6]byte{}) {
		mac = defaultMAC(name)
	}
	p.info = engine.PortInfo{
		Name:     name,
		Driver:   "tap",
		MAC:      mac,
		MTU:      cfg.MTU,
		RxQueues: cfg.Queues,
		TxQueues: cfg.Queues,
		// The kernel queues frames for the port in a ring of tx_queue_len;
		// a write goes straight into the kernel's receive path, no ring.
		RxRingSize: kernelTxQueueLen,
		TxRingSize: 0,
		// The kernel picks the queue of each flow (tun_select_queue); the
		// port sees no hash, so it sets none on the mbufs.
		Features: engine.Features{Interrupts: true, RSS: cfg.Queues > 1},
	}

	pool, err := engine.NewPool("tap-"+name, cfg.PoolSize, 0)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	p.pool = pool
	segs := segsFor(p.maxFrame)
	for _, rq := range p.rxq {
		rq.pool = pool
		rq.cache = rq.caches.For(pool)
		rq.segs = segs
		rq.scratch = make([]byte, engine.MaxPacket)
	}
	for _, tq := range p.txq {
		tq.scratch = make([]byte, engine.MaxPacket)
	}
	irq, err := epollirq.New(fds) // fds[q] is queue q's
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	p.irq = irq
	ok = true
	return p, nil
}

// abort undoes a failed Open.
func (p *Port) abort() {
	for _, rq := range p.rxq {
		unix.Close(rq.fd)
	}
	if p.pool != nil {
		p.pool.Close()
	}
}

func openError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("open /dev/net/tun: %w: load the tun module (modprobe tun) or create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200)", err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("open /dev/net/tun: %w: run as root or grant CAP_NET_ADMIN", err)
	}
	return fmt.Errorf("open /dev/net/tun: %w", err)
}

func setIffError(name string, queues int, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("tap %s: create interface (TUNSETIFF): %w: run as root or grant CAP_NET_ADMIN", name, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("tap %s: attach (TUNSETIFF): %w: another process holds this single-queue TAP; close it or pick another name", name, err)
	case errors.Is(err, unix.EINVAL):
		mode := "single-queue"
		if queues > 1 {
			mode = "multi-queue"
		}
		return fmt.Errorf("tap %s: create interface (TUNSETIFF): %w: an interface of that name exists and is not a %s TAP; delete it (ip link del %s) or pick another name", name, err, mode, name)
	}
	return fmt.Errorf("tap %s: create interface (TUNSETIFF): %w", name, err)
}

// ifaceIoctl runs an interface ioctl on an AF_INET socket, as ifconfig does.
// The socket, and so the interface name, belong to the calling thread's
// network namespace.
func ifaceIoctl(name string, fn func(fd int, ifr *unix.Ifreq) error) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tap %s: socket for interface ioctls: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tap %s: %w", name, err)
	}
	if err := fn(s, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("tap %s: %w: no such interface in this network namespace (was it moved to another?)", name, err)
		}
		return fmt.Errorf("tap %s: %w", name, err)
	}
	return nil
}

func setMTU(name string, mtu int) error {
	return ifaceIoctl(name, func(s int, ifr *unix.Ifreq) error {
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("set MTU %d (SIOCSIFMTU): %w", mtu, err)
		}
		return nil
	})
}

// SetUp brings the interface up (IFF_UP), as `ip link set NAME up` does. It
// acts on the interface of that name in the calling thread's network
// namespace, so call it before moving the interface elsewhere, or use `ip`.
func (p *Port) SetUp() error {
	return ifaceIoctl(p.info.Name, func(s int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("read flags (SIOCGIFFLAGS): %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("set IFF_UP (SIOCSIFFLAGS): %w", err)
		}
		return nil
	})
}

// Info describes the port.
func (p *Port) Info() engine.PortInfo { return p.info }

// Name is the interface name the kernel gave the TAP.
func (p *Port) Name() string { return p.info.Name }

// Pool is the pool the port receives into.
func (p *Port) Pool() *engine.Pool { return p.pool }

func (p *Port) checkRx(q int) *rxQueue {
	if q < 0 || q >= len(p.rxq) {
		panic(fmt.Sprintf("tap %s: receive queue %d out of range 0..%d", p.info.Name, q, len(p.rxq)-1))
	}
	return p.rxq[q]
}

func (p *Port) checkTx(q int) *txQueue {
	if q < 0 || q >= len(p.txq) {
		panic(fmt.Sprintf("tap %s: transmit queue %d out of range 0..%d", p.info.Name, q, len(p.txq)-1))
	}
	return p.txq[q]
}

// fill tops the spares up to a full frame's worth, as a NIC driver refills
// its receive descriptors; it stops early if the pool is empty.
func (rq *rxQueue) fill() {
	for rq.nspare < rq.segs {
		m, err := rq.cache.Get()
		if err != nil {
			return
		}
		b, _ := m.Append(m.Tailroom()) // a fresh mbuf: the whole data room
		rq.spare[rq.nspare] = m
		iov := &rq.iov[rq.nspare]
		iov.Base = &b[0]
		iov.SetLen(len(b))
		rq.nspare++
	}
}

// take turns the first spares into a packet of size bytes just read, and
// copies any overflow from the scratch buffer into new segments.
func (rq *rxQueue) take(size int) (engine.Mbuf, engine.DropReason, bool) {
	head := rq.spare[0]
	used, left := 0, size
	for left > 0 && used < rq.nspare {
		s := rq.spare[used]
		k := min(left, int(rq.iov[used].Len))
		s.SetLen(k)
		if used > 0 {
			head.Chain(s) // at most MaxPacket bytes: no error
		}
		left -= k
		used++
	}
	copy(rq.spare[:], rq.spare[used:rq.nspare])
	copy(rq.iov[:], rq.iov[used:rq.nspare])
	rq.nspare -= used
	if left > 0 {
		if err := rq.caches.AppendBytes(head, rq.pool, rq.scratch[:left]); err != nil {
			rq.caches.Free(head)
			if errors.Is(err, engine.ErrTooLong) {
				return engine.NoMbuf, engine.DropTooLong, false
			}
			return engine.NoMbuf, engine.DropNoMbuf, false
		}
	}
	return head, 0, true
}

// RxBurst reads up to len(pkts) frames from the queue's descriptor, one
// readv each, until the kernel has no more (EAGAIN). With no mbuf to read
// into, the frame is read into scratch and dropped (rx_nombuf), so that the
// kernel's queue drains as a NIC's ring does, and the burst ends.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int {
	rq := p.rxq[q]
	n := 0
	var bytes uint64
	var drops [engine.NumDropReasons]uint64
	for n < len(pkts) {
		rq.fill()
		cnt := rq.nspare
		rq.iov[cnt].Base = &rq.scratch[0]
		rq.iov[cnt].SetLen(len(rq.scratch))
		r, _, errno := unix.Syscall(unix.SYS_READV, uintptr(rq.fd), uintptr(unsafe.Pointer(&rq.iov[0])), uintptr(cnt+1))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			if errno != unix.EAGAIN {
				drops[engine.DropError]++
			}
			break
		}
		if r == 0 { // no frame after all: nothing to take
			break
		}
		if cnt == 0 {
			drops[engine.DropNoMbuf]++
			break
		}
		m, why, ok := rq.take(int(r))
		if !ok {
			drops[why]++
			if why == engine.DropNoMbuf {
				break
			}
			continue
		}
		m.SetRxInfo(p.index, q)
		bytes += uint64(m.PktLen())
		pkts[n] = m
		n++
	}
	rq.ctr.Count(uint64(n), bytes, &drops)
	return n
}

// TxBurst writes each frame with one writev, an iovec per segment, and frees
// the frames it took. A full kernel queue (EAGAIN) ends the burst early and
// the caller keeps the rest; a frame the kernel refuses for any other reason
// is dropped and counted as an error. Frames over the MTU are dropped as too
// long.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	tq := p.checkTx(q)
	var sent, bytes, long, errs uint64
	i := 0
burst:
	for ; i < len(pkts); i++ {
		m := pkts[i]
		size := m.PktLen()
		if size > p.maxFrame {
			long++
			continue
		}
		if size < ethHeader { // the kernel refuses runts with EINVAL
			errs++
			continue
		}
		cnt := 0
		for s := m; s != engine.NoMbuf; s = s.Next() {
			d := s.Data()
			if len(d) == 0 {
				continue
			}
			if cnt == len(tq.iov) {
				cnt = -1
				break
			}
			tq.iov[cnt].Base = &d[0]
			tq.iov[cnt].SetLen(len(d))
			cnt++
		}
		if cnt < 0 { // too many segments for one writev: linearise
			m.CopyOut(tq.scratch[:size], 0)
			tq.iov[0].Base = &tq.scratch[0]
			tq.iov[0].SetLen(size)
			cnt = 1
		}
		for {
			_, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(tq.fd), uintptr(unsafe.Pointer(&tq.iov[0])), uintptr(cnt))
			switch errno {
			case 0:
				sent++
				bytes += uint64(size)
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				break burst
			default:
				errs++
			}
			break
		}
	}
	tq.done.FreeBulk(pkts[:i]) // sent or dropped: either way done with
	tq.ctr.CountTx(sent, bytes, long, errs)
	return i
}

// SetTxCaches makes the queue free the frames it sends into cs, the caches
// of the goroutine that drives it; nil restores the queue's own.
func (p *Port) SetTxCaches(q int, cs *engine.Caches) {
	tq := p.checkTx(q)
	if cs == nil {
		cs = &tq.caches
	}
	tq.done = cs
}

// RxStats returns a receive queue's counters. Frames the kernel dropped
// because the port read too slowly are the interface's tx_dropped, which
// `ip -s link` shows; the port cannot see them.
func (p *Port) RxStats(q int) engine.QueueStats {
	rq := p.checkRx(q)
	s := rq.ctr.Stats()
	s.Interrupts = p.irq.Interrupts(q)
	return s
}

// TxStats returns a transmit queue's counters.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.checkTx(q)
	s := tq.ctr.Stats()
	return s
}

// Close stops the interrupt goroutine, closes the queues' descriptors (which
// deletes the interface unless it was made persistent), returns every mbuf
// the port holds and closes its pool, which fails if mbufs of the pool are
// still out (a leak). No queue may be used during or after Close.
func (p *Port) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	var errs []error
	if err := p.irq.Close(); err != nil {
		errs = append(errs, fmt.Errorf("tap %s: %w", p.info.Name, err))
	}
	for _, rq := range p.rxq {
		for _, m := range rq.spare[:rq.nspare] {
			rq.caches.Free(m)
		}
		rq.nspare = 0
		// Forget the buffers' addresses: the pool's memory goes with it.
		rq.iov = [maxSegs + 1]unix.Iovec{}
		rq.caches.Flush()
		if err := unix.Close(rq.fd); err != nil {
			errs = append(errs, fmt.Errorf("tap %s: close queue: %w", p.info.Name, err))
		}
	}
	for _, tq := range p.txq {
		tq.iov = [maxTxIov]unix.Iovec{}
		tq.caches.Flush()
	}
	if err := p.pool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("tap %s: %w", p.info.Name, err))
	}
	return errors.Join(errs...)
}

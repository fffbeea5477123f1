package stack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
)

// MaxUDPPayload is the largest datagram a UDP socket sends.
const MaxUDPPayload = ipv4.MaxTotalLen - ipv4.HeaderLen - udp.HeaderLen

// Errors of UDP sockets.
var (
	ErrAddrInUse    = errors.New("address already in use")
	ErrNotConnected = errors.New("socket is not connected")
	ErrAddrNotAvail = errors.New("cannot assign requested address")
)

// udpTable finds sockets by local port (udp_table).
type udpTable struct {
	byPort map[uint16][]*UDPConn
}

func (t *udpTable) init() { t.byPort = map[uint16][]*UDPConn{} }

func (t *udpTable) all() []*UDPConn {
	var cs []*UDPConn
	for _, l := range t.byPort {
		cs = append(cs, l...)
	}
	return cs
}

// lookup picks the socket for a datagram, preferring the most specific
// binding: connected to the sender, then bound to the address, then to any
// address (the scoring of udp4_lib_lookup).
func (t *udpTable) lookup(src, dst netip.AddrPort) *UDPConn {
	var best *UDPConn
	bestScore := -1
	for _, c := range t.byPort[dst.Port()] {
		score := 0
		if la := c.laddr.Addr(); la.IsValid() && !la.IsUnspecified() {
			if la != dst.Addr() {
				continue
			}
			score += 2
		}
		if c.raddr.IsValid() {
			if c.raddr != src {
				continue
			}
			score += 4
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

// UDPConn is a UDP socket. It implements net.PacketConn, and net.Conn once
// connected with DialUDP.
type UDPConn struct {
	s     *Stack
	laddr netip.AddrPort
	raddr netip.AddrPort // set when connected

	mu      sync.Mutex // guards the receive queue
	rxq     []rxEntry
	rxHead  int
	rxBytes int
	rcvbuf  int

	n         *socket.Notifier
	readyMark bool // on the stack's ready list; guarded by the stack lock
	onRead    atomic.Pointer[func(*UDPConn)]
	busyPoll  atomic.Bool
	rdeadline atomic.Int64
	wdeadline atomic.Int64
	closed    atomic.Bool
	sockErr   atomic.Uint32 // a pending error (syscall.Errno), reported once by a read (sk_err)

	drops atomic.Uint64 // datagrams dropped for a full receive buffer
}

// rxEntry is a queued datagram: its packet, where the payload starts, its
// length, and its sender.
type rxEntry struct {
	m    engine.Mbuf
	off  int
	n    int
	from netip.AddrPort
	cost int
}

// ListenUDP opens a UDP socket bound to laddr (an unspecified address binds
// every address; port 0 picks an ephemeral port).
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	return s.openUDP(laddr, netip.AddrPort{})
}

// DialUDP opens a UDP socket connected to raddr: it sends there by default
// and receives only from there. A zero laddr picks an address and port.
func (s *Stack) DialUDP(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	if !raddr.IsValid() || !raddr.Addr().Is4() || raddr.Port() == 0 {
		return nil, fmt.Errorf("dial udp %v: need an IPv4 address and a port", raddr)
	}
	return s.openUDP(laddr, raddr)
}

func (s *Stack) openUDP(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	addr := laddr.Addr()
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	if !addr.Is4() {
		return nil, fmt.Errorf("listen udp %v: IPv4 only", laddr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("listen udp %v: %w", laddr, net.ErrClosed)
	}
	if !addr.IsUnspecified() {
		if r, ok := s.routes.Lookup(addr); !ok || r.Kind != route.KindLocal {
			return nil, fmt.Errorf("listen udp %v: %w", laddr, ErrAddrNotAvail)
		}
	}
	port := laddr.Port()
	if port == 0 {
		var err error
		port, err = s.ports.pick(addr, raddr, func(p uint16) bool { return len(s.udp.byPort[p]) == 0 })
		if err != nil {
			return nil, fmt.Errorf("listen udp %v: %w %v (ip_local_port_range): %w", laddr, err, s.ports.rng, ErrAddrInUse)
		}
	}
	for _, c := range s.udp.byPort[port] {
		ca := c.laddr.Addr()
		if ca.IsUnspecified() || addr.IsUnspecified() || ca == addr {
			return nil, fmt.Errorf("listen udp %v: %w", netip.AddrPortFrom(addr, port), ErrAddrInUse)
		}
	}
	c := &UDPConn{s: s, laddr: netip.AddrPortFrom(addr, port), raddr: raddr, rcvbuf: s.rcvbuf, n: socket.NewNotifier(&s.counters)}
	c.busyPoll.Store(s.Mode() == ModePMD)
	s.udp.byPort[port] = append(s.udp.byPort[port], c)
	return c, nil
}

// udpInput delivers a datagram to its socket (udp_rcv), or answers port
// unreachable. m starts at the IPv4 header h.
func (s *Stack) udpInput(dev *device, m engine.Mbuf, h ipv4.Header) {
	hl := int(h.HeaderLen)
	n := m.PktLen() - hl
	var uh udp.Header
	var err error
	if first := m.Data(); m.Next() == engine.NoMbuf {
		uh, err = udp.Parse(first[hl:])
	} else if len(first) >= hl+udp.HeaderLen && n >= udp.HeaderLen {
		// A reassembled datagram spans segments: the header is in the first.
		b := first[hl:]
		uh = udp.Header{SrcPort: binary.BigEndian.Uint16(b[0:]), DstPort: binary.BigEndian.Uint16(b[2:]),
			Length: binary.BigEndian.Uint16(b[4:]), Checksum: binary.BigEndian.Uint16(b[6:])}
		if uh.Length < udp.HeaderLen || int(uh.Length) > n {
			err = udp.ErrLength
		}
	} else {
		err = udp.ErrTruncated
	}
	if err != nil {
		s.stats.UDPInErrors++
		s.cs.Free(m)
		return
	}
	if m.Flags()&engine.FlagRxL4CsumGood == 0 && !udp.VerifyMbuf(m, hl, int(uh.Length), h.Src, h.Dst) {
		s.stats.UDPInCsumErrors++
		s.stats.UDPInErrors++
		s.cs.Free(m)
		return
	}
	src := netip.AddrPortFrom(netip.AddrFrom4(h.Src), uh.SrcPort)
	dst := netip.AddrPortFrom(netip.AddrFrom4(h.Dst), uh.DstPort)
	c := s.udp.lookup(src, dst)
	if c == nil {
		s.stats.UDPNoPorts++
		bcast := h.Dst == [4]byte{255, 255, 255, 255} || h.Dst == broadcastOf(dev)
		if bcast {
			s.cs.Free(m)
			return
		}
		s.icmpError(m, h, icmpDestUnreach, icmpPortUnreach, 0)
		return
	}
	e := rxEntry{m: m, off: hl + udp.HeaderLen, n: int(uh.Length) - udp.HeaderLen, from: src, cost: m.Segs() * engine.BufSize}
	c.mu.Lock()
	if c.rxBytes+e.cost > c.rcvbuf {
		c.mu.Unlock()
		s.stats.UDPRcvbufErrors++
		c.drops.Add(1)
		s.cs.Free(m)
		return
	}
	c.rxq = append(c.rxq, e)
	c.rxBytes += e.cost
	c.mu.Unlock()
	s.stats.UDPInDatagrams++
	if !c.readyMark {
		c.readyMark = true
		s.ready = append(s.ready, c)
	}
}

// udpErr is UDP's ICMP error handler (__udp4_lib_err). The quoted datagram
// is one we sent: its source is our end, its destination the peer. Only a
// connected socket whose 4-tuple it matches is told, and only of a hard
// error, as Linux does for a socket without IP_RECVERR: an unconnected
// socket could not tell which of its peers the error is about. An error
// quoting any other flow does nothing. Under the stack lock.
func (s *Stack) udpErr(e icmpErrInfo) {
	if len(e.transport) < udp.HeaderLen {
		return
	}
	local := netip.AddrPortFrom(netip.AddrFrom4(e.quoted.Src), binary.BigEndian.Uint16(e.transport[0:]))
	remote := netip.AddrPortFrom(netip.AddrFrom4(e.quoted.Dst), binary.BigEndian.Uint16(e.transport[2:]))
	c := s.udp.lookup(remote, local)
	if c == nil {
		s.stats.ICMPInErrors++ // about no socket of ours, as __udp4_lib_err counts it
		return
	}
	if !e.hard || c.raddr != remote {
		return
	}
	c.sockErr.Store(uint32(e.errno))
	if !c.readyMark { // wake its readers (sk_error_report)
		c.readyMark = true
		s.ready = append(s.ready, c)
	}
}

// takeReady hands over the sockets that got data. Called under the lock.
func (s *Stack) takeReady() []*UDPConn {
	if len(s.ready) == 0 {
		return nil
	}
	r := s.ready
	s.ready = nil
	for _, c := range r {
		c.readyMark = false
	}
	return r
}

// notify runs the data-ready callbacks (sk_data_ready) outside the lock:
// wake parked readers and pollers, or run the socket's read handler on the
// calling goroutine (the poll loop, in PMD mode).
func (s *Stack) notify(ready []*UDPConn) {
	for _, c := range ready {
		c.n.DataReady()
		if h := c.onRead.Load(); h != nil {
			(*h)(c)
		}
	}
	if cap(ready) > 0 {
		s.mu.Lock()
		if s.ready == nil {
			s.ready = ready[:0] // reuse the array
		}
		s.mu.Unlock()
	}
}

// SetReadHandler makes the stack call h on its own goroutine, outside its
// lock, whenever datagrams arrive: the application runs in the poll loop, as
// with F-Stack or Seastar. h should read what is queued and return quickly.
func (c *UDPConn) SetReadHandler(h func(*UDPConn)) {
	if h == nil {
		c.onRead.Store(nil)
		return
	}
	c.onRead.Store(&h)
}

// SetBusyPoll chooses how a blocking read waits: spinning on the queue
// (poll mode's way; the default under ModePMD) or parking on the socket's
// wait queue until the data-ready callback (the default under ModeNAPI).
func (c *UDPConn) SetBusyPoll(on bool) { c.busyPoll.Store(on) }

// Readiness reports what the socket is ready for, for pollers. A pending
// ICMP error makes it readable, as EPOLLERR does, until a read reports it.
func (c *UDPConn) Readiness() socket.Events {
	ev := socket.Writable
	if c.closed.Load() {
		return ev | socket.Hangup | socket.Readable
	}
	if c.sockErr.Load() != 0 {
		return ev | socket.Readable
	}
	c.mu.Lock()
	if c.rxHead < len(c.rxq) {
		ev |= socket.Readable
	}
	c.mu.Unlock()
	return ev
}

// Notifier is the socket's wait queue and poller list.
func (c *UDPConn) Notifier() *socket.Notifier { return c.n }

func (c *UDPConn) readable() bool {
	if c.closed.Load() || c.sockErr.Load() != 0 {
		return true
	}
	c.mu.Lock()
	ok := c.rxHead < len(c.rxq)
	c.mu.Unlock()
	return ok
}

// ReadFromUDPAddrPort reads one datagram into b, waiting for one if none is
// queued; a datagram longer than b is truncated, as on a kernel socket.
//
// As with the net package, a closed socket fails with net.ErrClosed and a
// read deadline already past fails at once with os.ErrDeadlineExceeded,
// even when data is queued; both come wrapped in a *net.OpError. So does an
// error an ICMP message reported for a connected socket's flow (see
// udpErr): it comes before queued data, once, as a recvfrom on Linux
// returns sk_err.
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		if c.closed.Load() {
			return 0, netip.AddrPort{}, c.opError("read", nil, net.ErrClosed)
		}
		if d := c.rdeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
			return 0, netip.AddrPort{}, c.opError("read", nil, socket.ErrTimeout)
		}
		if c.sockErr.Load() != 0 {
			if e := syscall.Errno(c.sockErr.Swap(0)); e != 0 {
				return 0, netip.AddrPort{}, c.opError("read", nil, os.NewSyscallError("recvfrom", e))
			}
		}
		if n, from, ok := c.dequeue(b); ok {
			return n, from, nil
		}
		if err := c.wait(); err != nil {
			return 0, netip.AddrPort{}, c.opError("read", nil, err)
		}
	}
}

// dequeue takes the first queued datagram into b, if there is one.
func (c *UDPConn) dequeue(b []byte) (int, netip.AddrPort, bool) {
	c.mu.Lock()
	if c.rxHead == len(c.rxq) {
		c.mu.Unlock()
		return 0, netip.AddrPort{}, false
	}
	e := c.rxq[c.rxHead]
	c.rxq[c.rxHead] = rxEntry{}
	c.rxHead++
	if c.rxHead == len(c.rxq) {
		c.rxq, c.rxHead = c.rxq[:0], 0
	}
	c.rxBytes -= e.cost
	n := e.m.CopyOut(b[:min(len(b), e.n)], e.off)
	c.mu.Unlock()
	c.s.sockFree.free(e.m)
	return n, e.from, true
}

// TryRead is ReadFromUDPAddrPort that never waits: ok is false when nothing
// is queued or the socket is closed. It ignores the read deadline and
// leaves a pending ICMP error for the next blocking read. Read handlers and
// busy-polling applications use it.
func (c *UDPConn) TryRead(b []byte) (n int, from netip.AddrPort, ok bool) {
	if c.closed.Load() {
		return 0, netip.AddrPort{}, false
	}
	return c.dequeue(b)
}

// opError wraps err as the net package does, so that callers written for
// net.Conn test it the usual way. Only the errors of the net.Conn contract
// (closed, deadline) are wrapped: the stack's own send errors stay bare
// sentinels, so a send that fails in a hot loop allocates nothing.
func (c *UDPConn) opError(op string, addr net.Addr, err error) error {
	if addr == nil {
		addr = c.RemoteAddr()
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
}

// wait blocks until the queue may have data, by spinning or parking.
func (c *UDPConn) wait() error {
	var deadline time.Time
	if d := c.rdeadline.Load(); d != 0 {
		deadline = time.Unix(0, d)
	}
	if c.busyPoll.Load() {
		d0 := c.rdeadline.Load()
		for spins := 0; !c.readable() && c.rdeadline.Load() == d0; spins++ {
			c.s.counters.Spins.Add(1)
			if spins&63 == 63 && !deadline.IsZero() && !time.Now().Before(deadline) {
				return socket.ErrTimeout
			}
			runtime.Gosched()
		}
		return nil
	}
	// A new deadline set while we sleep wakes us to wait again under it.
	d0 := c.rdeadline.Load()
	return c.n.Readers.Wait(func() bool { return c.readable() || c.rdeadline.Load() != d0 }, deadline, false)
}

// ReadFrom implements net.PacketConn.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn for a connected socket.
func (c *UDPConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(b)
	return n, err
}

// WriteToUDPAddrPort sends b as one datagram to addr.
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	if d := c.wdeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), socket.ErrTimeout)
	}
	if len(b) > MaxUDPPayload {
		return 0, ErrTooBig
	}
	if !addr.Addr().Is4() || addr.Port() == 0 {
		return 0, fmt.Errorf("udp: cannot send to %v: need an IPv4 address and a port", addr)
	}
	s := c.s
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	err := s.udpOutput(c, b, addr)
	s.flushTx()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteBatchTo sends each of bufs as a datagram to addr under one lock and
// one transmit burst, as sendmmsg does. It returns how many it sent; the
// error is the first one met.
func (c *UDPConn) WriteBatchTo(bufs [][]byte, addr netip.AddrPort) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	if !addr.Addr().Is4() || addr.Port() == 0 {
		return 0, fmt.Errorf("udp: cannot send to %v: need an IPv4 address and a port", addr)
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	defer s.flushTx()
	for i, b := range bufs {
		if len(b) > MaxUDPPayload {
			return i, ErrTooBig
		}
		if err := s.udpOutput(c, b, addr); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// udpOutput builds the datagram and sends it (udp_sendmsg). Under the lock.
func (s *Stack) udpOutput(c *UDPConn, b []byte, to netip.AddrPort) error {
	dst := to.Addr().As4()
	src := c.laddr.Addr().As4()
	if c.laddr.Addr().IsUnspecified() {
		r, ok := s.routes.Lookup(to.Addr())
		if !ok {
			s.stats.IPOutNoRoutes++
			return ErrNoRoute
		}
		dev := s.devs[r.Dev]
		if r.Kind == route.KindLocal {
			src = dst // to one of our own addresses: from it
		} else {
			src = s.sourceFor(dev, r)
		}
	}
	m, err := s.cs.Alloc(s.pool)
	if err != nil {
		s.stats.NoMbuf++
		return ErrNoBuffers
	}
	// The payload goes after the headroom; the headers go in front of it.
	if len(b) > 0 {
		if err := s.cs.AppendBytes(m, s.pool, b); err != nil {
			s.cs.Free(m)
			s.stats.NoMbuf++
			return ErrNoBuffers
		}
	}
	hdr, err := m.Prepend(udp.HeaderLen)
	if err != nil {
		s.cs.Free(m)
		return err
	}
	length := uint16(udp.HeaderLen + len(b))
	udp.Header{SrcPort: c.laddr.Port(), DstPort: to.Port(), Length: length}.Put(hdr)
	sum := udp.ChecksumMbuf(m, 0, int(length), src, dst)
	binary.BigEndian.PutUint16(hdr[6:8], sum)
	s.stats.UDPOutDatagrams++
	return s.ipOutput(src, dst, ipv4.ProtoUDP, m)
}

// WriteTo implements net.PacketConn.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	default:
		p, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, fmt.Errorf("udp: cannot send to %v: %w", addr, err)
		}
		ap = p
	}
	return c.WriteToUDPAddrPort(b, ap)
}

// Write implements net.Conn for a connected socket.
func (c *UDPConn) Write(b []byte) (int, error) {
	if !c.raddr.IsValid() {
		return 0, ErrNotConnected
	}
	return c.WriteToUDPAddrPort(b, c.raddr)
}

// Close releases the socket and frees what it had queued.
func (c *UDPConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opError("close", nil, net.ErrClosed)
	}
	s := c.s
	s.mu.Lock()
	if s.udp.remove(c) {
		c.purge() // else Stack.Close took it out and purged it
	}
	s.mu.Unlock()
	c.n.Close()
	return nil
}

// remove takes c out of the table, reporting whether it was there.
func (t *udpTable) remove(c *UDPConn) bool {
	port := c.laddr.Port()
	l := t.byPort[port]
	for i, x := range l {
		if x != c {
			continue
		}
		l = append(l[:i], l[i+1:]...)
		if len(l) == 0 {
			delete(t.byPort, port)
		} else {
			t.byPort[port] = l
		}
		return true
	}
	return false
}

// purge frees what the socket has queued. Under the stack lock, after the
// socket left the table, so that nothing queues more and Stack.Close knows
// every socket's packets are back in their pools before it releases them.
func (c *UDPConn) purge() {
	c.mu.Lock()
	for _, e := range c.rxq[c.rxHead:] {
		c.s.sockFree.free(e.m)
	}
	c.rxq, c.rxHead, c.rxBytes = nil, 0, 0
	c.mu.Unlock()
}

// Drops counts datagrams dropped because the receive buffer was full.
func (c *UDPConn) Drops() uint64 { return c.drops.Load() }

// LocalAddr is the bound address.
func (c *UDPConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.laddr) }

// RemoteAddr is the connected peer, or nil.
func (c *UDPConn) RemoteAddr() net.Addr {
	if !c.raddr.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(c.raddr)
}

// LocalAddrPort is the bound address.
func (c *UDPConn) LocalAddrPort() netip.AddrPort { return c.laddr }

// SetDeadline sets both deadlines.
func (c *UDPConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds blocking reads; the zero time removes the bound.
func (c *UDPConn) SetReadDeadline(t time.Time) error {
	c.rdeadline.Store(unixNano(t))
	c.n.Readers.Wake() // let sleepers re-check against the new deadline
	return nil
}

// SetWriteDeadline bounds writes.
func (c *UDPConn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.Store(unixNano(t))
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

var (
	_ net.PacketConn = (*UDPConn)(nil)
	_ net.Conn       = (*UDPConn)(nil)
)

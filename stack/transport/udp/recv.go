package udp

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/socket"
)

// rxEntry is a queued datagram: its packet, where the payload starts and
// its length, its sender, and what it costs the receive buffer. No
// pointers, so a long queue is nothing for the garbage collector to scan.
type rxEntry struct {
	m     engine.Mbuf
	off   int32
	n     int32
	cost  int32
	from  [4]byte
	fport uint16
}

// rxRing is a receive queue: a ring that doubles when full. Its size is
// bounded by the receive buffer over the smallest cost of a datagram (one
// buffer), so it stops growing once a socket has met its busiest burst.
type rxRing struct {
	buf  []rxEntry
	head int
	n    int
}

func (r *rxRing) len() int { return r.n }

func (r *rxRing) push(e rxEntry) {
	if r.n == len(r.buf) {
		nb := make([]rxEntry, max(8, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *rxRing) pop() rxEntry {
	e := r.buf[r.head]
	r.buf[r.head] = rxEntry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return e
}

// Deliver queues a datagram for the socket: n payload bytes at off in m,
// from the sender from (the enqueue half of udp_queue_rcv_skb). A shard
// calls it on its receive path; it takes only the socket's own lock. It
// takes m and returns true, or returns false and leaves m to the caller,
// who frees it and counts UDPRcvbufErrors: when the receive buffer is full
// (counted in Drops too), or when the socket is closed. The caller then
// calls Notify, once per burst, after releasing its own lock.
func (c *Conn) Deliver(m engine.Mbuf, off, n int, from netip.AddrPort) bool {
	cost := m.Segs() * engine.BufSize
	e := rxEntry{m: m, off: int32(off), n: int32(n), cost: int32(cost), from: from.Addr().As4(), fport: from.Port()}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return false
	}
	if c.rxBytes+cost > c.rcvbuf {
		c.mu.Unlock()
		c.drops.Add(1)
		return false
	}
	c.rxq.push(e)
	c.rxBytes += cost
	c.mu.Unlock()
	return true
}

// Notify is the data-ready callback (sk_data_ready, and sk_error_report
// when an ICMP error is pending): it wakes a parked reader and the pollers
// that asked, then runs the socket's read handler on the calling goroutine
// (the poll loop, in poll mode). A shard calls it once per burst for each
// socket that got data or an error, after releasing its lock. Readers wait
// exclusively, so one wake-up rouses one reader; a reader that leaves more
// behind hands the wake-up on (see dequeue).
func (c *Conn) Notify() {
	ev := socket.Readable
	if c.sockErr.Load() != 0 {
		ev |= socket.Error
	}
	c.n.Notify(ev)
	if h := c.onRead.Load(); h != nil {
		(*h)(c)
	}
}

// readable reports whether a read would return at once.
func (c *Conn) readable() bool {
	return c.closed.Load() || c.sockErr.Load() != 0 || c.queued()
}

// queued reports whether a datagram is queued.
func (c *Conn) queued() bool {
	c.mu.Lock()
	ok := c.rxq.len() > 0
	c.mu.Unlock()
	return ok
}

// passOn wakes the next parked reader if a datagram or an error is left
// for it: one Notify may stand for a burst, and each wake-up rouses one
// exclusive reader. With nobody parked it costs a load.
func (c *Conn) passOn() { c.n.Readers.PassOn(c.readable) }

// dequeue takes the first queued datagram into b, if there is one. The
// copy runs outside the queue's lock, so shards delivering to the socket
// wait only for the unlink; readers counts the copies in flight, so that
// release can tell when every taken packet is freed.
func (c *Conn) dequeue(b []byte) (int, netip.AddrPort, bool) {
	c.readers.Add(1)
	defer c.readers.Add(-1)
	c.mu.Lock()
	if c.rxq.len() == 0 || c.dead {
		c.mu.Unlock()
		return 0, netip.AddrPort{}, false
	}
	e := c.rxq.pop()
	c.rxBytes -= int(e.cost)
	c.mu.Unlock()
	c.passOn()
	n := e.m.CopyOut(b[:min(len(b), int(e.n))], int(e.off))
	c.st.FreeRead(e.m)
	return n, netip.AddrPortFrom(netip.AddrFrom4(e.from), e.fport), true
}

// TryRead is ReadFromUDPAddrPort that never waits: ok is false when
// nothing is queued or the socket is closed. It ignores the read deadline
// and leaves a pending ICMP error for the next blocking read. Read handlers
// and busy-polling applications use it; it allocates nothing.
func (c *Conn) TryRead(b []byte) (n int, from netip.AddrPort, ok bool) {
	if c.closed.Load() {
		return 0, netip.AddrPort{}, false
	}
	return c.dequeue(b)
}

// ReadFromUDPAddrPort reads one datagram into b, waiting for one if none
// is queued; a datagram longer than b is truncated, as on a kernel socket.
//
// As with the net package, a closed socket fails with net.ErrClosed and a
// read deadline already past fails at once with os.ErrDeadlineExceeded,
// even when data is queued; both come wrapped in a *net.OpError. So does an
// error an ICMP message reported for a connected socket's flow (see
// Table.Err): it comes before queued data, once, as a recvfrom on Linux
// returns sk_err.
func (c *Conn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		if c.closed.Load() {
			return 0, netip.AddrPort{}, c.opError("read", nil, net.ErrClosed)
		}
		if d := c.rdeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
			c.passOn() // a wake-up meant for us goes to another reader
			return 0, netip.AddrPort{}, c.opError("read", nil, socket.ErrTimeout)
		}
		if c.sockErr.Load() != 0 {
			if e := syscall.Errno(c.sockErr.Swap(0)); e != 0 {
				c.passOn()
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

// wait blocks until the queue may have data, by spinning or parking.
func (c *Conn) wait() error {
	var deadline time.Time
	d0 := c.rdeadline.Load()
	if d0 != 0 {
		deadline = time.Unix(0, d0)
	}
	if c.busyPoll.Load() {
		spins := c.st.Counters()
		for i := 0; !c.readable() && c.rdeadline.Load() == d0; i++ {
			spins.Spins.Add(1)
			if i&63 == 63 && !deadline.IsZero() && !time.Now().Before(deadline) {
				return socket.ErrTimeout
			}
			runtime.Gosched()
		}
		return nil
	}
	// Exclusively: one wake-up, one reader (the caller consumes or passes
	// on). A new deadline wakes every sleeper to wait again under it.
	return c.n.Readers.Wait(func() bool { return c.readable() || c.rdeadline.Load() != d0 }, deadline, true)
}

// ReadFrom implements net.PacketConn.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn for a connected socket.
func (c *Conn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(b)
	return n, err
}

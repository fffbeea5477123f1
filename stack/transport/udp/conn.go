package udp

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
)

// Conn is a UDP socket. It implements net.PacketConn, and net.Conn once
// connected (opened with a remote address). Every method is safe for
// concurrent use.
//
// A socket has two locks, never held together: mu guards its receive
// queue, which shards fill (Deliver) and readers empty; sendMu guards its
// send buffers, under which a writer copies its payload. Neither is held
// while the stack or a shard runs its own lock, except Deliver's brief mu.
type Conn struct {
	st     Stack
	t      *Table
	laddr  netip.AddrPort // immutable
	raddr  netip.AddrPort // immutable; valid when connected
	shard  int            // Options.Shard; immutable
	shards int            // st.Shards(); immutable
	rcvbuf int            // immutable

	mu      sync.Mutex
	rxq     rxRing // guarded by mu
	rxBytes int    // guarded by mu: buffer bytes queued, as sk_rmem_alloc
	dead    bool   // guarded by mu: released, Deliver refuses
	readers atomic.Int32

	n         *socket.Notifier
	onRead    atomic.Pointer[func(*Conn)]
	busyPoll  atomic.Bool
	rdeadline atomic.Int64
	wdeadline atomic.Int64
	closed    atomic.Bool
	sockErr   atomic.Uint32 // a pending error (syscall.Errno), reported once by a read (sk_err)
	drops     atomic.Uint64 // datagrams dropped for a full receive buffer
	noBufs    atomic.Bool   // the last send failed for want of a buffer
	starved   atomic.Bool   // on the table's starved list

	sendMu sync.Mutex
	tx     *sender // guarded by sendMu; made by the first send
	tmpl   header  // immutable
	rc     route.Cache
}

// sender is a socket's send state, made on its first send so that a
// socket that only receives costs no caches.
type sender struct {
	pool *engine.Pool
	cs   engine.Caches
	ms   [engine.Burst]engine.Mbuf
	held bool // on the table's list of sockets to trim
}

func newConn(st Stack, t *Table, laddr, raddr netip.AddrPort, o Options, rcvbuf int) *Conn {
	c := &Conn{st: st, t: t, laddr: laddr, raddr: raddr, shard: o.Shard, shards: st.Shards(), rcvbuf: rcvbuf,
		n: socket.NewNotifier(st.Counters())}
	c.busyPoll.Store(st.BusyPoll())
	c.tmpl = c.template()
	return c
}

// Close releases the socket and frees what it had queued. A second Close,
// or one after the stack closed the socket, fails with net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opError("close", nil, net.ErrClosed)
	}
	if c.t.remove(c) { // else CloseAll took it out and releases it
		c.release()
		c.t.closing.Done()
	}
	return nil
}

// release frees what a closed socket holds, once it is out of the table:
// its queued packets, its send caches; and wakes its waiters. Afterwards
// Deliver refuses, and no reader or writer touches a packet or the pool.
func (c *Conn) release() {
	c.mu.Lock()
	c.dead = true
	for c.rxq.len() > 0 {
		e := c.rxq.pop()
		c.st.FreeRead(e.m)
	}
	c.rxq = rxRing{}
	c.rxBytes = 0
	c.mu.Unlock()
	// A reader that took a datagram before we marked the queue dead is
	// copying it out: wait for it to free it (a copy's time).
	for c.readers.Load() != 0 {
		runtime.Gosched()
	}
	c.sendMu.Lock() // a writer in the middle of a send finishes it first
	if c.tx != nil {
		c.tx.cs.Close() // a trim that still lists the socket finds tx nil
		c.tx = nil
	}
	c.sendMu.Unlock()
	c.n.Close()
}

// SetReadHandler makes the stack call h on its own goroutine, outside its
// locks, whenever datagrams arrive (Notify): the application runs in the
// poll loop, as with F-Stack or Seastar. h should read what is queued with
// TryRead and return quickly.
func (c *Conn) SetReadHandler(h func(*Conn)) {
	if h == nil {
		c.onRead.Store(nil)
		return
	}
	c.onRead.Store(&h)
}

// SetBusyPoll chooses how a blocking read waits: spinning on the queue
// (poll mode's way, the default when the stack polls) or parking on the
// socket's wait queue until the data-ready callback.
func (c *Conn) SetBusyPoll(on bool) { c.busyPoll.Store(on) }

// Readiness reports what the socket is ready for, for pollers (udp_poll):
// Readable with a datagram queued; Error and Readable with a pending ICMP
// error, until a read reports it; Writable unless its last send failed for
// want of a buffer and the pool is still empty; Hangup once closed.
func (c *Conn) Readiness() socket.Events {
	if c.closed.Load() {
		return socket.Readable | socket.Writable | socket.Hangup
	}
	var ev socket.Events
	if c.writable() {
		ev |= socket.Writable
	}
	if c.sockErr.Load() != 0 {
		ev |= socket.Error | socket.Readable
	} else if c.queued() {
		ev |= socket.Readable
	}
	return ev
}

// writable reports whether a send would find a buffer (sock_writeable). It
// costs a load while sends succeed; after one failed it tries the pool,
// unless a writer is busy, whose send will settle it.
func (c *Conn) writable() bool {
	if !c.noBufs.Load() {
		return true
	}
	if !c.sendMu.TryLock() {
		return false
	}
	defer c.sendMu.Unlock()
	tx := c.sendState()
	if tx == nil {
		return false
	}
	m, err := tx.cs.Alloc(tx.pool)
	if err != nil {
		return false
	}
	tx.cs.Free(m)
	c.noBufs.Store(false)
	return true
}

// starve marks the socket short of buffers and lists it with the table,
// whose Tick tells its pollers when buffers are back.
func (c *Conn) starve() {
	if c.noBufs.CompareAndSwap(false, true) && c.starved.CompareAndSwap(false, true) {
		c.t.starve(c)
	}
}

// Notifier is the socket's wait queue and poller list.
func (c *Conn) Notifier() *socket.Notifier { return c.n }

// Drops counts datagrams dropped because the receive buffer was full.
func (c *Conn) Drops() uint64 { return c.drops.Load() }

// LocalAddr is the bound address.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.laddr) }

// RemoteAddr is the connected peer, or nil.
func (c *Conn) RemoteAddr() net.Addr {
	if !c.raddr.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(c.raddr)
}

// LocalAddrPort is the bound address.
func (c *Conn) LocalAddrPort() netip.AddrPort { return c.laddr }

// RemoteAddrPort is the connected peer, or the zero AddrPort.
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.raddr }

// Shard is the shard the socket is bound to, or AnyShard.
func (c *Conn) Shard() int { return c.shard }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds blocking reads; the zero time removes the bound.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdeadline.Store(unixNano(t))
	c.n.Readers.WakeAll() // let sleepers re-check against the new deadline
	return nil
}

// SetWriteDeadline bounds writes. A send never waits, so only a deadline
// already past matters: it fails the send.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.Store(unixNano(t))
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// opError wraps err as the net package does, so that callers written for
// net.Conn test it the usual way. Only the errors of the net.Conn contract
// (closed, deadline, a reported ICMP error) are wrapped: the send path's
// own errors stay bare sentinels, so a send that fails in a hot loop
// allocates nothing.
func (c *Conn) opError(op string, addr net.Addr, err error) error {
	if addr == nil {
		addr = c.RemoteAddr()
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
}

var (
	_ net.PacketConn = (*Conn)(nil)
	_ net.Conn       = (*Conn)(nil)
)

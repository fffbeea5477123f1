package tcp

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/tcp/cookie"
)

// Listener is a listening socket: it answers SYNs to its address and port,
// and queues the connections that complete the handshake until Accept
// takes them (the accept queue, bounded by min(backlog, somaxconn)). A
// half-open connection lives on the shard its SYN arrived on, counted in
// the listener's SYN queue (tcp_max_syn_backlog); past that bound, SYN
// cookies answer without keeping anything.
type Listener struct {
	t       *Table
	addr    [4]byte // zero: every address
	port    uint16
	backlog int
	opts    Options

	mu     sync.Mutex
	q      []*Conn
	closed bool

	synq atomic.Int32 // half-open connections
	// cookieAt is when a SYN cookie was last sent (0: never); ACKs are
	// checked as cookies only for as long as one may be valid.
	cookieAt atomic.Int64
	n        *socket.Notifier
	dl       atomic.Int64 // accept deadline, Unix ns
}

// Addr is the listener's local address (net.Listener).
func (l *Listener) Addr() net.Addr {
	return net.TCPAddrFromAddrPort(l.AddrPort())
}

// AddrPort is the listener's local address.
func (l *Listener) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(l.addr), l.port)
}

// Accept waits for and returns the next connection (net.Listener).
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next connection.
func (l *Listener) AcceptTCP() (*Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, l.opError(net.ErrClosed)
		}
		if len(l.q) > 0 {
			c := l.q[0]
			copy(l.q, l.q[1:])
			l.q[len(l.q)-1] = nil
			l.q = l.q[:len(l.q)-1]
			c.inAcceptQ = false
			c.parent = nil
			l.mu.Unlock()
			l.t.hold(c)
			return c, nil
		}
		l.mu.Unlock()
		d0 := l.dl.Load()
		var deadline time.Time
		if d0 != 0 {
			if time.Now().UnixNano() >= d0 {
				return nil, l.opError(socket.ErrTimeout)
			}
			deadline = time.Unix(0, d0)
		}
		err := l.n.Readers.Wait(func() bool { return l.ready() || l.dl.Load() != d0 }, deadline, true)
		if err != nil && err != socket.ErrTimeout {
			return nil, l.opError(net.ErrClosed)
		}
	}
}

func (l *Listener) ready() bool {
	l.mu.Lock()
	r := len(l.q) > 0 || l.closed
	l.mu.Unlock()
	return r
}

// SetDeadline sets the time after which Accept fails.
func (l *Listener) SetDeadline(t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	l.dl.Store(d)
	l.n.Readers.WakeAll()
	return nil
}

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
}

// Readiness reports whether a connection waits (socket.Pollable).
func (l *Listener) Readiness() socket.Events {
	if l.ready() {
		return socket.Readable
	}
	return 0
}

// Notifier is the listener's notifier (socket.Pollable).
func (l *Listener) Notifier() *socket.Notifier { return l.n }

// Close stops listening and resets the connections nobody accepted.
func (l *Listener) Close() error {
	if !l.t.enter() {
		return l.opError(net.ErrClosed)
	}
	defer l.t.leave()
	return l.close()
}

func (l *Listener) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.opError(net.ErrClosed)
	}
	l.closed = true
	q := l.q
	l.q = nil
	l.mu.Unlock()
	l.t.removeListener(l)
	for _, c := range q {
		c.sh.Lock()
		c.inAcceptQ = false
		c.parent = nil
		if c.state != Closed {
			c.sendReset(c.sndNxt, c.rcvNxt, true)
			c.orphan = true
			c.abort(ErrReset)
		}
		c.sh.Unlock()
	}
	l.n.Close()
	return nil
}

// full reports an accept queue at its bound.
func (l *Listener) full() bool {
	l.mu.Lock()
	f := len(l.q) >= l.backlog
	l.mu.Unlock()
	return f
}

// enqueue puts a connection that completed its handshake on the accept
// queue. Under the connection's shard lock.
func (l *Listener) enqueue(c *Conn) {
	l.synq.Add(-1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.parent = nil
		c.sendReset(c.sndNxt, c.rcvNxt, true)
		c.orphan = true
		c.abort(ErrReset)
		return
	}
	l.q = append(l.q, c)
	c.inAcceptQ = true
	l.mu.Unlock()
	l.n.Notify(socket.Readable)
}

// forget drops a connection that ended before it was accepted. Under the
// connection's shard lock.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	if !c.inAcceptQ {
		l.mu.Unlock()
		if c.state != Established { // still half-open: leave the SYN queue
			l.synq.Add(-1)
		}
		c.parent = nil
		return
	}
	for i, x := range l.q {
		if x == c {
			l.q = append(l.q[:i], l.q[i+1:]...)
			break
		}
	}
	c.inAcceptQ = false
	c.parent = nil
	l.mu.Unlock()
}

// listenInput handles a segment for listener l that matched no connection
// (tcp_v4_conn_request and cookie_v4_check). Under the shard lock.
func (ts *tableShard) listenInput(l *Listener, tu Tuple, sg *segment) {
	ctr := ts.host.Counters()
	t := ts.t
	switch {
	case sg.has(tcpheader.RST):
		return
	case sg.has(tcpheader.ACK):
		// Only after a recent overflow (tcp_synq_no_recent_overflow): a
		// stray ACK is neither a guess at a cookie nor a failed one.
		if at := l.cookieAt.Load(); !sg.has(tcpheader.SYN) && !t.cfg.NoSyncookies && at != 0 &&
			sg.now-at < cookie.MaxAge*cookie.Tick {
			if ts.cookieAck(l, tu, sg) {
				return
			}
		}
		ts.resetFor(tu, sg)
		return
	case !sg.has(tcpheader.SYN), sg.has(tcpheader.FIN):
		return // SYN+FIN too: no connection starts with one (tcp_rcv_state_process)
	}
	if l.full() {
		ctr.ListenOverflows++
		ctr.ListenDrops++
		return
	}
	if int(l.synq.Load()) >= t.cfg.SynBacklog {
		if t.cfg.NoSyncookies {
			ctr.ListenDrops++
			return
		}
		if sg.now-l.cookieAt.Load() >= int64(time.Second) { // once a second: shards share it
			l.cookieAt.Store(sg.now)
		}
		ts.sendCookie(tu, sg)
		return
	}
	c, err := t.newConn(ts, tu, l.opts)
	if err != nil {
		ctr.ListenDrops++
		return
	}
	c.passive, c.parent = true, l
	l.synq.Add(1)
	c.state = SynReceived
	c.irs = sg.seq
	c.rcvNxt = sg.seq.Add(1)
	c.rcvWup = c.rcvNxt
	c.applySynOptions(sg)
	c.sndWnd = uint32(sg.wnd)
	c.lastRecv = sg.now
	ts.conns[tu] = c
	ctr.PassiveOpens++
	c.sendSynAck()
}

// sendCookie answers a SYN with a SYN-ACK whose sequence number encodes
// the connection (RFC 4987 3.6), keeping nothing.
func (ts *tableShard) sendCookie(tu Tuple, sg *segment) {
	mss := 536
	if sg.opts.Has(tcpheader.HasMSS) {
		mss = int(sg.opts.MSS)
	}
	isn := cookie.Make(ts.t.key, tu.Local, tu.Remote, tu.LocalPort, tu.RemotePort, sg.seq, mss, sg.now)
	ts.host.Counters().SyncookiesSent++
	m, err := ts.host.Caches().Alloc(ts.host.Pool())
	if err != nil {
		return
	}
	_, mtu, ok := ts.t.host.Route(tu.Remote)
	if !ok {
		mtu = 576
	}
	o := tcpheader.Options{Present: tcpheader.HasMSS, MSS: uint16(min(mtu, 65535) - 40)}
	ts.finish(m, tu, nil, ts.ctlID(tu), isn, sg.seq.Add(1), tcpheader.SYN|tcpheader.ACK, 65535, &o)
}

// cookieAck completes a handshake answered with a cookie: the ACK brings
// it back (cookie_v4_check). It reports whether the ACK was a valid one.
func (ts *tableShard) cookieAck(l *Listener, tu Tuple, sg *segment) bool {
	ctr := ts.host.Counters()
	t := ts.t
	mss, ok := cookie.Check(t.key, tu.Local, tu.Remote, tu.LocalPort, tu.RemotePort, back(sg.seq, 1), back(sg.ack, 1), sg.now)
	if !ok {
		ctr.SyncookiesFailed++
		return false
	}
	ctr.SyncookiesRecv++
	if l.full() {
		ctr.ListenOverflows++
		ctr.ListenDrops++
		return true
	}
	c, err := t.newConn(ts, tu, l.opts)
	if err != nil {
		return true
	}
	c.passive, c.parent = true, l
	l.synq.Add(1) // enqueue takes it back
	c.iss = back(sg.ack, 1)
	c.sndUna, c.sndNxt = sg.ack, sg.ack
	c.sndq.Init(sndqConfigAt(c, sg.ack))
	c.irs = back(sg.seq, 1)
	c.rcvNxt, c.rcvWup = sg.seq, sg.seq
	c.rcvWnd = 65535
	c.peerMSS = mss
	c.rcvWscale = 0 // the cookie kept no options
	c.sndWnd, c.maxSndWnd = uint32(sg.wnd), uint32(sg.wnd)
	c.sndWl1, c.sndWl2 = sg.seq, sg.ack
	ts.conns[tu] = c
	ctr.PassiveOpens++
	c.toEstablished(sg.now)
	l.enqueue(c)
	if sg.n > 0 {
		c.receiveData(sg)
		c.sendAckIfDue(sg.now)
	}
	return true
}

// resetFor answers a segment that no connection or listener owns with a
// RST (tcp_v4_send_reset), never a RST with a RST.
func (ts *tableShard) resetFor(tu Tuple, sg *segment) {
	if sg.has(tcpheader.RST) {
		return
	}
	k := control{tu: tu}
	if sg.has(tcpheader.ACK) {
		k.seq, k.flags = sg.ack, tcpheader.RST
	} else {
		k.ack, k.flags = sg.seq.Add(sg.len()), tcpheader.RST|tcpheader.ACK
	}
	ts.sendControl(k)
}

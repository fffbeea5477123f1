package tcp

import (
	"context"
	"io"
	"net"
	"os"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/tcp/cc"
)

// readBatch is how many receive-queue entries a reader takes per visit to
// the shard's lock.
const readBatch = 32

// writeBatch is how many buffers a writer fills per visit.
const writeBatch = 64

// LocalAddr is our end (net.Conn).
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.tuple.LocalAddr()) }

// RemoteAddr is the peer's end (net.Conn).
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.tuple.RemoteAddr()) }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// hardErr is the error that ended the connection.
func (c *Conn) hardErr() error {
	if p := c.errOnce.Load(); p != nil {
		return *p
	}
	return ErrReset
}

// Read reads what the peer sent, waiting for some; io.EOF once the peer
// closed and everything before its FIN was read (net.Conn).
func (c *Conn) Read(b []byte) (int, error) {
	if !c.t.enter() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.t.leave()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		st := c.status.Load()
		if st&stClosed != 0 {
			return 0, c.opError("read", net.ErrClosed)
		}
		if d := c.rdl.Load(); d != 0 && time.Now().UnixNano() >= d {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			return 0, nil
		}
		if len(c.rlocal) > 0 {
			return c.copyOut(b), nil
		}
		if c.avail.Load() > 0 {
			c.sh.Lock()
			c.takeRecv()
			c.sh.Unlock()
			continue
		}
		if st&(stEOF|stError|stReadShut) != 0 {
			if c.avail.Load() > 0 {
				continue // data queued before the FIN: read it first
			}
			if st&stError != 0 && st&stEOF == 0 {
				return 0, c.opError("read", c.hardErr())
			}
			return 0, io.EOF
		}
		if err := c.waitRead(); err != nil {
			if err == socket.ErrTimeout {
				continue // the deadline check above reports it
			}
			return 0, c.opError("read", net.ErrClosed)
		}
	}
}

func (c *Conn) waitRead() error {
	d0 := c.rdl.Load()
	var deadline time.Time
	if d0 != 0 {
		deadline = time.Unix(0, d0)
	}
	return c.n.Readers.Wait(func() bool {
		return c.avail.Load() > 0 || c.status.Load()&(stEOF|stError|stClosed|stReadShut) != 0 || c.rdl.Load() != d0
	}, deadline, false)
}

// takeRecv moves entries off the receive queue to the reader, and opens
// the window if that freed enough of it (tcp_cleanup_rbuf). Under the lock.
func (c *Conn) takeRecv() {
	end := min(len(c.rcvQ), c.rcvHead+readBatch)
	bytes := 0
	for _, e := range c.rcvQ[c.rcvHead:end] {
		c.rlocal = append(c.rlocal, e)
		bytes += int(e.Len)
		segs := segsOf(e.Mbuf)
		c.rcvMbufs -= segs
		c.t.mem.uncharge(segs)
	}
	clear(c.rcvQ[c.rcvHead:end])
	c.rcvHead = end
	if c.rcvHead == len(c.rcvQ) {
		c.rcvQ, c.rcvHead = c.rcvQ[:0], 0
	} else if c.rcvHead > 256 && c.rcvHead > len(c.rcvQ)/2 {
		n := copy(c.rcvQ, c.rcvQ[c.rcvHead:])
		clear(c.rcvQ[n:])
		c.rcvQ, c.rcvHead = c.rcvQ[:n], 0
	}
	c.rcvQueued -= bytes
	c.avail.Add(-int64(bytes))
	now := c.sh.Now()
	c.rcvSpaceAdjust(bytes, now)
	if c.state.synchronized() && !c.rcvFin && c.state != Closed {
		// Tell the peer when the window we can offer grew by two
		// segments or doubled since we last did.
		cur := int(c.rcvWindow())
		free := c.rcvBuf - c.rcvQueued
		if free-cur >= 2*c.rcvMSS() || (cur > 0 && free >= 2*cur) || (cur == 0 && free >= c.rcvMSS()) {
			c.sendAck(now)
		}
	}
}

// rcvSpaceAdjust is receive-buffer auto-tuning (tcp_rcv_space_adjust): once
// per RTT, a buffer twice what the application took in that RTT, so the
// window never limits a reader that keeps up.
func (c *Conn) rcvSpaceAdjust(copied int, now int64) {
	c.rcvCopied += copied
	r := c.est.SRTT()
	if r == 0 || c.rcvBufSet || now-c.rcvSpaceAt < r {
		return
	}
	if c.rcvCopied > c.rcvSpace {
		c.rcvSpace = c.rcvCopied
		if !c.t.mem.pressure() {
			want := clamp(2*c.rcvCopied+c.rcvCopied/2, c.rcvBuf, c.t.cfg.RMem[2])
			if want > c.rcvBuf {
				c.rcvBuf = want
				c.ofo.SetLimit(want)
			}
		}
	}
	c.rcvCopied, c.rcvSpaceAt = 0, now
}

// copyOut copies from the reader's entries into b, freeing the buffers it
// empties.
func (c *Conn) copyOut(b []byte) int {
	n := 0
	i := 0
	for ; i < len(c.rlocal) && n < len(b); i++ {
		e := &c.rlocal[i]
		k := min(int(e.Len), len(b)-n)
		k = e.Mbuf.CopyOut(b[n:n+k], int(e.Off))
		n += k
		e.Off += uint32(k)
		e.Len -= uint32(k)
		if e.Len > 0 {
			break
		}
		c.t.host.FreeRead(e.Mbuf)
	}
	rest := copy(c.rlocal, c.rlocal[i:])
	clear(c.rlocal[rest:])
	c.rlocal = c.rlocal[:rest]
	return n
}

// Write sends b, waiting for room in the send buffer (net.Conn).
func (c *Conn) Write(b []byte) (int, error) {
	if !c.t.enter() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.t.leave()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	var ms [writeBatch]engine.Mbuf
	var lens [writeBatch]int
	for written < len(b) {
		st := c.status.Load()
		switch {
		case st&stClosed != 0:
			return written, c.opError("write", net.ErrClosed)
		case st&stError != 0:
			return written, c.opError("write", c.hardErr())
		case st&stWriteShut != 0:
			return written, c.opError("write", ErrPipe)
		}
		if d := c.wdl.Load(); d != 0 && time.Now().UnixNano() >= d {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		space := int(c.space.Load())
		if space <= 0 {
			if err := c.waitWrite(); err != nil && err != socket.ErrTimeout {
				return written, c.opError("write", net.ErrClosed)
			}
			continue
		}
		chunk := min(space, len(b)-written)
		cnt, copied := 0, 0
		for copied < chunk && cnt < writeBatch {
			m, err := c.wcs.Alloc(c.sh.Pool())
			if err != nil {
				break
			}
			k := min(chunk-copied, m.Tailroom())
			buf, _ := m.Append(k)
			copy(buf, b[written+copied:])
			ms[cnt], lens[cnt] = m, k
			cnt++
			copied += k
		}
		if cnt == 0 {
			// The pool is empty: wait for buffers to come back, as a
			// socket waits in sk_stream_wait_memory.
			time.Sleep(50 * time.Microsecond)
			continue
		}
		c.sh.Lock()
		took := 0
		if c.state == Established || c.state == CloseWait {
			for ; took < cnt; took++ {
				if c.sndq.Append(ms[took], 0, lens[took]) != nil {
					break
				}
				written += lens[took]
			}
			c.output(c.sh.Now())
		}
		c.space.Store(int64(c.sndq.Space()))
		c.sh.Unlock()
		for _, m := range ms[took:cnt] {
			c.wcs.Free(m)
		}
		if took == 0 && c.state != Established && c.state != CloseWait {
			// State moved under us: the status tells why on the next turn.
			c.setStatus(stWriteShut)
		}
	}
	return written, nil
}

func (c *Conn) waitWrite() error {
	d0 := c.wdl.Load()
	var deadline time.Time
	if d0 != 0 {
		deadline = time.Unix(0, d0)
	}
	return c.n.Writers.Wait(func() bool {
		return c.space.Load() > 0 || c.status.Load()&(stError|stClosed|stWriteShut) != 0 || c.wdl.Load() != d0
	}, deadline, false)
}

// stReadShut marks CloseRead.
const stReadShut = stDone << 1

// CloseWrite sends our FIN once everything written has gone: the peer
// reads an end of stream, and we may go on reading (shutdown(SHUT_WR)).
func (c *Conn) CloseWrite() error {
	if c.status.Load()&stClosed != 0 || !c.t.enter() {
		return c.opError("close", net.ErrClosed)
	}
	defer c.t.leave()
	c.wmu.Lock() // after the last write has queued its data
	c.setStatus(stWriteShut)
	c.wmu.Unlock()
	c.sh.Lock()
	c.shutdownWrite(c.sh.Now())
	c.sh.Unlock()
	return nil
}

// CloseRead makes further reads end at once (shutdown(SHUT_RD)).
func (c *Conn) CloseRead() error {
	if c.status.Load()&stClosed != 0 {
		return c.opError("close", net.ErrClosed)
	}
	c.setStatus(stReadShut)
	c.n.Notify(socket.Readable)
	return nil
}

// shutdownWrite queues the FIN (tcp_shutdown). Under the lock.
func (c *Conn) shutdownWrite(now int64) {
	switch c.state {
	case Established:
		c.state = FinWait1
	case CloseWait:
		c.state = LastAck
	default:
		return
	}
	c.finQueued = true
	c.output(now)
}

// Close closes the connection (net.Conn): the FIN goes after what was
// written, in the background; unread data, or a linger of zero, resets it
// instead. With a positive linger Close waits that long for the peer to
// acknowledge everything.
func (c *Conn) Close() error {
	if old := c.status.Or(stClosed | stWriteShut); old&stClosed != 0 {
		return c.opError("close", net.ErrClosed)
	}
	if !c.t.enter() {
		return nil // the stack is closing: it frees what the connection held
	}
	defer c.t.leave()
	c.t.unhold(c)
	c.n.Readers.WakeAll()
	c.n.Writers.WakeAll()
	c.wmu.Lock()
	c.sh.Lock()
	ctr := c.sh.Counters()
	c.orphan = true
	linger := c.linger
	unread := c.rcvQueued > 0 || c.avail.Load() > 0
	now := c.sh.Now()
	switch {
	case c.state == Closed || c.state == TimeWait:
	case c.state == SynSent:
		c.abort(net.ErrClosed)
	case c.state == SynReceived:
		c.sendReset(c.sndNxt, 0, false)
		c.abort(ErrReset)
	case linger == 0:
		ctr.TCPAbortOnLinger++
		c.sendReset(c.sndNxt, 0, false)
		c.abort(ErrReset)
	case unread:
		ctr.TCPAbortOnClose++
		c.sendReset(c.sndNxt, 0, false)
		c.abort(ErrReset)
	default:
		c.shutdownWrite(now)
		if c.state == FinWait2 {
			c.armFinWait2(now)
		}
	}
	c.purgeRecv()
	c.sh.Unlock()
	c.wmu.Unlock()
	c.freeApp()
	if linger > 0 {
		deadline := time.Now().Add(time.Duration(linger) * time.Second)
		c.n.Writers.Wait(func() bool { return c.status.Load()&stDone != 0 || c.acked() }, deadline, false)
	}
	return nil
}

// freeApp gives back what the application's side holds: the writer's
// caches, the buffers a reader took, the receive queue.
func (c *Conn) freeApp() {
	c.wmu.Lock()
	c.wcs.Close()
	c.wmu.Unlock()
	c.rmu.Lock()
	for _, e := range c.rlocal {
		c.t.host.FreeRead(e.Mbuf)
	}
	c.rlocal = nil
	c.rmu.Unlock()
	c.sh.Lock()
	c.purgeRecv()
	c.sh.Unlock()
}

// acked reports everything we sent acknowledged, the FIN included.
func (c *Conn) acked() bool {
	c.sh.Lock()
	ok := c.finAcked || c.state == Closed || c.state == TimeWait
	c.sh.Unlock()
	return ok
}

// SetDeadline sets both deadlines (net.Conn).
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the time after which reads fail (net.Conn).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	c.n.Readers.WakeAll()
	return nil
}

// SetWriteDeadline sets the time after which writes fail (net.Conn).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNano(t))
	c.n.Writers.WakeAll()
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// SetNoDelay turns Nagle's algorithm off (true) or on (TCP_NODELAY).
func (c *Conn) SetNoDelay(on bool) error {
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	c.nodelay = on
	if on {
		c.output(c.sh.Now())
	}
	c.sh.Unlock()
	return nil
}

// SetKeepAlive turns keepalive probes on or off (SO_KEEPALIVE).
func (c *Conn) SetKeepAlive(on bool) error {
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	c.kaOn = on
	now := c.sh.Now()
	if on {
		c.armKeepalive(now)
	} else if c.keepalive.Armed() && c.state != FinWait2 {
		c.sh.Wheel().Cancel(&c.keepalive)
		c.sh.Moved()
	}
	c.sh.Unlock()
	return nil
}

// SetKeepAlivePeriod sets the idle time before the first probe and
// between probes (TCP_KEEPIDLE and TCP_KEEPINTVL, as Go's net does).
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	if d <= 0 {
		return c.opError("set", ErrInvalid)
	}
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	c.kaIdle, c.kaIntvl = int64(d), int64(d)
	c.armKeepalive(c.sh.Now())
	c.sh.Unlock()
	return nil
}

// SetKeepAliveProbes sets the unanswered probes after which the
// connection is given up (TCP_KEEPCNT).
func (c *Conn) SetKeepAliveProbes(n int) error {
	if n <= 0 {
		return c.opError("set", ErrInvalid)
	}
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	c.kaProbes = n
	c.sh.Unlock()
	return nil
}

// SetLinger sets what Close does with unsent data (SO_LINGER): sec < 0
// sends it in the background (the default), 0 resets the connection, and
// sec > 0 makes Close wait up to sec seconds for it to be acknowledged.
func (c *Conn) SetLinger(sec int) error {
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	c.linger = max(sec, -1)
	c.sh.Unlock()
	return nil
}

// SetCongestion switches the congestion control (TCP_CONGESTION).
func (c *Conn) SetCongestion(name string) error {
	if !c.t.enter() {
		return c.opError("set", net.ErrClosed)
	}
	defer c.t.leave()
	c.sh.Lock()
	defer c.sh.Unlock()
	mss := c.smss
	if mss == 0 {
		mss = c.mssFor()
	}
	ctl, err := cc.New(name, mss)
	if err != nil {
		return c.opError("set", err)
	}
	c.cc = ctl
	return nil
}

// Info is a connection's state, as a subset of Linux's tcp_info.
type Info struct {
	State                State
	Congestion           string
	SndMSS, RcvMSS       int
	RTT, RTTVar, RTO     time.Duration
	Cwnd, Ssthresh       int // bytes
	SndWnd, RcvWnd       int // bytes
	SndBuf, RcvBuf       int // bytes
	Unacked, Retrans     int
	Backoffs             int
	Timestamps, SACK     bool
	SndWscale, RcvWscale uint8
}

// Info reports the connection's state now (TCP_INFO).
func (c *Conn) Info() Info {
	if !c.t.enter() {
		return Info{State: Closed}
	}
	defer c.t.leave()
	c.sh.Lock()
	defer c.sh.Unlock()
	return Info{State: c.state, Congestion: c.cc.Name(), SndMSS: c.smss, RcvMSS: c.rcvMSS(),
		RTT: time.Duration(c.est.SRTT()), RTTVar: time.Duration(c.est.RTTVar()), RTO: time.Duration(c.est.RTO()),
		Cwnd: c.cc.Cwnd(), Ssthresh: c.cc.Ssthresh(), SndWnd: int(c.sndWnd), RcvWnd: int(c.rcvWnd),
		SndBuf: c.sndq.Space() + c.sndq.Len(), RcvBuf: c.rcvBuf, Unacked: int(c.sndNxt.Sub(c.sndUna)),
		Retrans: int(c.sb.Pipe()), Backoffs: c.backoffs, Timestamps: c.tsOK, SACK: c.sackOK,
		SndWscale: c.sndWscale, RcvWscale: c.rcvWscale}
}

// Readiness reports the conditions that hold now (socket.Pollable).
func (c *Conn) Readiness() socket.Events {
	st := c.status.Load()
	var ev socket.Events
	if c.avail.Load() > 0 || st&(stEOF|stError|stReadShut) != 0 {
		ev |= socket.Readable
	}
	if st&stEOF != 0 {
		ev |= socket.ReadHangup
	}
	if st&stEstablished != 0 && c.space.Load() > 0 && st&stWriteShut == 0 {
		ev |= socket.Writable
	}
	if st&stError != 0 {
		ev |= socket.Error | socket.Hangup
	} else if st&stDone != 0 && st&stEOF != 0 {
		ev |= socket.Hangup
	}
	return ev
}

// Notifier is the connection's notifier (socket.Pollable).
func (c *Conn) Notifier() *socket.Notifier { return c.n }

// waitEstablished waits for the handshake of an active open.
func (c *Conn) waitEstablished(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.n.Writers.WakeAll() })
	defer stop()
	deadline, _ := ctx.Deadline()
	for {
		st := c.status.Load()
		if st&stError != 0 {
			return c.opError("dial", c.hardErr())
		}
		if st&stEstablished != 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			c.sh.Lock()
			if c.state == SynSent {
				c.orphan = true
				c.abort(err)
			}
			c.sh.Unlock()
			return c.opError("dial", err)
		}
		c.n.Writers.Wait(func() bool {
			return c.status.Load()&(stEstablished|stError) != 0 || ctx.Err() != nil
		}, deadline, false)
	}
}

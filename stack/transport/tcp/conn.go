package tcp

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/tcp/cc"
	"github.com/pollnet/pollnet/stack/transport/tcp/challenge"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
	"github.com/pollnet/pollnet/stack/transport/tcp/rtt"
	"github.com/pollnet/pollnet/stack/transport/tcp/sack"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
	"github.com/pollnet/pollnet/stack/transport/tcp/sndq"
)

// State is a connection's state (RFC 9293 section 3.3.2).
type State uint8

// The states.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
)

var stateNames = [...]string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
	"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "?"
}

// synchronized reports a state past the handshake's SYNs.
func (s State) synchronized() bool { return s >= Established }

// Tuple is a connection's addresses and ports, as seen from our end.
type Tuple struct {
	Local, Remote         [4]byte
	LocalPort, RemotePort uint16
}

// LocalAddr and RemoteAddr are the tuple's ends as netip values.
func (t Tuple) LocalAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(t.Local), t.LocalPort)
}
func (t Tuple) RemoteAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(t.Remote), t.RemotePort)
}

// Status bits mirrored for waiters that hold no lock (Conn.status).
const (
	stEstablished uint32 = 1 << iota // past the handshake (or failed: see stError)
	stEOF                            // the peer's FIN arrived: reads end once the queue is empty
	stError                          // a hard error is set (Conn.err)
	stWriteShut                      // no more writes: CloseWrite, Close, or an error
	stClosed                         // Close was called
	stDone                           // the connection left the table (closed, reset, or in TIME-WAIT)
)

// rtxKind is what the retransmission timer is armed for: Linux multiplexes
// the same timer (icsk_pending).
type rtxKind uint8

const (
	rtxNone    rtxKind = iota
	rtxRTO             // retransmission timeout (RFC 6298), or a SYN's or SYN-ACK's
	rtxTLP             // tail loss probe (RFC 8985 section 7)
	rtxRACK            // RACK's reordering timer
	rtxPersist         // zero-window probe
)

// Conn is a TCP connection. Its protocol state belongs to its shard and is
// guarded by the shard's lock; the fields past the app marker are the
// application's side.
type Conn struct {
	t     *Table
	sh    Shard
	tuple Tuple
	rc    route.Cache
	state State
	// parent is the listener a passive open came from, until accepted.
	parent *Listener
	// inAcceptQ is set while the connection waits in parent's accept queue.
	inAcceptQ bool

	// The send side. SND.UNA and SND.NXT count the SYN and the FIN; the
	// data in between lives in sndq, whose Nxt is where the FIN goes.
	iss, sndUna, sndNxt seq.Value
	sndWnd, maxSndWnd   uint32 // the peer's window, scaled, in bytes
	sndWl1, sndWl2      seq.Value
	sndWscale           uint8 // the peer's shift
	peerMSS             int
	smss                int // payload bytes per full segment, options taken off
	sndq                sndq.Queue
	sb                  sack.Scoreboard
	est                 rtt.Estimator
	cc                  cc.Controller
	finQueued, finSent  bool
	finAcked            bool
	// rttSeq and rttAt time one segment when timestamps are off (Karn).
	rttSeq    seq.Value
	rttAt     int64
	rttTiming bool
	minRTT    int64
	// lastSend is when data last left, for the restart after idle.
	lastSend int64
	// lastSeg is where the last new segment began: a tail loss probe
	// sends it again (RFC 8985 7.3).
	lastSeg seq.Value
	// ipID is the IPv4 ID of the last segment: a counter per connection
	// from a random start, as Linux's inet_id for connected sockets.
	ipID uint16

	// The receive side.
	irs, rcvNxt seq.Value
	// rcvWup is RCV.NXT when the window was last advertised and rcvWnd the
	// window then: the right edge rcvWup+rcvWnd never moves left.
	rcvWup    seq.Value
	rcvWnd    uint32
	rcvWscale uint8 // our shift
	rcvMss    int   // see rcvMSS
	rcvBuf    int   // the receive buffer, bytes (SO_RCVBUF, tcp_rmem, auto-tuned)
	rcvQ      []ofo.Entry
	rcvHead   int
	rcvQueued int // payload bytes in rcvQ
	rcvMbufs  int // mbufs pinned by rcvQ
	rcvFin    bool
	rcvNoMem  bool // data dropped for want of buffers: advertise a zero window
	ofo       ofo.Queue
	dsack     ofo.Block
	hasDSACK  bool
	// rcvSpace is auto-tuning's state (tcp_rcv_space_adjust): bytes the
	// application took since rcvSpaceAt, and the buffer target.
	rcvCopied  int
	rcvSpaceAt int64
	rcvSpace   int

	// Options agreed in the handshake.
	tsOK, sackOK, wsOK bool
	tsRecent           uint32
	tsRecentAt         int64
	tsOffset           uint32

	// ACK scheduling (tcp_send_delayed_ack, quick-ack mode).
	ackNow     bool
	ackPending int // full-sized segments received since the last ACK
	quickAcks  int
	lastRecv   int64 // any segment heard (keepalive)
	lastData   int64 // the last payload received (quick-ack after idle)
	ato        int64

	// Timers on the shard's wheel.
	rtx       timer.Timer
	rtxWhat   rtxKind
	dack      timer.Timer
	keepalive timer.Timer
	backoffs  int // RTOs or probes since the last progress
	probes    int // keepalive probes unanswered

	// Settings.
	nodelay   bool
	kaOn      bool
	kaIdle    int64
	kaIntvl   int64
	kaProbes  int
	linger    int // seconds; -1 off
	passive   bool
	orphan    bool // Close was called: nobody reads
	sndBufSet bool // SO_SNDBUF set: no auto-tuning
	rcvBufSet bool
	// countedEstab is set while CurrEstab counts the connection.
	countedEstab bool

	chal           challenge.PerSocket
	lastInvalidAck int64
	err            error // the hard error, once set

	// The application's side.
	n      *socket.Notifier
	pend   atomic.Uint32 // events to tell after the lock is let go
	status atomic.Uint32
	avail  atomic.Int64 // bytes readable (rcvQ)
	space  atomic.Int64 // bytes writable (send buffer room)

	rmu     sync.Mutex
	rlocal  []ofo.Entry // entries a reader took off rcvQ, copied out without the lock
	wmu     sync.Mutex
	wcs     engine.Caches // the writer's caches, under wmu
	rdl     atomic.Int64  // read deadline, Unix ns; 0 none
	wdl     atomic.Int64
	errOnce atomic.Pointer[error]
}

// Tuple is the connection's addresses and ports.
func (c *Conn) Tuple() Tuple { return c.tuple }

// State is the connection's state now.
func (c *Conn) State() State {
	if !c.t.enter() {
		return Closed
	}
	defer c.t.leave()
	c.sh.Lock()
	s := c.state
	c.sh.Unlock()
	return s
}

// newConn makes a connection on shard sh, in state Closed, not in a table.
func (t *Table) newConn(sh *tableShard, tu Tuple, o Options) (*Conn, error) {
	c := &Conn{t: t, sh: sh.host, tuple: tu, linger: -1, n: socket.NewNotifier(t.host.SocketCounters())}
	cfg := &t.cfg
	c.nodelay = o.NoDelay
	name := o.Congestion
	if name == "" {
		name = cfg.Congestion
	}
	ctl, err := cc.New(name, sack.DefaultMSS)
	if err != nil {
		return nil, err
	}
	c.cc = ctl
	if err := c.est.Init(rtt.Config{}); err != nil {
		return nil, err
	}
	c.rcvBuf = cfg.RMem[1]
	if o.RecvBuffer > 0 {
		c.rcvBuf, c.rcvBufSet = clamp(o.RecvBuffer, cfg.RMem[0], cfg.RMem[2]), true
	}
	wbuf := cfg.WMem[1]
	if o.SendBuffer > 0 {
		wbuf, c.sndBufSet = clamp(o.SendBuffer, cfg.WMem[0], cfg.WMem[2]), true
	}
	c.rcvWscale = wscaleFor(max(cfg.RMem[2], c.rcvBuf))
	c.kaIdle, c.kaIntvl, c.kaProbes = int64(cfg.KeepaliveTime), int64(cfg.KeepaliveIntvl), cfg.KeepaliveProbes
	c.ato = int64(cfg.DelAckMin)
	c.quickAcks = quickAckSegments
	c.rtx.Init(c.rtxFire)
	c.dack.Init(c.dackFire)
	c.keepalive.Init(c.keepaliveFire)
	now := sh.host.Now()
	c.iss = seq.ISN(t.key, tu.Local, tu.Remote, tu.LocalPort, tu.RemotePort, now)
	c.sndUna, c.sndNxt = c.iss, c.iss
	h := t.key.Hash3(siphash.TagTCPTimestamp, uint64(be32(tu.Local))<<32|uint64(be32(tu.Remote)),
		uint64(tu.LocalPort)<<16|uint64(tu.RemotePort))
	c.tsOffset, c.ipID = uint32(h), uint16(h>>32)
	c.sndq.Init(sndq.Config{Limit: wbuf, Pool: sh.host.Pool(), Free: sh.host.Caches().Free, Start: c.iss.Add(1)})
	c.ofo.Init(ofo.Config{Limit: c.rcvBuf, Account: t.host.Held(), Free: sh.host.Caches().Free})
	c.space.Store(int64(wbuf))
	return c, nil
}

// quickAckSegments is how many segments a new or idle connection
// acknowledges at once before delaying ACKs (TCP_MAX_QUICKACKS).
const quickAckSegments = 16

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// wscaleFor is the window scale that lets a window of buf bytes be
// advertised (tcp_select_initial_window), at most 14.
func wscaleFor(buf int) uint8 {
	var s uint8
	for buf > 0xffff && s < 14 {
		buf >>= 1
		s++
	}
	return s
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// wake records events for the application, told after the shard's lock is
// let go (sk_data_ready and friends run from the unlock).
func (c *Conn) wake(ev socket.Events) {
	if c.pend.Or(uint32(ev)) == 0 {
		c.sh.MarkReady(c)
	}
}

// Notify tells waiters and pollers the events recorded since the last call.
// The shard calls it after letting go of its lock.
func (c *Conn) Notify() {
	if ev := socket.Events(c.pend.Swap(0)); ev != 0 {
		c.n.Notify(ev)
	}
}

// setStatus sets status bits for lock-free waiters.
func (c *Conn) setStatus(bits uint32) { c.status.Or(bits) }

// publish mirrors the receive queue and the send room for waiters.
func (c *Conn) publishSpace() {
	sp := int64(c.sndq.Space())
	if old := c.space.Swap(sp); sp > old && sp > 0 {
		c.wake(socket.Writable)
	}
}

// back is v moved n back in the sequence space.
func back(v seq.Value, n seq.Size) seq.Value { return seq.Value(uint32(v) - uint32(n)) }

// tsOptLen is what the timestamps option takes from every segment, padded.
const tsOptLen = 12

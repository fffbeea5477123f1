package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/ephemeral"
	"github.com/pollnet/pollnet/stack/transport/tcp/challenge"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
	"github.com/pollnet/pollnet/stack/transport/tcp/sndq"
)

// Options are a socket's settings at open.
type Options struct {
	// NoDelay turns Nagle's algorithm off (TCP_NODELAY).
	NoDelay bool
	// Congestion names the congestion control (TCP_CONGESTION); empty
	// takes the stack's default.
	Congestion string
	// RecvBuffer and SendBuffer fix the buffers (SO_RCVBUF, SO_SNDBUF),
	// turning their auto-tuning off; 0 leaves them to tcp_rmem/tcp_wmem.
	RecvBuffer, SendBuffer int
	// Backlog bounds a listener's accept queue (with somaxconn); 0 takes
	// somaxconn.
	Backlog int
}

// Table is a stack's TCP: the connections of each shard, found by their
// 4-tuple, the listeners, found by port (an address of ours before the
// wildcard), and the settings and secrets they share.
type Table struct {
	cfg       Config
	key       siphash.Key
	host      Host
	shards    []*tableShard
	challenge challenge.Global
	mem       memAccount
	next      atomic.Uint32 // the shard the next active open goes to

	mu        sync.Mutex // binds: listeners and port picks
	listeners atomic.Pointer[map[uint16][]*Listener]
	picker    *ephemeral.Picker
	closed    bool
	// held are the connections the application holds (dialled or
	// accepted, not yet closed): Close frees their buffers. Under mu.
	held map[*Conn]struct{}

	// users counts application calls under way that may take a shard's
	// lock or touch the pool; Close waits for them to leave before the
	// stack frees its shards and its pool. closing turns new calls away.
	users   atomic.Int64
	closing atomic.Bool
}

// enter admits an application call, unless the stack is closing.
func (t *Table) enter() bool {
	t.users.Add(1)
	if t.closing.Load() {
		t.users.Add(-1)
		return false
	}
	return true
}

func (t *Table) leave() { t.users.Add(-1) }

// hold records a connection handed to the application.
func (t *Table) hold(c *Conn) {
	t.mu.Lock()
	if t.held == nil {
		t.held = map[*Conn]struct{}{}
	}
	t.held[c] = struct{}{}
	t.mu.Unlock()
}

func (t *Table) unhold(c *Conn) {
	t.mu.Lock()
	delete(t.held, c)
	t.mu.Unlock()
}

// tableShard is one shard's slice of the table, guarded by the shard's lock.
type tableShard struct {
	t     *Table
	host  Shard
	conns map[Tuple]*Conn
	tw    map[Tuple]*timeWait
	ids   uint32 // IPv4 IDs of segments without a connection
}

// NewTable makes the TCP of a stack.
func NewTable(cfg Config, ports ephemeral.Range, key siphash.Key, h Host) (*Table, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	t := &Table{cfg: cfg, key: key, host: h}
	if err := t.challenge.Init(cfg.ChallengeACKLimit, key); err != nil {
		return nil, err
	}
	p, err := ephemeral.NewPicker(ports, key)
	if err != nil {
		return nil, err
	}
	t.picker = p
	t.mem.limit = int64(cfg.Mem[2] / engine.BufSize)
	t.mem.press = int64(cfg.Mem[1] / engine.BufSize)
	for _, s := range h.Shards() {
		t.shards = append(t.shards, &tableShard{t: t, host: s, conns: map[Tuple]*Conn{}, tw: map[Tuple]*timeWait{}})
	}
	empty := map[uint16][]*Listener{}
	t.listeners.Store(&empty)
	return t, nil
}

// Config is the table's settings, defaults filled in.
func (t *Table) Config() Config { return t.cfg }

func (t *Table) shard(id int) *tableShard { return t.shards[id] }

// memAccount bounds the receive buffers TCP holds in order (tcp_mem), in
// mbufs; every shard charges it atomically.
type memAccount struct {
	held         atomic.Int64
	limit, press int64
}

func (a *memAccount) charge(n int) bool {
	if a.held.Add(int64(n)) > a.limit {
		a.held.Add(-int64(n))
		return false
	}
	return true
}
func (a *memAccount) uncharge(n int)  { a.held.Add(-int64(n)) }
func (a *memAccount) pressure() bool  { return a.held.Load() > a.press }
func (a *memAccount) overLimit() bool { return a.held.Load() >= a.limit }

// Held is the number of mbufs TCP's receive queues hold now.
func (t *Table) Held() int64 { return t.mem.held.Load() }

// Input takes a segment that arrived on shard id: m's TCP header is at
// offset off, src and dst its IPv4 addresses; csumOK says the port checked
// the checksum. It takes m. Under the shard's lock (tcp_v4_rcv).
func (t *Table) Input(id int, m engine.Mbuf, off int, src, dst [4]byte, csumOK bool) {
	ts := t.shards[id]
	ctr := ts.host.Counters()
	n := m.PktLen() - off
	var hb [tcpheader.MaxHeaderLen]byte
	b := m.Data()
	if len(b) >= off+tcpheader.MaxHeaderLen || (m.Next() == engine.NoMbuf && len(b) > off) {
		b = b[off:]
	} else {
		b = hb[:m.CopyOut(hb[:], off)]
	}
	h, err := tcpheader.Parse(b)
	if err != nil || int(h.DataOff) > n || int(h.DataOff) > len(b) {
		ctr.InErrs++
		ts.host.Caches().Free(m)
		return
	}
	if !csumOK && !tcpheader.VerifyMbuf(m, off, n, src, dst) {
		ctr.InCsumErrors++
		ctr.InErrs++
		ts.host.Caches().Free(m)
		return
	}
	sg := segment{seq: seq.Value(h.Seq), ack: seq.Value(h.Ack), flags: h.Flags, wnd: h.Window,
		m: m, off: off + int(h.DataOff), n: n - int(h.DataOff), now: ts.host.Now()}
	if h.DataOff > tcpheader.HeaderLen {
		if sg.opts, err = tcpheader.ParseOptions(b[tcpheader.HeaderLen:h.DataOff]); err != nil {
			ctr.InErrs++
			ts.host.Caches().Free(m)
			return
		}
	}
	ctr.InSegs++
	tu := Tuple{Local: dst, Remote: src, LocalPort: h.DstPort, RemotePort: h.SrcPort}
	ts.dispatch(tu, &sg)
	if sg.m != engine.NoMbuf {
		ts.host.Caches().Free(sg.m)
	}
}

// dispatch finds the segment's owner: a connection, a TIME-WAIT entry, a
// listener, or nobody (a RST answers).
func (ts *tableShard) dispatch(tu Tuple, sg *segment) {
	if c := ts.conns[tu]; c != nil {
		c.input(sg)
		return
	}
	if tw := ts.tw[tu]; tw != nil {
		if tw.input(sg) {
			return // answered; else a new SYN goes on to the listener
		}
	}
	if l := ts.t.lookupListener(tu.Local, tu.LocalPort); l != nil {
		ts.listenInput(l, tu, sg)
		return
	}
	ts.resetFor(tu, sg)
}

// lookupListener finds the listener for a segment to addr:port: one bound
// to addr itself before one bound to every address.
func (t *Table) lookupListener(addr [4]byte, port uint16) *Listener {
	var wild *Listener
	for _, l := range (*t.listeners.Load())[port] {
		if l.addr == addr {
			return l
		}
		if l.addr == ([4]byte{}) {
			wild = l
		}
	}
	return wild
}

// Listen opens a listener on laddr (an unspecified address listens on
// every address; port 0 picks one).
func (t *Table) Listen(laddr netip.AddrPort, o Options) (*Listener, error) {
	if !laddr.Addr().Is4() && laddr.Addr().IsValid() {
		return nil, ErrAddrNotAvail
	}
	var addr [4]byte
	if laddr.Addr().IsValid() {
		addr = laddr.Addr().As4()
	}
	if addr != ([4]byte{}) && !t.host.Local(addr) {
		return nil, ErrAddrNotAvail
	}
	backlog := t.cfg.SomaxConn
	if o.Backlog > 0 {
		backlog = min(o.Backlog, backlog)
	}
	l := &Listener{t: t, addr: addr, backlog: backlog, opts: o, n: socket.NewNotifier(t.host.SocketCounters())}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	cur := *t.listeners.Load()
	port := laddr.Port()
	if port == 0 {
		p, err := t.picker.Pick(netip.AddrFrom4(addr), netip.AddrPort{}, func(p uint16) bool { return len(cur[p]) == 0 })
		if err != nil {
			return nil, err
		}
		port = p
	}
	// A listener on an address of ours and one on every address share a
	// port, as listeners do with SO_REUSEADDR (which Go's net sets): the
	// specific one takes the segments to its address.
	for _, x := range cur[port] {
		if x.addr == addr {
			return nil, ErrAddrInUse
		}
	}
	l.port = port
	next := make(map[uint16][]*Listener, len(cur)+1)
	for p, ls := range cur {
		next[p] = ls
	}
	next[port] = append(append([]*Listener(nil), cur[port]...), l)
	t.listeners.Store(&next)
	return l, nil
}

func (t *Table) removeListener(l *Listener) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.listeners.Load()
	next := make(map[uint16][]*Listener, len(cur))
	for p, ls := range cur {
		if p != l.port {
			next[p] = ls
			continue
		}
		var keep []*Listener
		for _, x := range ls {
			if x != l {
				keep = append(keep, x)
			}
		}
		if len(keep) > 0 {
			next[p] = keep
		}
	}
	t.listeners.Store(&next)
}

// Dial opens a connection to raddr and waits for the handshake until ctx
// ends. A zero laddr picks the route's source address and an ephemeral
// port whose segments land on the shard the connection belongs to.
func (t *Table) Dial(ctx context.Context, laddr, raddr netip.AddrPort, o Options) (*Conn, error) {
	if !t.enter() {
		return nil, net.ErrClosed
	}
	defer t.leave()
	if !raddr.Addr().Is4() || raddr.Port() == 0 {
		return nil, ErrInvalid
	}
	dst := raddr.Addr().As4()
	src, _, ok := t.host.Route(dst)
	if !ok {
		return nil, ErrNoRoute
	}
	if laddr.Addr().IsValid() && !laddr.Addr().IsUnspecified() {
		if !laddr.Addr().Is4() || !t.host.Local(laddr.Addr().As4()) {
			return nil, ErrAddrNotAvail
		}
		src = laddr.Addr().As4()
	}
	c, err := t.open(src, dst, laddr.Port(), raddr.Port(), o)
	if err != nil {
		return nil, err
	}
	if err := c.waitEstablished(ctx); err != nil {
		return nil, err
	}
	t.hold(c)
	return c, nil
}

// open makes the connection, puts it in its shard's table and sends the SYN.
func (t *Table) open(src, dst [4]byte, lport, rport uint16, o Options) (*Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	cur := *t.listeners.Load()
	want := int(t.next.Add(1)) % len(t.shards)
	var ts *tableShard
	if lport != 0 {
		for _, l := range cur[lport] {
			if l.addr == src || l.addr == ([4]byte{}) {
				return nil, ErrAddrInUse
			}
		}
		ts = t.shards[t.host.ShardOf(dst, src, rport, lport)]
		ts.host.Lock()
		tu := Tuple{Local: src, Remote: dst, LocalPort: lport, RemotePort: rport}
		if ts.conns[tu] != nil || ts.tw[tu] != nil {
			ts.host.Unlock()
			return nil, ErrAddrInUse
		}
	} else {
		// The port is picked so that the peer's segments land on shard
		// want; the tuple must be unused there (__inet_hash_connect).
		ts = t.shards[want]
		ts.host.Lock()
		p, err := t.picker.Pick(netip.AddrFrom4(src), netip.AddrPortFrom(netip.AddrFrom4(dst), rport), func(p uint16) bool {
			if len(cur[p]) > 0 || (len(t.shards) > 1 && t.host.ShardOf(dst, src, rport, p) != want) {
				return false
			}
			tu := Tuple{Local: src, Remote: dst, LocalPort: p, RemotePort: rport}
			return ts.conns[tu] == nil && ts.tw[tu] == nil
		})
		if err != nil {
			ts.host.Unlock()
			return nil, syscall_EADDRNOTAVAIL(err)
		}
		lport = p
	}
	tu := Tuple{Local: src, Remote: dst, LocalPort: lport, RemotePort: rport}
	c, err := t.newConn(ts, tu, o)
	if err != nil {
		ts.host.Unlock()
		return nil, err
	}
	c.state = SynSent
	ts.conns[tu] = c
	ts.host.Counters().ActiveOpens++
	now := ts.host.Now()
	c.sendSyn(now)
	c.armRTX(rtxRTO, now+c.est.RTO())
	ts.host.Unlock()
	return c, nil
}

func syscall_EADDRNOTAVAIL(err error) error {
	if errors.Is(err, ephemeral.ErrExhausted) {
		return ErrAddrNotAvail
	}
	return err
}

// Close resets nothing on the wire and ends every connection and
// listener: the stack is going away.
func (t *Table) Close() {
	t.closing.Store(true)
	t.mu.Lock()
	t.closed = true
	var ls []*Listener
	for _, v := range *t.listeners.Load() {
		ls = append(ls, v...)
	}
	t.mu.Unlock()
	for _, l := range ls {
		l.close()
	}
	for _, ts := range t.shards {
		ts.host.Lock()
		for _, c := range ts.conns {
			c.orphan = true
			c.abort(errAborted)
		}
		for _, tw := range ts.tw {
			tw.remove()
		}
		ts.host.Unlock()
	}
	// Aborted, every waiting caller wakes and leaves; then nobody else
	// touches the connections' buffers, which go back to the pool.
	for t.users.Load() != 0 {
		time.Sleep(10 * time.Microsecond)
	}
	t.mu.Lock()
	held := t.held
	t.held = nil
	t.mu.Unlock()
	for c := range held {
		c.freeApp()
	}
}

// Conns is the number of connections (TIME-WAIT apart) on each shard.
func (t *Table) Conns() (conns, timeWait int) {
	for _, ts := range t.shards {
		ts.host.Lock()
		conns += len(ts.conns)
		timeWait += len(ts.tw)
		ts.host.Unlock()
	}
	return conns, timeWait
}

// timeWait is a connection in TIME-WAIT: what it takes to answer a
// retransmitted FIN and to refuse old duplicates, and its timer
// (inet_timewait_sock).
type timeWait struct {
	ts       *tableShard
	tu       Tuple
	rcvNxt   seq.Value
	sndNxt   seq.Value
	wnd      uint16
	tsOK     bool
	tsRecent uint32
	tsOffset uint32
	timer    timer.Timer
}

// addTimeWait replaces c with a TIME-WAIT entry, unless the table is full
// of them (tcp_max_tw_buckets), and arms its timer.
func (ts *tableShard) addTimeWait(c *Conn, now int64) {
	ctr := ts.host.Counters()
	if len(ts.tw)*len(ts.t.shards) >= ts.t.cfg.MaxTimeWait {
		ctr.TCPTimeWaitOverflow++
		return
	}
	tw := &timeWait{ts: ts, tu: c.tuple, rcvNxt: c.rcvNxt, sndNxt: c.sndNxt, wnd: uint16(min(c.rcvWindow()>>c.rcvWscale, 65535)),
		tsOK: c.tsOK, tsRecent: c.tsRecent, tsOffset: c.tsOffset}
	tw.timer.Init(func(int64) { tw.remove() })
	ts.tw[c.tuple] = tw
	ctr.TW++
	ts.host.Wheel().Arm(&tw.timer, now+int64(ts.t.cfg.TimeWait))
	ts.host.Moved()
}

func (tw *timeWait) remove() {
	if tw.timer.Armed() {
		tw.ts.host.Wheel().Cancel(&tw.timer)
	}
	tw.ts.host.Moved()
	delete(tw.ts.tw, tw.tu)
}

// input handles a segment for a TIME-WAIT tuple (tcp_timewait_state_process)
// and reports whether it is dealt with; false lets a new SYN through to a
// listener, the old entry removed.
func (tw *timeWait) input(sg *segment) bool {
	switch {
	case sg.has(tcpheader.RST):
		tw.remove() // as Linux with tcp_rfc1337 off
		return true
	case sg.has(tcpheader.SYN) && !sg.has(tcpheader.ACK):
		newer := tw.rcvNxt.LessThan(sg.seq)
		if val, _, ok := sg.ts(); ok && tw.tsOK {
			newer = int32(val-tw.tsRecent) > 0
		}
		if newer {
			tw.remove()
			return false
		}
	}
	if sg.has(tcpheader.FIN) {
		// The peer missed our last ACK: restart the 2 MSL.
		tw.ts.host.Wheel().Arm(&tw.timer, sg.now+int64(tw.ts.t.cfg.TimeWait))
		tw.ts.host.Moved()
	}
	k := control{tu: tw.tu, seq: tw.sndNxt, ack: tw.rcvNxt, flags: tcpheader.ACK, wnd: tw.wnd, ts: tw.tsOK,
		tsval: uint32(sg.now/tsTick) + tw.tsOffset, tsecr: tw.tsRecent}
	tw.ts.sendControl(k)
	return true
}

// sndqConfigAt is a send queue's configuration for a connection whose data
// starts at start.
func sndqConfigAt(c *Conn, start seq.Value) sndq.Config {
	return sndq.Config{Limit: c.t.cfg.WMem[1], Pool: c.sh.Pool(), Free: c.sh.Caches().Free, Start: start}
}

// Err takes an ICMP error about a segment we sent on tuple tu with
// sequence number sn (tcp_v4_err): a hard one ends a connection still in
// its handshake, when sn is one it has outstanding (RFC 5927 4.1); the
// others are ignored, as RFC 1122 4.2.3.9 asks of soft errors. It reports
// whether a connection owns the tuple. Under the shard's lock.
func (t *Table) Err(id int, tu Tuple, sn uint32, err error, hard bool) bool {
	ts := t.shards[id]
	c := ts.conns[tu]
	if c == nil {
		return ts.tw[tu] != nil
	}
	s := seq.Value(sn)
	if !hard || s.LessThan(c.sndUna) || !s.LessThan(c.sndNxt) {
		return true
	}
	if c.state == SynSent || c.state == SynReceived {
		ts.host.Counters().AttemptFails++
		c.abort(err)
	}
	return true
}

package tcp

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/ephemeral"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
)

// The harness: one or two Tables, each on a host of one shard, a manual
// clock shared by both, and outboxes that capture what they send. A test
// plays a scripted peer (inject, sent) or passes segments between two
// tables (deliver, pump).

var (
	addrA = [4]byte{198, 18, 0, 1}
	addrB = [4]byte{198, 18, 0, 2}
)

// rigStart is the clock at the start: far from zero, as a monotonic clock is.
const rigStart = int64(1000 * time.Second)

type outSeg struct {
	src, dst [4]byte
	m        engine.Mbuf
}

// testShard is a Shard whose clock is the rig's and whose Output queues.
type testShard struct {
	mu    sync.Mutex
	clock *atomic.Int64
	wheel timer.Wheel
	pool  *engine.Pool
	cs    engine.Caches
	ctr   Counters
	ready []*Conn
	out   []outSeg
	reuse bool // keep the ready array: only for a test on one goroutine
}

func (s *testShard) ID() int { return 0 }
func (s *testShard) Lock()   { s.mu.Lock() }
func (s *testShard) Unlock() {
	if s.reuse { // one goroutine only: the allocation test
		for _, c := range s.ready {
			c.Notify()
		}
		s.ready = s.ready[:0]
		s.mu.Unlock()
		return
	}
	r := s.ready
	s.ready = nil
	s.mu.Unlock()
	for _, c := range r {
		c.Notify()
	}
}
func (s *testShard) Now() int64             { return s.clock.Load() }
func (s *testShard) Wheel() *timer.Wheel    { return &s.wheel }
func (s *testShard) Moved()                 {}
func (s *testShard) Caches() *engine.Caches { return &s.cs }
func (s *testShard) Pool() *engine.Pool     { return s.pool }
func (s *testShard) Output(_ *route.Cache, src, dst [4]byte, _ uint16, m engine.Mbuf) error {
	tcpheader.SetChecksumMbuf(m, 0, m.PktLen(), src, dst)
	s.out = append(s.out, outSeg{src, dst, m})
	return nil
}
func (s *testShard) Counters() *Counters { return &s.ctr }
func (s *testShard) MarkReady(c *Conn)   { s.ready = append(s.ready, c) }

// heldAcct is a stack-wide bound on held buffers that never binds.
type heldAcct struct{ n atomic.Int64 }

func (h *heldAcct) Charge(n int) bool { h.n.Add(int64(n)); return true }
func (h *heldAcct) Uncharge(n int)    { h.n.Add(-int64(n)) }
func (h *heldAcct) Room() int         { return 1 << 30 }

// testHost is a Host of one shard and one address, with a route to anywhere.
type testHost struct {
	addr [4]byte
	sh   *testShard
	sc   socket.Counters
	held heldAcct
}

func (h *testHost) Shards() []Shard                                   { return []Shard{h.sh} }
func (h *testHost) ShardOf(src, dst [4]byte, sport, dport uint16) int { return 0 }
func (h *testHost) Route(dst [4]byte) ([4]byte, int, bool)            { return h.addr, 1500, true }
func (h *testHost) Local(a [4]byte) bool                              { return a == h.addr }
func (h *testHost) SocketCounters() *socket.Counters                  { return &h.sc }
func (h *testHost) FreeRead(m engine.Mbuf)                            { engine.Free(m) }
func (h *testHost) Held() ofo.Accountant                              { return &h.held }

// end is one host and its table.
type end struct {
	r     *rig
	host  *testHost
	sh    *testShard
	tbl   *Table
	conns []*Conn
	lns   []*Listener
}

type rig struct {
	t     testing.TB
	pool  *engine.Pool
	clock atomic.Int64
	ends  []*end
}

// newRig makes a rig with one end per config, at addrA, addrB. Its cleanup
// closes everything and fails the test if an mbuf did not come back.
func newRig(t testing.TB, cfgs ...Config) *rig {
	t.Helper()
	p, err := engine.NewPool(fmt.Sprintf("tcptest-%p", t), 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, pool: p}
	r.clock.Store(rigStart)
	for i, cfg := range cfgs {
		addr := [][4]byte{addrA, addrB}[i]
		sh := &testShard{clock: &r.clock, pool: p}
		sh.wheel.Init(rigStart, 0)
		h := &testHost{addr: addr, sh: sh}
		tbl, err := NewTable(cfg, ephemeral.Range{Low: 40000, High: 40999}, siphash.Key{K0: 1, K1: uint64(i + 2)}, h)
		if err != nil {
			t.Fatal(err)
		}
		r.ends = append(r.ends, &end{r: r, host: h, sh: sh, tbl: tbl})
	}
	t.Cleanup(func() {
		if leaked := r.shutdown(); leaked != 0 {
			t.Errorf("pool leak: %d of %d mbufs not returned", leaked, p.Size())
			return
		}
		p.Close()
	})
	return r
}

// shutdown closes every connection, listener and table, frees what was
// sent and not taken, and reports the mbufs still out of the pool.
func (r *rig) shutdown() int {
	for _, e := range r.ends {
		for _, c := range e.conns {
			c.Close()
		}
		for _, l := range e.lns {
			l.Close()
		}
		e.tbl.Close()
	}
	for _, e := range r.ends {
		e.sh.Lock()
		for _, o := range e.sh.out {
			e.sh.cs.Free(o.m)
		}
		e.sh.out = nil
		e.sh.cs.Flush()
		e.sh.Unlock()
	}
	return r.pool.Size() - r.pool.Available()
}

func (r *rig) now() int64 { return r.clock.Load() }

// advance moves the clock by d and runs every shard's timers.
func (r *rig) advance(d time.Duration) {
	now := r.clock.Add(int64(d))
	for _, e := range r.ends {
		e.sh.Lock()
		e.sh.wheel.Advance(now)
		e.sh.Unlock()
	}
}

// nextTimer is the earliest armed timer of any shard.
func (r *rig) nextTimer() (int64, bool) {
	best, any := int64(0), false
	for _, e := range r.ends {
		e.sh.Lock()
		if w, ok := e.sh.wheel.Next(); ok && (!any || w < best) {
			best, any = w, true
		}
		e.sh.Unlock()
	}
	return best, any
}

func (e *end) counters() Counters {
	e.sh.Lock()
	defer e.sh.Unlock()
	return e.sh.ctr
}

func (e *end) listen(port uint16, o Options) *Listener {
	e.r.t.Helper()
	l, err := e.tbl.Listen(netip.AddrPortFrom(netip.AddrFrom4(e.host.addr), port), o)
	if err != nil {
		e.r.t.Fatal(err)
	}
	e.lns = append(e.lns, l)
	return l
}

// open starts an active open from lport to raddr:rport without waiting.
func (e *end) open(lport uint16, raddr [4]byte, rport uint16, o Options) *Conn {
	e.r.t.Helper()
	c, err := e.tbl.open(e.host.addr, raddr, lport, rport, o)
	if err != nil {
		e.r.t.Fatal(err)
	}
	e.conns = append(e.conns, c)
	return c
}

// accept takes a connection the listener has queued, failing if none is.
func (e *end) accept(l *Listener) *Conn {
	e.r.t.Helper()
	if !l.ready() {
		e.r.t.Fatal("no connection to accept")
	}
	c, err := l.AcceptTCP()
	if err != nil {
		e.r.t.Fatal(err)
	}
	e.conns = append(e.conns, c)
	return c
}

// seg is a segment as a test writes or reads it.
type seg struct {
	src, dst     [4]byte
	sport, dport uint16
	seq, ack     uint32
	flags        tcpheader.Flags
	wnd          uint16
	opts         tcpheader.Options
	data         []byte
}

func (s seg) String() string {
	return fmt.Sprintf("%d>%d %v seq=%d ack=%d wnd=%d len=%d opts=%+v", s.sport, s.dport, s.flags, s.seq, s.ack,
		s.wnd, len(s.data), s.opts)
}

// bytes is the segment on the wire, checksummed.
func (s seg) bytes() []byte {
	var ob [tcpheader.MaxOptionsLen]byte
	on, err := s.opts.Put(ob[:])
	if err != nil {
		panic(err)
	}
	b := make([]byte, tcpheader.HeaderLen+on+len(s.data))
	h := tcpheader.Header{SrcPort: s.sport, DstPort: s.dport, Seq: s.seq, Ack: s.ack,
		DataOff: uint8(tcpheader.HeaderLen + on), Flags: s.flags, Window: s.wnd}
	if _, err := h.Put(b, ob[:on]); err != nil {
		panic(err)
	}
	copy(b[tcpheader.HeaderLen+on:], s.data)
	tcpheader.SetChecksum(s.src, s.dst, b)
	return b
}

// inject hands e's table a packet holding b, from src to dst.
func (e *end) injectBytes(src, dst [4]byte, b []byte) {
	e.r.t.Helper()
	m, err := e.r.pool.Get()
	if err != nil {
		e.r.t.Fatal(err)
	}
	d, err := m.Append(len(b))
	if err != nil {
		engine.Free(m)
		e.r.t.Fatal(err)
	}
	copy(d, b)
	e.sh.Lock()
	e.tbl.Input(0, m, 0, src, dst, false)
	e.sh.Unlock()
}

func (e *end) inject(s seg) { e.r.t.Helper(); e.injectBytes(s.src, s.dst, s.bytes()) }

// parseOut reads back a segment that a table sent (and checks its checksum).
func parseOut(t testing.TB, o outSeg) seg {
	t.Helper()
	b := make([]byte, o.m.PktLen())
	o.m.CopyOut(b, 0)
	if !tcpheader.Verify(o.src, o.dst, b) {
		t.Errorf("segment sent with a bad checksum: %x", b)
	}
	h, err := tcpheader.Parse(b)
	if err != nil {
		t.Fatalf("segment sent that does not parse: %v", err)
	}
	s := seg{src: o.src, dst: o.dst, sport: h.SrcPort, dport: h.DstPort, seq: h.Seq, ack: h.Ack, flags: h.Flags,
		wnd: h.Window, data: b[h.DataOff:]}
	if s.opts, err = tcpheader.ParseOptions(b[tcpheader.HeaderLen:h.DataOff]); err != nil {
		t.Fatalf("segment sent with options that do not parse: %v", err)
	}
	return s
}

func (e *end) takeOut() []outSeg {
	e.sh.Lock()
	out := e.sh.out
	e.sh.out = nil
	e.sh.Unlock()
	return out
}

// sent takes what e sent since the last look, parsed, and frees it.
func (e *end) sent() []seg {
	e.r.t.Helper()
	var segs []seg
	for _, o := range e.takeOut() {
		segs = append(segs, parseOut(e.r.t, o))
		engine.Free(o.m)
	}
	return segs
}

// deliver passes what from sent to to, returning the segments parsed. Each
// arrives in one buffer of its own, as a port receives a frame.
func (r *rig) deliver(from, to *end) []seg {
	r.t.Helper()
	var segs []seg
	for _, o := range from.takeOut() {
		s := parseOut(r.t, o)
		segs = append(segs, s)
		b := make([]byte, o.m.PktLen())
		o.m.CopyOut(b, 0)
		engine.Free(o.m)
		to.injectBytes(o.src, o.dst, b)
	}
	return segs
}

// pump passes segments both ways until neither end sends more, at most
// rounds times; it returns the segments from a to b and from b to a.
func (r *rig) pump(rounds int) (ab, ba []seg) {
	a, b := r.ends[0], r.ends[1]
	for range rounds {
		x := r.deliver(a, b)
		y := r.deliver(b, a)
		ab, ba = append(ab, x...), append(ba, y...)
		if len(x)+len(y) == 0 {
			break
		}
	}
	return ab, ba
}

// peer is a scripted remote end talking to e: it keeps its own sequence
// numbers and timestamp clock, and builds segments from them.
type peer struct {
	e          *end
	addr       [4]byte
	port       uint16
	lport      uint16 // ours
	nxt, ack   uint32 // its SND.NXT and RCV.NXT
	ts, tsecr  uint32
	wnd        uint16
	wscale     uint8
	timestamps bool
}

func newPeer(e *end, port, lport uint16) *peer {
	return &peer{e: e, addr: [4]byte{198, 18, 0, 9}, port: port, lport: lport, nxt: 0x10000000, ts: 5000,
		wnd: 512, wscale: 7, timestamps: true}
}

// seg builds a segment from the peer's state; the timestamp clock ticks.
func (p *peer) seg(flags tcpheader.Flags, data []byte) seg {
	s := seg{src: p.addr, dst: p.e.host.addr, sport: p.port, dport: p.lport, seq: p.nxt, ack: p.ack,
		flags: flags, wnd: p.wnd, data: data}
	if p.timestamps {
		p.ts++
		s.opts.Present |= tcpheader.HasTimestamps
		s.opts.TSval, s.opts.TSecr = p.ts, p.tsecr
	}
	return s
}

// send injects s and moves the peer's SND.NXT past it.
func (p *peer) send(s seg) {
	p.e.r.t.Helper()
	p.e.inject(s)
	n := uint32(len(s.data))
	if s.flags&(tcpheader.SYN) != 0 {
		n++
	}
	if s.flags&tcpheader.FIN != 0 {
		n++
	}
	p.nxt = s.seq + n
}

// saw takes what our end sent: it updates what the peer has received and
// echoes, as a peer that takes every segment in order would.
func (p *peer) saw(segs []seg) {
	for _, s := range segs {
		end := s.seq + uint32(len(s.data))
		if s.flags&(tcpheader.SYN|tcpheader.FIN) != 0 {
			end++
		}
		if s.flags&tcpheader.SYN != 0 || int32(end-p.ack) > 0 && s.flags&tcpheader.RST == 0 {
			p.ack = end
		}
		if s.opts.Has(tcpheader.HasTimestamps) {
			p.tsecr = s.opts.TSval
		}
	}
}

// synOpts are a Linux SYN's options.
func (p *peer) synOpts(s *seg) {
	s.opts.Present |= tcpheader.HasMSS | tcpheader.HasSACKPermitted | tcpheader.HasWScale
	s.opts.MSS, s.opts.WScale = 1460, p.wscale
}

// connect opens a connection from the peer to listener l and accepts it.
func (p *peer) connect(l *Listener) *Conn {
	t := p.e.r.t
	t.Helper()
	syn := p.seg(tcpheader.SYN, nil)
	syn.wnd = 65535
	p.synOpts(&syn)
	p.send(syn)
	out := p.e.sent()
	if len(out) != 1 || out[0].flags != tcpheader.SYN|tcpheader.ACK || out[0].ack != p.nxt {
		t.Fatalf("SYN answered with %v", out)
	}
	p.saw(out)
	p.e.r.advance(10 * time.Millisecond)
	p.send(p.seg(tcpheader.ACK, nil))
	if got := p.e.sent(); len(got) != 0 {
		t.Fatalf("handshake's ACK answered with %v", got)
	}
	return p.e.accept(l)
}

// established makes a rig of one end, a listener on port 80 and a
// connection to it from a scripted peer.
func newEstablished(t testing.TB, cfg Config, o Options) (*rig, *end, *peer, *Conn) {
	t.Helper()
	r := newRig(t, cfg)
	e := r.ends[0]
	l := e.listen(80, o)
	p := newPeer(e, 33000, 80)
	c := p.connect(l)
	if s := c.State(); s != Established {
		t.Fatalf("state %v after the handshake", s)
	}
	return r, e, p, c
}

// one checks that exactly one segment was sent, with flags f, and returns it.
func one(t testing.TB, segs []seg, f tcpheader.Flags) seg {
	t.Helper()
	if len(segs) != 1 || segs[0].flags != f {
		t.Fatalf("sent %v, want one %v", segs, f)
	}
	return segs[0]
}

// readN reads n bytes that must be there already.
func readN(t testing.TB, c *Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	got := 0
	for got < n {
		k, err := c.Read(b[got:])
		if err != nil {
			t.Fatalf("read %d of %d: %v", got, n, err)
		}
		got += k
	}
	return b
}

// readErr reads once, with a deadline, and returns the error.
func readErr(c *Conn) (int, error) {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var b [64]byte
	return c.Read(b[:])
}

// snd and rcv are the connection's SND.UNA, SND.NXT and RCV.NXT.
func seqs(c *Conn) (una, nxt, rcvNxt uint32) {
	c.sh.Lock()
	defer c.sh.Unlock()
	return uint32(c.sndUna), uint32(c.sndNxt), uint32(c.rcvNxt)
}

func pattern(n, salt int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + salt + i>>8)
	}
	return b
}

package tcp

import (
	"bytes"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/transport/ephemeral"
)

// The peer here is an attacker: each test plays one against a table,
// queue or number a segment from the wire reaches, and checks it against
// Linux's bound and counter.

const (
	SYN = tcpheader.SYN
	ACK = tcpheader.ACK
	FIN = tcpheader.FIN
	RST = tcpheader.RST
	PSH = tcpheader.PSH
	URG = tcpheader.URG
)

// spoofedSYN is a SYN to port 80 from the i-th of many forged sources.
func spoofedSYN(i int) seg {
	return seg{src: [4]byte{198, 19, byte(i >> 8), byte(i)}, dst: addrA, sport: uint16(1024 + i), dport: 80,
		seq: uint32(i) * 2654435761, flags: SYN, wnd: 65535,
		opts: tcpheader.Options{Present: tcpheader.HasMSS, MSS: 1460}}
}

// synAck sends the peer's SYN and takes our SYN-ACK.
func synAck(t *testing.T, p *peer) seg {
	t.Helper()
	syn := p.seg(SYN, nil)
	syn.wnd = 65535
	p.synOpts(&syn)
	p.send(syn)
	sa := one(t, p.e.sent(), SYN|ACK)
	if sa.ack != p.nxt {
		t.Fatalf("SYN-ACK %v acknowledges %d, want %d", sa, sa.ack, p.nxt)
	}
	p.saw([]seg{sa})
	return sa
}

func synqLen(l *Listener) int { return int(l.synq.Load()) }

func acceptQLen(l *Listener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q)
}

func TestASYNFloodFromSpoofedSourcesKeepsSynBacklogHalfOpenAndAnswersTheRestWithCookies(t *testing.T) {
	const backlog, flood = 16, 300
	r := newRig(t, Config{SynBacklog: backlog})
	e := r.ends[0]
	l := e.listen(80, Options{})
	for i := range flood {
		e.inject(spoofedSYN(i))
	}
	out := e.sent()
	if len(out) != flood {
		t.Fatalf("%d answers to %d SYNs", len(out), flood)
	}
	for i, s := range out {
		syn := spoofedSYN(i)
		if s.flags != SYN|ACK || s.ack != syn.seq+1 || s.dst != syn.src || s.dport != syn.sport {
			t.Fatalf("SYN %d answered with %v", i, s)
		}
	}
	ctr := e.counters()
	if ctr.PassiveOpens != backlog || ctr.SyncookiesSent != flood-backlog || ctr.ListenDrops != 0 {
		t.Fatalf("PassiveOpens %d, SyncookiesSent %d, ListenDrops %d; want %d, %d, 0",
			ctr.PassiveOpens, ctr.SyncookiesSent, ctr.ListenDrops, backlog, flood-backlog)
	}
	if n := synqLen(l); n != backlog {
		t.Fatalf("SYN queue %d, want %d", n, backlog)
	}
	if conns, tw := e.tbl.Conns(); conns != backlog || tw != 0 {
		t.Fatalf("table holds %d connections, %d TIME-WAIT; want %d, 0", conns, tw, backlog)
	}
	// The half-open entries resend their SYN-ACK at 1, 3, 7, 15 and 31 s
	// and give up at 63 s (tcp_synack_retries 5, the RTO doubling).
	start := r.now()
	const step = 50 * time.Millisecond
	var at []time.Duration
	gone := time.Duration(0)
	for r.now()-start < int64(70*time.Second) {
		r.advance(step)
		if segs := e.sent(); len(segs) > 0 {
			if len(segs) != backlog {
				t.Fatalf("%d SYN-ACKs resent at once, want %d", len(segs), backlog)
			}
			at = append(at, time.Duration(r.now()-start))
		}
		if conns, _ := e.tbl.Conns(); conns == 0 && gone == 0 {
			gone = time.Duration(r.now() - start)
		}
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second}
	if len(at) != len(want) {
		t.Fatalf("SYN-ACKs resent at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] < want[i] || at[i] > want[i]+2*step {
			t.Fatalf("SYN-ACKs resent at %v, want %v", at, want)
		}
	}
	if gone < 63*time.Second || gone > 63*time.Second+2*step {
		t.Fatalf("half-open connections gone after %v, want 63 s", gone)
	}
	ctr = e.counters()
	if ctr.AttemptFails != backlog || ctr.RetransSegs != 5*backlog {
		t.Fatalf("AttemptFails %d, RetransSegs %d; want %d, %d", ctr.AttemptFails, ctr.RetransSegs, backlog, 5*backlog)
	}
	if n := synqLen(l); n != 0 {
		t.Fatalf("SYN queue %d after every entry expired", n)
	}
	// The queue has room again: a SYN is kept, not answered with a cookie.
	e.inject(spoofedSYN(flood))
	one(t, e.sent(), SYN|ACK)
	if ctr := e.counters(); ctr.PassiveOpens != backlog+1 || ctr.SyncookiesSent != flood-backlog {
		t.Fatalf("after the flood: PassiveOpens %d, SyncookiesSent %d", ctr.PassiveOpens, ctr.SyncookiesSent)
	}
}

func TestAClientAnsweredWithACookieGetsAWorkingConnectionAndAForgedCookieGetsARST(t *testing.T) {
	const backlog = 4
	r := newRig(t, Config{SynBacklog: backlog})
	e := r.ends[0]
	l := e.listen(80, Options{})
	for i := range backlog {
		e.inject(spoofedSYN(i))
	}
	e.sent()
	p := newPeer(e, 5555, 80)
	p.timestamps = false // the cookie's SYN-ACK carries none
	sa := synAck(t, p)
	if sa.opts.Present != tcpheader.HasMSS {
		t.Fatalf("cookie SYN-ACK with options %+v, want the MSS alone", sa.opts)
	}
	// A forged cookie: the right tuple and client ISN, a wrong number.
	forged := p.seg(ACK, nil)
	forged.ack = sa.seq + 2
	e.inject(forged)
	if rst := one(t, e.sent(), RST); rst.seq != forged.ack {
		t.Fatalf("forged cookie answered with %v, want a RST at %d", rst, forged.ack)
	}
	// A cookie never sent, from a tuple that sent no SYN.
	blind := seg{src: [4]byte{198, 19, 77, 1}, dst: addrA, sport: 7777, dport: 80, seq: 1, ack: sa.seq + 1, flags: ACK, wnd: 1000}
	e.inject(blind)
	one(t, e.sent(), RST)
	ctr := e.counters()
	if ctr.SyncookiesFailed != 2 || ctr.SyncookiesRecv != 0 || ctr.PassiveOpens != backlog {
		t.Fatalf("SyncookiesFailed %d, SyncookiesRecv %d, PassiveOpens %d; want 2, 0, %d",
			ctr.SyncookiesFailed, ctr.SyncookiesRecv, ctr.PassiveOpens, backlog)
	}
	if conns, _ := e.tbl.Conns(); conns != backlog {
		t.Fatalf("%d connections after forged cookies, want %d", conns, backlog)
	}
	// The real ACK, with data.
	p.send(p.seg(ACK|PSH, []byte("hello")))
	p.saw(e.sent())
	c := e.accept(l)
	if got := string(readN(t, c, 5)); got != "hello" {
		t.Fatalf("read %q", got)
	}
	p.saw(e.sent()) // a window update: the cookie's window was 64 KiB unscaled
	if _, err := c.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	d := one(t, e.sent(), ACK|PSH)
	if string(d.data) != "world" || d.seq != sa.seq+1 || d.ack != p.nxt {
		t.Fatalf("sent %v, want world at %d acknowledging %d", d, sa.seq+1, p.nxt)
	}
	if ctr := e.counters(); ctr.SyncookiesRecv != 1 || ctr.PassiveOpens != backlog+1 {
		t.Fatalf("SyncookiesRecv %d, PassiveOpens %d; want 1, %d", ctr.SyncookiesRecv, ctr.PassiveOpens, backlog+1)
	}
	// A cookie is good for at most two minutes.
	q := newPeer(e, 5556, 80)
	q.timestamps = false
	synAck(t, q)
	r.advance(121 * time.Second)
	for i := range backlog + 1 { // a new flood, so that ACKs are checked as cookies
		e.inject(spoofedSYN(10 + i))
	}
	e.sent()
	q.send(q.seg(ACK, nil))
	one(t, e.sent(), RST)
	if ctr := e.counters(); ctr.SyncookiesFailed != 3 || ctr.SyncookiesRecv != 1 {
		t.Fatalf("an expired cookie: SyncookiesFailed %d, SyncookiesRecv %d; want 3, 1", ctr.SyncookiesFailed, ctr.SyncookiesRecv)
	}
}

func TestABareACKToAListenerThatSentNoCookieLatelyIsResetWithoutACookieCheck(t *testing.T) {
	r := newRig(t, Config{SynBacklog: 1})
	e := r.ends[0]
	e.listen(80, Options{})
	stray := seg{src: [4]byte{198, 19, 0, 1}, dst: addrA, sport: 3000, dport: 80, seq: 10, ack: 20, flags: ACK, wnd: 1000}
	e.inject(stray)
	one(t, e.sent(), RST)
	if ctr := e.counters(); ctr.SyncookiesFailed != 0 {
		t.Fatalf("a stray ACK counted as a failed cookie (SyncookiesFailed %d) with no cookie ever sent", ctr.SyncookiesFailed)
	}
	// Once the SYN queue overflows, ACKs are checked as cookies (and
	// counted) for two minutes (tcp_synq_no_recent_overflow).
	e.inject(spoofedSYN(0))
	e.inject(spoofedSYN(1))
	e.sent()
	e.inject(stray)
	one(t, e.sent(), RST)
	if ctr := e.counters(); ctr.SyncookiesSent != 1 || ctr.SyncookiesFailed != 1 {
		t.Fatalf("SyncookiesSent %d, SyncookiesFailed %d; want 1, 1", ctr.SyncookiesSent, ctr.SyncookiesFailed)
	}
	r.advance(121 * time.Second)
	e.sent()
	e.inject(stray)
	one(t, e.sent(), RST)
	if ctr := e.counters(); ctr.SyncookiesFailed != 1 {
		t.Fatalf("SyncookiesFailed %d two minutes after the last cookie, want 1", ctr.SyncookiesFailed)
	}
}

func TestWithoutSyncookiesTheSYNsPastTheBacklogAreDropped(t *testing.T) {
	const backlog, flood = 8, 40
	r := newRig(t, Config{SynBacklog: backlog, NoSyncookies: true})
	e := r.ends[0]
	l := e.listen(80, Options{})
	for i := range flood {
		e.inject(spoofedSYN(i))
	}
	if n := len(e.sent()); n != backlog {
		t.Fatalf("%d SYN-ACKs, want %d", n, backlog)
	}
	ctr := e.counters()
	if ctr.ListenDrops != flood-backlog || ctr.SyncookiesSent != 0 || ctr.PassiveOpens != backlog {
		t.Fatalf("ListenDrops %d, SyncookiesSent %d, PassiveOpens %d; want %d, 0, %d",
			ctr.ListenDrops, ctr.SyncookiesSent, ctr.PassiveOpens, flood-backlog, backlog)
	}
	if conns, _ := e.tbl.Conns(); conns != backlog || synqLen(l) != backlog {
		t.Fatalf("%d connections, SYN queue %d; want %d", conns, synqLen(l), backlog)
	}
	// No cookie is checked either: an ACK gets a RST, nothing counted.
	e.inject(seg{src: [4]byte{198, 19, 0, 1}, dst: addrA, sport: 9999, dport: 80, seq: 1, ack: 2, flags: ACK})
	one(t, e.sent(), RST)
	if ctr := e.counters(); ctr.SyncookiesFailed != 0 || ctr.SyncookiesRecv != 0 {
		t.Fatalf("SyncookiesFailed %d, SyncookiesRecv %d with cookies off", ctr.SyncookiesFailed, ctr.SyncookiesRecv)
	}
}

func TestHandshakesCompletedPastTheAcceptQueueAreDroppedUntilTheApplicationMakesRoom(t *testing.T) {
	r := newRig(t, Config{SomaxConn: 64})
	e := r.ends[0]
	l := e.listen(80, Options{Backlog: 2})
	ps := make([]*peer, 4)
	for i := range ps {
		ps[i] = newPeer(e, uint16(33001+i), 80)
		synAck(t, ps[i])
	}
	r.advance(10 * time.Millisecond)
	for _, p := range ps[:2] {
		p.send(p.seg(ACK, nil))
	}
	// The next two complete their handshakes into a full queue: their
	// ACKs are dropped, their half-open state kept.
	late := make([]seg, 2)
	for i, p := range ps[2:] {
		late[i] = p.seg(ACK|PSH, []byte("late"))
		p.send(late[i])
	}
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("final ACKs answered with %v", got)
	}
	ctr := e.counters()
	if ctr.ListenOverflows != 2 || ctr.ListenDrops != 2 {
		t.Fatalf("ListenOverflows %d, ListenDrops %d; want 2, 2", ctr.ListenOverflows, ctr.ListenDrops)
	}
	if n := acceptQLen(l); n != 2 {
		t.Fatalf("accept queue %d past its backlog of 2", n)
	}
	if conns, _ := e.tbl.Conns(); conns != 4 || synqLen(l) != 2 {
		t.Fatalf("%d connections, SYN queue %d; want 4, 2", conns, synqLen(l))
	}
	// A new SYN finds the queue full too.
	p5 := newPeer(e, 33009, 80)
	syn := p5.seg(SYN, nil)
	p5.synOpts(&syn)
	e.inject(syn)
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("a SYN to a full accept queue answered with %v", got)
	}
	if ctr := e.counters(); ctr.ListenOverflows != 3 || ctr.ListenDrops != 3 {
		t.Fatalf("ListenOverflows %d, ListenDrops %d; want 3, 3", ctr.ListenOverflows, ctr.ListenDrops)
	}
	// Room made: the peer's retransmission gets in, with its data.
	e.accept(l)
	e.accept(l)
	e.inject(late[0])
	ps[2].saw(e.sent())
	c := e.accept(l)
	if got := string(readN(t, c, 4)); got != "late" {
		t.Fatalf("read %q", got)
	}
	// The other is still half-open: its SYN-ACK comes again, and the
	// peer's answer gets in.
	r.advance(time.Second)
	sa := one(t, e.sent(), SYN|ACK)
	if sa.dport != ps[3].port {
		t.Fatalf("SYN-ACK %v resent, want one to port %d", sa, ps[3].port)
	}
	e.inject(late[1])
	ps[3].saw(e.sent())
	c = e.accept(l)
	if got := string(readN(t, c, 4)); got != "late" {
		t.Fatalf("read %q", got)
	}
	if synqLen(l) != 0 || acceptQLen(l) != 0 {
		t.Fatalf("SYN queue %d, accept queue %d at the end", synqLen(l), acceptQLen(l))
	}
}

func TestTinyOutOfOrderSegmentsThatNeverFillTheHolePinNoMoreThanTheReceiveBuffer(t *testing.T) {
	const rbuf, n = 16384, 300
	r, e, p, c := newEstablished(t, Config{}, Options{RecvBuffer: rbuf})
	limit := rbuf / engine.BufSize
	inUse0 := r.pool.Size() - r.pool.Available()
	_, _, rcvNxt := seqs(c)
	for i := range n {
		s := p.seg(ACK, []byte{byte(i)})
		s.seq = rcvNxt + 1 + uint32(i*53%16000) // distinct, in the window, never the hole
		e.inject(s)
		e.sent()
	}
	ctr := e.counters()
	held := int(e.host.held.n.Load())
	c.sh.Lock()
	ofoLen := c.ofo.Len()
	c.sh.Unlock()
	if held == 0 || held > limit || ofoLen != held {
		t.Fatalf("out-of-order queue holds %d entries, %d mbufs; want 1..%d", ofoLen, held, limit)
	}
	if ctr.TCPOFODrop == 0 || ctr.TCPOFOQueue+ctr.TCPOFODrop != n {
		t.Fatalf("TCPOFOQueue %d, TCPOFODrop %d for %d segments", ctr.TCPOFOQueue, ctr.TCPOFODrop, n)
	}
	if inUse := r.pool.Size() - r.pool.Available(); inUse-inUse0 > limit {
		t.Fatalf("%d mbufs out of the pool after the attack, %d before; the queue may pin %d", inUse, inUse0, limit)
	}
	if _, _, now := seqs(c); now != rcvNxt || c.avail.Load() != 0 {
		t.Fatalf("RCV.NXT %d -> %d, %d bytes readable", rcvNxt, now, c.avail.Load())
	}
	// The connection closes: everything held goes back.
	c.Close()
	e.sent()
	p.send(p.seg(RST, nil))
	if got := e.host.held.n.Load(); got != 0 {
		t.Fatalf("%d mbufs still held after the connection ended", got)
	}
	if inUse := r.pool.Size() - r.pool.Available(); inUse > inUse0 {
		t.Fatalf("%d mbufs out of the pool after the close, %d before", inUse, inUse0)
	}
}

func TestTinyInOrderSegmentsToAnApplicationThatDoesNotReadAreBoundedAndCloseTheWindow(t *testing.T) {
	const rbuf, n = 8192, 200
	r, e, p, c := newEstablished(t, Config{}, Options{RecvBuffer: rbuf})
	maxMbufs := 2*rbuf/engine.BufSize + 8
	inUse0 := r.pool.Size() - r.pool.Available()
	_, _, start := seqs(c)
	var last seg
	for i := range n {
		p.send(p.seg(ACK|PSH, []byte{byte(i)}))
		for _, s := range e.sent() {
			last = s
			p.nxt = s.ack // a dropped byte is sent again
			p.saw([]seg{s})
		}
	}
	ctr := e.counters()
	_, _, rcvNxt := seqs(c)
	got := int(rcvNxt - start)
	if got == 0 || got > maxMbufs || e.tbl.Held() != int64(got) {
		t.Fatalf("%d one-byte segments queued, %d mbufs held; want 1..%d", got, e.tbl.Held(), maxMbufs)
	}
	if ctr.TCPRcvQDrop == 0 {
		t.Fatal("nothing counted in TCPRcvQDrop")
	}
	if last.wnd != 0 {
		t.Fatalf("last ACK %v advertises a window to a queue that drops", last)
	}
	if inUse := r.pool.Size() - r.pool.Available(); inUse-inUse0 > maxMbufs {
		t.Fatalf("%d mbufs out of the pool after the attack, %d before", inUse, inUse0)
	}
	// The application reads: the window opens, and data flows again.
	b := readN(t, c, got)
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d is %d", i, b[i])
		}
	}
	upd := one(t, e.sent(), ACK)
	if upd.wnd == 0 {
		t.Fatalf("window update %v after reading everything", upd)
	}
	p.saw([]seg{upd})
	p.send(p.seg(ACK|PSH, []byte("more")))
	if s := string(readN(t, c, 4)); s != "more" {
		t.Fatalf("read %q after the window opened", s)
	}
	c.Close()
	if e.tbl.Held() != 0 {
		t.Fatalf("%d mbufs held after close", e.tbl.Held())
	}
}

func TestInitialSequenceNumbersPortsAndTimestampsOfTheNextConnectionCannotBeGuessed(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	const n = 16
	var isns, tsvals []uint32
	var ports []uint16
	for range n {
		e.open(0, addrB, 80, Options{})
		syn := one(t, e.sent(), SYN)
		isns, tsvals, ports = append(isns, syn.seq), append(tsvals, syn.opts.TSval), append(ports, syn.sport)
	}
	// Consecutive connections at the same instant: a counter would step
	// by a constant; a keyed hash of the tuple scatters them.
	spread := func(v []uint32) (uint32, bool) {
		lo, hi, steps := v[0], v[0], map[uint32]bool{}
		for i, x := range v {
			lo, hi = min(lo, x), max(hi, x)
			if i > 0 {
				steps[x-v[i-1]] = true
			}
		}
		return hi - lo, len(steps) == len(v)-1
	}
	if d, distinct := spread(isns); d < 1<<28 || !distinct {
		t.Fatalf("ISNs of consecutive connections %x: spread %x", isns, d)
	}
	if d, distinct := spread(tsvals); d < 1<<28 || !distinct {
		t.Fatalf("timestamps of consecutive connections %x: spread %x", tsvals, d)
	}
	steps := map[int]bool{}
	for i := 1; i < n; i++ {
		steps[int(ports[i])-int(ports[i-1])] = true
	}
	if len(steps) < 3 {
		t.Fatalf("ephemeral ports %v step by %v", ports, steps)
	}
	// Another stack with another secret: the same tuple at the same
	// instant starts elsewhere.
	t2, err := NewTable(Config{}, ephemeral.Range{Low: 40000, High: 40999}, siphash.Key{K0: 99, K1: 100}, e.host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(t2.Close)
	e.open(41000, addrB, 80, Options{})
	a := one(t, e.sent(), SYN)
	if _, err := t2.open(addrA, addrB, 41000, 80, Options{}); err != nil {
		t.Fatal(err)
	}
	b := one(t, e.sent(), SYN)
	if a.seq == b.seq || a.opts.TSval == b.opts.TSval {
		t.Fatalf("two secrets, one tuple: ISNs %x %x, TSvals %x %x", a.seq, b.seq, a.opts.TSval, b.opts.TSval)
	}
	// The same tuple later: the ISN moves on with the 4 µs clock (RFC
	// 6528), so the last incarnation's segments fall behind it.
	c := e.open(41001, addrB, 80, Options{})
	first := one(t, e.sent(), SYN)
	c.Close()
	r.advance(time.Second)
	e.sent() // the other SYNs, resent
	e.open(41001, addrB, 80, Options{})
	again := one(t, e.sent(), SYN)
	if again.seq-first.seq != uint32(time.Second/4000) {
		t.Fatalf("ISN of one tuple 1 s apart: %x then %x", first.seq, again.seq)
	}
}

func TestBlindDataWithAnACKBeforeTheLargestWindowIsChallengedAndNotDelivered(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{NoDelay: true})
	// Our side sends and the peer acknowledges: SND.UNA moves on.
	if _, err := c.Write(pattern(3000, 1)); err != nil {
		t.Fatal(err)
	}
	p.saw(e.sent())
	p.send(p.seg(ACK, nil))
	e.sent()
	una, nxt, rcvNxt := seqs(c)
	c.sh.Lock()
	maxWnd := c.maxSndWnd
	c.sh.Unlock()
	if una != nxt || maxWnd == 0 {
		t.Fatalf("una %d nxt %d max window %d", una, nxt, maxWnd)
	}
	s := p.seg(ACK|PSH, []byte("evil"))
	s.ack = una - maxWnd - 1 // RFC 5961 5.2: below SND.UNA - MAX.SND.WND
	e.inject(s)
	ack := one(t, e.sent(), ACK)
	if ack.seq != nxt || ack.ack != rcvNxt {
		t.Fatalf("challenge ACK %v, want seq %d ack %d", ack, nxt, rcvNxt)
	}
	if _, _, r2 := seqs(c); r2 != rcvNxt || c.avail.Load() != 0 {
		t.Fatalf("the blind data was taken: RCV.NXT %d -> %d", rcvNxt, r2)
	}
	if ctr := e.counters(); ctr.TCPChallengeACK != 1 {
		t.Fatalf("TCPChallengeACK %d, want 1", ctr.TCPChallengeACK)
	}
	// An old ACK within the range is fine: its data is delivered.
	g := p.seg(ACK|PSH, []byte("good"))
	g.ack = una - 100
	p.send(g)
	if got := string(readN(t, c, 4)); got != "good" {
		t.Fatalf("read %q", got)
	}
}

func TestABlindSegmentWithABadACKDoesNotMoveTheTimestampPAWSChecks(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	_, nxt, _ := seqs(c)
	for _, bad := range []uint32{nxt + 100000, nxt - 1<<30} { // ahead of SND.NXT, behind the window
		s := p.seg(ACK|PSH, []byte("evil"))
		s.ack = bad
		s.opts.TSval = p.ts + 1<<30 // far ahead: every later real segment would look old
		e.inject(s)
		e.sent()
	}
	p.send(p.seg(ACK|PSH, []byte("real")))
	if got := string(readN(t, c, 4)); got != "real" {
		t.Fatalf("read %q", got)
	}
	if ctr := e.counters(); ctr.PAWSEstab != 0 {
		t.Fatalf("PAWSEstab %d: the blind segments' timestamp was taken", ctr.PAWSEstab)
	}
}

func TestSegmentsWithOddFlagsToAListenerAreDroppedOrResetAsLinuxDoes(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	l := e.listen(80, Options{})
	cases := []struct {
		name  string
		flags tcpheader.Flags
		data  string
		want  tcpheader.Flags // 0: no answer
	}{
		{"SYN+FIN", SYN | FIN, "", 0},
		{"SYN+RST", SYN | RST, "", 0},
		{"SYN+FIN+PSH+URG", SYN | FIN | PSH | URG, "", 0},
		{"FIN", FIN, "", 0},
		{"no flags", 0, "", 0},
		{"URG", URG, "", 0},
		{"PSH with data", PSH, "x", 0},
		{"RST", RST, "", 0},
		{"RST+ACK", RST | ACK, "", 0},
		{"ACK", ACK, "", RST},
		{"FIN+ACK", FIN | ACK, "", RST},
		{"ACK with data", ACK | PSH, "data", RST},
		{"SYN+ACK", SYN | ACK, "", RST},
		{"SYN+URG", SYN | URG, "", SYN | ACK},
		{"SYN with data", SYN, "payload", SYN | ACK},
	}
	opens := 0
	for i, tc := range cases {
		s := seg{src: [4]byte{198, 19, 1, 1}, dst: addrA, sport: uint16(2000 + i), dport: 80, seq: 1000, ack: 5000,
			flags: tc.flags, wnd: 1000, data: []byte(tc.data)}
		if tc.flags&SYN != 0 {
			s.opts = tcpheader.Options{Present: tcpheader.HasMSS, MSS: 1460}
		}
		before := e.counters()
		e.inject(s)
		got := e.sent()
		after := e.counters()
		if tc.want == 0 {
			if len(got) != 0 {
				t.Fatalf("%s answered with %v", tc.name, got)
			}
		} else {
			a := one(t, got, tc.want)
			switch {
			case tc.want == RST && a.seq != s.ack:
				t.Fatalf("%s answered with %v, want a RST at %d", tc.name, a, s.ack)
			case tc.want == SYN|ACK && a.ack != s.seq+1:
				t.Fatalf("%s answered with %v, want the SYN alone acknowledged", tc.name, a)
			}
		}
		if tc.want == SYN|ACK {
			opens++
		}
		if after.OutRsts-before.OutRsts != map[bool]uint64{true: 1}[tc.want == RST] ||
			after.ListenDrops != 0 || after.PassiveOpens != uint64(opens) || after.InSegs != before.InSegs+1 {
			t.Fatalf("%s: counters %+v -> %+v", tc.name, before, after)
		}
		if conns, _ := e.tbl.Conns(); conns != opens || synqLen(l) != opens {
			t.Fatalf("%s: %d connections, SYN queue %d; want %d", tc.name, conns, synqLen(l), opens)
		}
	}
}

// rawSeg is a segment whose header and options the test writes as bytes.
func rawSeg(p *peer, doff int, opts []byte, data []byte) []byte {
	b := make([]byte, max(doff, tcpheader.HeaderLen)+len(data))
	h := tcpheader.Header{SrcPort: p.port, DstPort: p.lport, Seq: p.nxt, Ack: p.ack, DataOff: uint8(tcpheader.HeaderLen + len(opts)),
		Flags: ACK | PSH, Window: p.wnd}
	if _, err := h.Put(b, opts); err != nil {
		panic(err)
	}
	b[12] = byte(doff/4) << 4
	copy(b[max(doff, tcpheader.HeaderLen):], data)
	tcpheader.SetChecksum(p.addr, p.e.host.addr, b)
	return b
}

func TestSegmentsWithABadChecksumOrAMalformedHeaderAreCountedAndChangeNothing(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	una, nxt, rcvNxt := seqs(c)
	before := e.counters()
	// A bad checksum: on data, and on a RST at exactly RCV.NXT.
	d := p.seg(ACK|PSH, []byte("evil")).bytes()
	d[len(d)-1] ^= 0x40
	e.injectBytes(p.addr, e.host.addr, d)
	rst := p.seg(RST, nil).bytes()
	rst[16] ^= 1
	e.injectBytes(p.addr, e.host.addr, rst)
	// Malformed: options that do not parse, a data offset below the
	// header or past the segment, a header cut short.
	mss0 := []byte{2, 0, 0, 0}                        // an option of length 0
	mssLong := []byte{2, 8, 5, 0xb4}                  // an option longer than the options
	ts9 := []byte{8, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1} // timestamps of the wrong length
	e.injectBytes(p.addr, e.host.addr, rawSeg(p, 24, mss0, []byte("evil")))
	e.injectBytes(p.addr, e.host.addr, rawSeg(p, 24, mssLong, []byte("evil")))
	e.injectBytes(p.addr, e.host.addr, rawSeg(p, 32, ts9, []byte("evil")))
	e.injectBytes(p.addr, e.host.addr, rawSeg(p, 16, nil, []byte("evil")))
	past := rawSeg(p, 20, nil, []byte("evil"))
	past[12] = 15 << 4
	tcpheader.SetChecksum(p.addr, e.host.addr, past)
	e.injectBytes(p.addr, e.host.addr, past)
	e.injectBytes(p.addr, e.host.addr, p.seg(ACK, nil).bytes()[:12])
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("bad segments answered with %v", got)
	}
	after := e.counters()
	if after.InCsumErrors-before.InCsumErrors != 2 || after.InErrs-before.InErrs != 8 {
		t.Fatalf("InCsumErrors +%d, InErrs +%d; want +2, +8",
			after.InCsumErrors-before.InCsumErrors, after.InErrs-before.InErrs)
	}
	if u, n, r := seqs(c); u != una || n != nxt || r != rcvNxt || c.avail.Load() != 0 || c.State() != Established {
		t.Fatalf("bad segments moved the connection: %v una %d nxt %d rcv %d", c.State(), u, n, r)
	}
	// The same segment, well formed, is taken.
	p.send(p.seg(ACK|PSH, []byte("fine")))
	if got := readN(t, c, 4); !bytes.Equal(got, []byte("fine")) {
		t.Fatalf("read %q", got)
	}
}

func TestASYNWithABadChecksumOrMalformedOptionsOpensNothing(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	l := e.listen(80, Options{})
	syn := spoofedSYN(1).bytes()
	syn[len(syn)-1] ^= 1
	e.injectBytes(spoofedSYN(1).src, addrA, syn)
	p := newPeer(e, 4000, 80)
	b := rawSeg(p, 24, []byte{3, 2, 7, 0}, nil) // window scale of length 2
	b[13] = byte(SYN)
	tcpheader.SetChecksum(p.addr, addrA, b)
	e.injectBytes(p.addr, addrA, b)
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("bad SYNs answered with %v", got)
	}
	ctr := e.counters()
	if ctr.InCsumErrors != 1 || ctr.InErrs != 2 || ctr.PassiveOpens != 0 {
		t.Fatalf("InCsumErrors %d, InErrs %d, PassiveOpens %d; want 1, 2, 0", ctr.InCsumErrors, ctr.InErrs, ctr.PassiveOpens)
	}
	if conns, _ := e.tbl.Conns(); conns != 0 || synqLen(l) != 0 {
		t.Fatalf("%d connections, SYN queue %d after bad SYNs", conns, synqLen(l))
	}
}

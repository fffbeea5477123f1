package tcp

import (
	"io"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
)

// pairConn connects a (active) to a listener on b and returns both ends.
func pairConn(t *testing.T, r *rig) (ca, cb *Conn) {
	t.Helper()
	a, b := r.ends[0], r.ends[1]
	l := b.listen(80, Options{NoDelay: true})
	ca = a.open(0, addrB, 80, Options{NoDelay: true})
	r.pump(10)
	cb = b.accept(l)
	if ca.State() != Established || cb.State() != Established {
		t.Fatalf("states %v, %v after the handshake", ca.State(), cb.State())
	}
	return ca, cb
}

func wantStates(t *testing.T, step string, ca, cb *Conn, sa, sb State) {
	t.Helper()
	if a, b := ca.State(), cb.State(); a != sa || b != sb {
		t.Fatalf("%s: states %v, %v; want %v, %v", step, a, b, sa, sb)
	}
}

func TestAHalfCloseLetsThePeerKeepSendingUntilItsOwnFIN(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	a, b := r.ends[0], r.ends[1]
	ca, cb := pairConn(t, r)
	ca.Write([]byte("request"))
	if err := ca.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	wantStates(t, "CloseWrite", ca, cb, FinWait1, Established)
	ab := r.deliver(a, b)
	if len(ab) != 2 || string(ab[0].data) != "request" || ab[1].flags != tcpheader.ACK|tcpheader.FIN ||
		ab[1].seq != ab[0].seq+7 {
		t.Fatalf("sent %v, want the data then the FIN", ab)
	}
	wantStates(t, "FIN received", ca, cb, FinWait1, CloseWait)
	if got := string(readN(t, cb, 7)); got != "request" {
		t.Fatalf("read %q", got)
	}
	if _, err := readErr(cb); err != io.EOF {
		t.Fatalf("read after the FIN: %v, want EOF", err)
	}
	r.deliver(b, a)
	wantStates(t, "FIN acknowledged", ca, cb, FinWait2, CloseWait)
	// The half-closed side goes on talking.
	for i := range 3 {
		if _, err := cb.Write(pattern(3000, i)); err != nil {
			t.Fatal(err)
		}
		r.pump(10)
		if got := readN(t, ca, 3000); string(got) != string(pattern(3000, i)) {
			t.Fatalf("reply %d read back wrong", i)
		}
	}
	if _, err := ca.Write([]byte("x")); err == nil {
		t.Fatal("a write after CloseWrite succeeded")
	}
	if err := cb.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	wantStates(t, "second CloseWrite", ca, cb, FinWait2, LastAck)
	r.deliver(b, a)
	wantStates(t, "second FIN received", ca, cb, TimeWait, LastAck)
	r.deliver(a, b)
	wantStates(t, "second FIN acknowledged", ca, cb, TimeWait, Closed)
	if _, err := readErr(ca); err != io.EOF {
		t.Fatalf("read after the peer's FIN: %v, want EOF", err)
	}
	if _, tw := a.tbl.Conns(); tw != 1 {
		t.Fatalf("%d TIME-WAIT entries on the active closer", tw)
	}
	if conns, tw := b.tbl.Conns(); conns != 0 || tw != 0 {
		t.Fatalf("%d connections, %d TIME-WAIT on the passive closer", conns, tw)
	}
}

func TestSimultaneousCloseGoesThroughCLOSINGToTIMEWAITOnBothEnds(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	a, b := r.ends[0], r.ends[1]
	ca, cb := pairConn(t, r)
	ca.CloseWrite()
	cb.CloseWrite()
	wantStates(t, "both CloseWrite", ca, cb, FinWait1, FinWait1)
	ab, ba := a.takeOut(), b.takeOut() // the FINs cross
	deliverRaw(r, ab, b)
	deliverRaw(r, ba, a)
	wantStates(t, "FINs crossed", ca, cb, Closing, Closing)
	acks := append(r.deliver(a, b), r.deliver(b, a)...)
	for _, s := range acks {
		if s.flags != tcpheader.ACK {
			t.Fatalf("CLOSING sent %v, want ACKs", s)
		}
	}
	wantStates(t, "ACKs crossed", ca, cb, TimeWait, TimeWait)
	for _, e := range r.ends {
		if ctr := e.counters(); ctr.TW != 1 {
			t.Fatalf("TW %d", ctr.TW)
		}
	}
	if ab, ba := r.pump(10); len(ab)+len(ba) != 0 {
		t.Fatalf("TIME-WAIT sent %v %v", ab, ba)
	}
}

// deliverRaw hands segments taken with takeOut to e.
func deliverRaw(r *rig, out []outSeg, e *end) {
	for _, o := range out {
		b := make([]byte, o.m.PktLen())
		o.m.CopyOut(b, 0)
		parseOut(r.t, o)
		engine.Free(o.m)
		e.injectBytes(o.src, o.dst, b)
	}
}

func TestSimultaneousOpenReachesESTABLISHEDOnBothEnds(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	a, b := r.ends[0], r.ends[1]
	ca := a.open(6000, addrB, 5000, Options{})
	cb := b.open(5000, addrA, 6000, Options{})
	ab, ba := a.takeOut(), b.takeOut()
	deliverRaw(r, ab, b)
	deliverRaw(r, ba, a)
	wantStates(t, "SYNs crossed", ca, cb, SynReceived, SynReceived)
	sa, sb := r.deliver(a, b), r.deliver(b, a)
	for _, s := range append(sa, sb...) {
		if s.flags != tcpheader.SYN|tcpheader.ACK {
			t.Fatalf("SYN-RECEIVED sent %v, want a SYN-ACK", s)
		}
	}
	wantStates(t, "SYN-ACKs crossed", ca, cb, Established, Established)
	// The window of a SYN-ACK is not scaled (RFC 7323 2.2).
	if w := ca.Info().SndWnd; w != int(sb[0].wnd) {
		t.Fatalf("send window %d from a SYN-ACK offering %d", w, sb[0].wnd)
	}
	r.pump(10)
	for i, e := range r.ends {
		if ctr := e.counters(); ctr.TCPChallengeACK != 0 || ctr.TCPSYNChallenge != 0 || ctr.ActiveOpens != 1 {
			t.Fatalf("end %d: TCPChallengeACK %d, TCPSYNChallenge %d, ActiveOpens %d", i, ctr.TCPChallengeACK,
				ctr.TCPSYNChallenge, ctr.ActiveOpens)
		}
	}
	if err := ca.waitEstablished(t.Context()); err != nil {
		t.Fatal(err)
	}
	ca.Write([]byte("ping"))
	r.pump(10)
	if got := string(readN(t, cb, 4)); got != "ping" {
		t.Fatalf("read %q", got)
	}
	cb.Write([]byte("pong"))
	r.pump(10)
	if got := string(readN(t, ca, 4)); got != "pong" {
		t.Fatalf("read %q", got)
	}
}

// closeToTimeWait takes a connection from a scripted peer to TIME-WAIT:
// we close first, the peer acknowledges and sends its FIN.
func closeToTimeWait(t *testing.T, e *end, p *peer, c *Conn) {
	t.Helper()
	c.CloseWrite()
	p.saw([]seg{one(t, e.sent(), tcpheader.ACK|tcpheader.FIN)})
	p.send(p.seg(tcpheader.ACK, nil))
	if st := c.State(); st != FinWait2 {
		t.Fatalf("state %v", st)
	}
	p.send(p.seg(tcpheader.ACK|tcpheader.FIN, nil))
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.ack != p.nxt {
		t.Fatalf("FIN acknowledged with %v, want ack %d", ack, p.nxt)
	}
	if st := c.State(); st != TimeWait {
		t.Fatalf("state %v after the peer's FIN", st)
	}
}

func TestTIMEWAITLastsTwoMSLAndARetransmittedFINRestartsIt(t *testing.T) {
	const tw = 10 * time.Second
	r, e, p, c := newEstablished(t, Config{TimeWait: tw}, Options{})
	closeToTimeWait(t, e, p, c)
	start := r.now()
	r.advance(tw / 2)
	// The peer missed our ACK: its FIN again is acknowledged again.
	fin := p.seg(tcpheader.ACK|tcpheader.FIN, nil)
	fin.seq = p.nxt - 1
	e.inject(fin)
	ack := one(t, e.sent(), tcpheader.ACK)
	_, nxt, _ := seqs(c)
	if ack.ack != p.nxt || ack.seq != nxt {
		t.Fatalf("retransmitted FIN answered with %v, want seq %d ack %d", ack, nxt, p.nxt)
	}
	if !ack.opts.Has(tcpheader.HasTimestamps) || ack.opts.TSecr != fin.opts.TSval-1 && ack.opts.TSecr != fin.opts.TSval {
		t.Fatalf("TIME-WAIT ACK options %+v", ack.opts)
	}
	// The 2 MSL start again from the retransmission.
	r.advance(time.Duration(start+int64(tw)-r.now()) + time.Millisecond)
	if _, n := e.tbl.Conns(); n != 1 {
		t.Fatal("TIME-WAIT ended at its first deadline though a FIN restarted it")
	}
	r.advance(tw/2 - 3*time.Millisecond)
	if _, n := e.tbl.Conns(); n != 1 {
		t.Fatal("TIME-WAIT ended early")
	}
	r.advance(3 * time.Millisecond)
	if _, n := e.tbl.Conns(); n != 0 {
		t.Fatal("TIME-WAIT outlived its 2 MSL")
	}
	if ctr := e.counters(); ctr.TW != 1 {
		t.Fatalf("TW %d", ctr.TW)
	}
	// The tuple is free: a segment for it now finds nobody but the listener.
	e.inject(p.seg(tcpheader.ACK, nil))
	one(t, e.sent(), tcpheader.RST)
}

func TestANewSYNWithAHigherSequenceNumberReopensATIMEWAITTuple(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	closeToTimeWait(t, e, p, c)
	// An old duplicate SYN (older timestamp) is answered by TIME-WAIT.
	old := p.seg(tcpheader.SYN, nil)
	p.synOpts(&old)
	old.seq = p.nxt - 5000
	old.opts.TSval -= 1000
	e.inject(old)
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.ack != p.nxt {
		t.Fatalf("old SYN answered with %v", ack)
	}
	// A new incarnation goes to the listener.
	syn := p.seg(tcpheader.SYN, nil)
	p.synOpts(&syn)
	syn.seq = p.nxt + 100000
	e.inject(syn)
	sa := one(t, e.sent(), tcpheader.SYN|tcpheader.ACK)
	if sa.ack != syn.seq+1 {
		t.Fatalf("SYN-ACK %v, want ack %d", sa, syn.seq+1)
	}
	if conns, tw := e.tbl.Conns(); conns != 1 || tw != 0 {
		t.Fatalf("%d connections, %d TIME-WAIT after the new SYN", conns, tw)
	}
	if ctr := e.counters(); ctr.PassiveOpens != 2 {
		t.Fatalf("PassiveOpens %d", ctr.PassiveOpens)
	}
}

func TestTIMEWAITEntriesPastMaxTimeWaitAreNotKept(t *testing.T) {
	r := newRig(t, Config{MaxTimeWait: 1})
	e := r.ends[0]
	l := e.listen(80, Options{})
	for i := range 2 {
		p := newPeer(e, uint16(33000+i), 80)
		c := p.connect(l)
		closeToTimeWait(t, e, p, c)
	}
	if _, tw := e.tbl.Conns(); tw != 1 {
		t.Fatalf("%d TIME-WAIT entries with MaxTimeWait 1", tw)
	}
	if ctr := e.counters(); ctr.TCPTimeWaitOverflow != 1 || ctr.TW != 1 {
		t.Fatalf("TCPTimeWaitOverflow %d, TW %d; want 1, 1", ctr.TCPTimeWaitOverflow, ctr.TW)
	}
}

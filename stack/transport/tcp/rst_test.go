package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/transport/tcp/challenge"
)

func TestARSTAtExactlyRCVNXTResetsTheConnection(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{})
	_ = r
	p.send(p.seg(tcpheader.RST, nil))
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("a RST was answered with %v", got)
	}
	if s := c.State(); s != Closed {
		t.Fatalf("state %v after the RST", s)
	}
	if _, err := readErr(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the RST: %v, want ECONNRESET", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write after the RST: %v, want ECONNRESET", err)
	}
	if ctr := e.counters(); ctr.EstabResets != 1 || ctr.TCPChallengeACK != 0 {
		t.Fatalf("EstabResets %d, TCPChallengeACK %d; want 1, 0", ctr.EstabResets, ctr.TCPChallengeACK)
	}
	if conns, _ := e.tbl.Conns(); conns != 0 {
		t.Fatalf("%d connections left in the table", conns)
	}
}

func TestAnInWindowRSTNotAtRCVNXTIsAnsweredWithAChallengeACKAndTheConnectionSurvives(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	una, nxt, rcvNxt := seqs(c)
	s := p.seg(tcpheader.RST, nil)
	s.seq += 100
	e.inject(s)
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.seq != nxt || ack.ack != rcvNxt || una != nxt {
		t.Fatalf("challenge ACK %v, want seq %d ack %d", ack, nxt, rcvNxt)
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v after an in-window RST", st)
	}
	if ctr := e.counters(); ctr.TCPChallengeACK != 1 || ctr.EstabResets != 0 {
		t.Fatalf("TCPChallengeACK %d, EstabResets %d; want 1, 0", ctr.TCPChallengeACK, ctr.EstabResets)
	}
	// The real peer, told where we are, resets at the exact number.
	p.send(p.seg(tcpheader.RST, nil))
	if st := c.State(); st != Closed {
		t.Fatalf("state %v after the exact RST", st)
	}
}

func TestAnOutOfWindowRSTIsDroppedSilently(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	for _, off := range []uint32{1 << 30, ^uint32(0), ^uint32(1000)} { // far ahead, one behind, further behind
		s := p.seg(tcpheader.RST, nil)
		s.seq += off
		e.inject(s)
		if got := e.sent(); len(got) != 0 {
			t.Fatalf("RST at RCV.NXT%+d answered with %v", int32(off), got)
		}
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v after out-of-window RSTs", st)
	}
	if ctr := e.counters(); ctr.TCPChallengeACK != 0 || ctr.EstabResets != 0 {
		t.Fatalf("counters %+v", ctr)
	}
}

func TestAFloodOfInWindowRSTsGetsOneChallengeACKPerRateLimitInterval(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{})
	flood := func() int {
		for i := range 200 {
			s := p.seg(tcpheader.RST, nil)
			s.seq += uint32(1 + i)
			e.inject(s)
		}
		return len(e.sent())
	}
	if n := flood(); n != 1 {
		t.Fatalf("%d challenge ACKs for 200 RSTs in one instant, want 1", n)
	}
	r.advance(time.Duration(challenge.InvalidRateLimit) - time.Millisecond)
	if n := flood(); n != 0 {
		t.Fatalf("%d challenge ACKs within %v of the last", n, time.Duration(challenge.InvalidRateLimit))
	}
	r.advance(time.Millisecond)
	if n := flood(); n != 1 {
		t.Fatalf("%d challenge ACKs once the interval passed, want 1", n)
	}
	ctr := e.counters()
	if ctr.TCPChallengeACK != 2 || ctr.TCPACKSkippedChallenge != 598 {
		t.Fatalf("TCPChallengeACK %d, TCPACKSkippedChallenge %d; want 2, 598", ctr.TCPChallengeACK, ctr.TCPACKSkippedChallenge)
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v after the flood", st)
	}
}

func TestASYNInEstablishedIsAnsweredWithAChallengeACK(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{})
	_, nxt, rcvNxt := seqs(c)
	for i, off := range []uint32{0, 1000, 1 << 30} { // at RCV.NXT, in the window, far outside
		s := p.seg(tcpheader.SYN, nil)
		p.synOpts(&s)
		s.seq += off
		e.inject(s)
		ack := one(t, e.sent(), tcpheader.ACK)
		if ack.seq != nxt || ack.ack != rcvNxt {
			t.Fatalf("SYN at RCV.NXT+%d answered with %v, want seq %d ack %d", off, ack, nxt, rcvNxt)
		}
		if ctr := e.counters(); ctr.TCPSYNChallenge != uint64(i+1) {
			t.Fatalf("TCPSYNChallenge %d after %d SYNs", ctr.TCPSYNChallenge, i+1)
		}
		r.advance(time.Second) // past the rate limit
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v after SYNs", st)
	}
	// The connection still works.
	p.send(p.seg(tcpheader.ACK|tcpheader.PSH, []byte("hello")))
	if got := string(readN(t, c, 5)); got != "hello" {
		t.Fatalf("read %q", got)
	}
}

func TestAnACKOfDataNeverSentIsChallengedAndIgnored(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	una, nxt, rcvNxt := seqs(c)
	s := p.seg(tcpheader.ACK|tcpheader.PSH, []byte("data"))
	s.ack = nxt + 5000
	e.inject(s)
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.seq != nxt || ack.ack != rcvNxt {
		t.Fatalf("challenge ACK %v, want seq %d ack %d", ack, nxt, rcvNxt)
	}
	if una2, nxt2, rcvNxt2 := seqs(c); una2 != una || nxt2 != nxt || rcvNxt2 != rcvNxt {
		t.Fatalf("the bad ACK moved the connection: una %d->%d nxt %d->%d rcv %d->%d", una, una2, nxt, nxt2, rcvNxt, rcvNxt2)
	}
	if ctr := e.counters(); ctr.TCPChallengeACK != 1 || ctr.TCPACKSkippedChallenge != 0 {
		t.Fatalf("TCPChallengeACK %d, TCPACKSkippedChallenge %d; want 1, 0", ctr.TCPChallengeACK, ctr.TCPACKSkippedChallenge)
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v", st)
	}
}

func TestARSTInSYNSENTCountsOnlyWithTheRightACK(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	c := e.open(40001, addrB, 80, Options{})
	syn := one(t, e.sent(), tcpheader.SYN)
	rst := seg{src: addrB, dst: addrA, sport: 80, dport: 40001, seq: 0, flags: tcpheader.RST | tcpheader.ACK}
	for _, bad := range []uint32{syn.seq, syn.seq + 2, syn.seq - 100} {
		rst.ack = bad
		e.inject(rst)
		if got := e.sent(); len(got) != 0 {
			t.Fatalf("RST with ACK %d answered with %v", bad, got)
		}
		if st := c.State(); st != SynSent {
			t.Fatalf("state %v after a RST with a wrong ACK", st)
		}
	}
	// A RST without ACK cannot be checked: ignored too.
	e.inject(seg{src: addrB, dst: addrA, sport: 80, dport: 40001, flags: tcpheader.RST})
	if st := c.State(); st != SynSent {
		t.Fatalf("state %v after a RST without ACK", st)
	}
	rst.ack = syn.seq + 1
	e.inject(rst)
	if st := c.State(); st != Closed {
		t.Fatalf("state %v after the right RST", st)
	}
	if err := c.waitEstablished(t.Context()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}
	if ctr := e.counters(); ctr.AttemptFails != 1 || ctr.OutRsts != 0 {
		t.Fatalf("AttemptFails %d, OutRsts %d; want 1, 0", ctr.AttemptFails, ctr.OutRsts)
	}
}

func TestASegmentToNobodyIsAnsweredWithARST(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	e.inject(seg{src: addrB, dst: addrA, sport: 1234, dport: 81, seq: 1000, ack: 777, flags: tcpheader.ACK})
	rst := one(t, e.sent(), tcpheader.RST)
	if rst.seq != 777 {
		t.Fatalf("RST %v, want seq 777", rst)
	}
	e.inject(seg{src: addrB, dst: addrA, sport: 1234, dport: 81, seq: 1000, flags: tcpheader.SYN, data: []byte("ab")})
	rst = one(t, e.sent(), tcpheader.RST|tcpheader.ACK)
	if rst.seq != 0 || rst.ack != 1003 {
		t.Fatalf("RST %v, want seq 0 ack 1003", rst)
	}
	e.inject(seg{src: addrB, dst: addrA, sport: 1234, dport: 81, seq: 1000, flags: tcpheader.RST})
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("a RST to nobody answered with %v", got)
	}
	if ctr := e.counters(); ctr.OutRsts != 2 {
		t.Fatalf("OutRsts %d, want 2", ctr.OutRsts)
	}
}

package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
)

func TestAReceiverThatDoesNotReadAdvertisesAZeroWindowAndDropsWhatComesBeyondIt(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{RecvBuffer: 8192})
	const scale = 7 // our shift: the largest tcp_rmem needs it
	var last seg
	for i := range 8 {
		p.send(p.seg(tcpheader.ACK, pattern(1024, i)))
		last = one(t, e.sent(), tcpheader.ACK)
		p.saw([]seg{last})
		if want := uint32(8192 - 1024*(i+1)); uint32(last.wnd)<<scale != want || last.ack != p.nxt {
			t.Fatalf("after %d KiB: ACK %v, want ack %d window %d", i+1, last, p.nxt, want)
		}
	}
	if ctr := e.counters(); ctr.TCPWantZeroWindowAdv == 0 {
		t.Fatal("a zero window advertised and not counted")
	}
	// A byte beyond the window is dropped and answered with the window.
	rcvNxt := p.nxt
	p.send(p.seg(tcpheader.ACK|tcpheader.PSH, []byte{1}))
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.wnd != 0 || ack.ack != rcvNxt {
		t.Fatalf("a byte beyond a zero window answered with %v, want ack %d window 0", ack, rcvNxt)
	}
	p.nxt = rcvNxt
	if ctr := e.counters(); ctr.TCPZeroWindowDrop != 1 {
		t.Fatalf("TCPZeroWindowDrop %d, want 1", ctr.TCPZeroWindowDrop)
	}
	// Reading everything reopens the window at once.
	got := readN(t, c, 8192)
	for i := range 8 {
		if !bytes.Equal(got[i*1024:(i+1)*1024], pattern(1024, i)) {
			t.Fatalf("KiB %d read back wrong", i)
		}
	}
	upd := one(t, e.sent(), tcpheader.ACK)
	if uint32(upd.wnd)<<scale != 8192 || upd.ack != rcvNxt {
		t.Fatalf("window update %v, want ack %d window 8192", upd, rcvNxt)
	}
	p.saw([]seg{upd})
	p.send(p.seg(tcpheader.ACK|tcpheader.PSH, []byte("more")))
	if s := string(readN(t, c, 4)); s != "more" {
		t.Fatalf("read %q after the window opened", s)
	}
}

func TestASenderFacingAZeroWindowProbesWithBackoffAndResumesWhenItOpens(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{NoDelay: true})
	// The peer offers 1 KiB (8 << its shift of 7).
	p.wnd = 8
	p.send(p.seg(tcpheader.ACK, nil))
	e.sent()
	data := pattern(3000, 1)
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	// Less than a segment fits and the window is small (silly-window
	// avoidance): it goes when the persist timer fires, an RTO later.
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("sent %v at once into a window smaller than a segment", got)
	}
	c.sh.Lock()
	rto := time.Duration(c.est.RTO())
	c.sh.Unlock()
	r.advance(rto - time.Millisecond)
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("sent %v before the persist timer", got)
	}
	r.advance(2 * time.Millisecond)
	first := one(t, e.sent(), tcpheader.ACK)
	if len(first.data) != 1024 || !bytes.Equal(first.data, data[:1024]) {
		t.Fatalf("sent %d bytes into a 1024-byte window", len(first.data))
	}
	p.saw([]seg{first})
	// The peer takes it and closes its window.
	p.wnd = 0
	p.send(p.seg(tcpheader.ACK, nil))
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("sent %v into a zero window", got)
	}
	una, _, _ := seqs(c)
	c.sh.Lock()
	rto = time.Duration(c.est.RTO())
	c.sh.Unlock()
	// Probes at RTO, then 2 RTO, then 4 RTO later: one segment each,
	// SND.UNA-1 and no data.
	at := r.now()
	var times []int64
	for step := 0; len(times) < 3 && step < 10000; step++ {
		r.advance(time.Millisecond)
		for _, s := range e.sent() {
			if s.flags != tcpheader.ACK || s.seq != una-1 || len(s.data) != 0 {
				t.Fatalf("sent %v into a zero window, want a probe with seq %d", s, una-1)
			}
			times = append(times, r.now()-at)
			at = r.now()
			// A peer answers a probe with its window, still zero.
			p.saw([]seg{s})
			p.send(p.seg(tcpheader.ACK, nil))
		}
	}
	if len(times) != 3 {
		t.Fatalf("%d probes in 10 s", len(times))
	}
	for i, d := range times {
		want := int64(rto) << i
		if d < want || d > want+2e6 {
			t.Fatalf("probe %d after %v, want %v", i+1, time.Duration(d), time.Duration(want))
		}
	}
	// The window opens: the rest goes at once.
	p.wnd = 512
	p.send(p.seg(tcpheader.ACK, nil))
	var rest []byte
	for _, s := range e.sent() {
		if s.seq != una+uint32(len(rest)) {
			t.Fatalf("segment %v out of order", s)
		}
		rest = append(rest, s.data...)
	}
	if !bytes.Equal(rest, data[1024:]) {
		t.Fatalf("sent %d bytes after the window opened, want %d", len(rest), len(data)-1024)
	}
}

func TestATransferIntoAReceiverThatStopsReadingStallsOnAZeroWindowAndCompletesWhenItReads(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	a, b := r.ends[0], r.ends[1]
	l := b.listen(80, Options{RecvBuffer: 16384})
	ca := a.open(0, addrB, 80, Options{})
	r.pump(10)
	cb := b.accept(l)
	const total = 256 << 10
	data := pattern(total, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		ca.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, werr = ca.Write(data)
		ca.CloseWrite()
	}()
	var got []byte
	probes, zeroAdv := 0, 0
	buf := make([]byte, total) // room for all a Read takes: nothing left behind in the reader
	reading := false
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < total || ca.State() != FinWait2 {
		if time.Now().After(deadline) {
			ua, na, _ := seqs(ca)
			_, _, rb := seqs(cb)
			ca.sh.Lock()
			dbg := fmt.Sprintf("A %v una %d nxt %d dataEnd %d wnd %d rtx %v/%d fin %v/%v; B %v rcvNxt %d avail %d",
				ca.state, ua, na, uint32(ca.sndq.Nxt()), ca.sndWnd, ca.rtx.Armed(), ca.rtxWhat, ca.finQueued, ca.finSent,
				cb.state, rb, cb.avail.Load())
			ca.sh.Unlock()
			t.Fatalf("stuck at %d of %d bytes: %s", len(got), total, dbg)
		}
		ab, ba := r.deliver(a, b), r.deliver(b, a)
		_, _, rcvNxt := seqs(cb)
		for _, s := range ab {
			if len(s.data) == 0 && s.flags == tcpheader.ACK && s.seq == rcvNxt-1 {
				probes++
			}
		}
		for _, s := range ba {
			if s.wnd == 0 {
				zeroAdv++
			}
		}
		if !reading && probes >= 2 {
			reading = true // the stall is seen: read from now on
		}
		if reading {
			for cb.avail.Load() > 0 {
				n, err := cb.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, buf[:n]...)
			}
		}
		if len(ab)+len(ba) == 0 {
			// Quiet: on to the next timer (a probe, a delayed ACK).
			if when, ok := r.nextTimer(); ok && when > r.now() {
				r.advance(time.Duration(when - r.now()))
			} else {
				r.advance(time.Millisecond)
			}
			time.Sleep(100 * time.Microsecond) // let the writer refill
		} else {
			r.advance(100 * time.Microsecond) // a short path's delay
		}
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
	if zeroAdv == 0 || probes < 2 {
		t.Fatalf("%d zero windows advertised, %d probes", zeroAdv, probes)
	}
	if _, err := readErr(cb); err == nil || err.Error() != "EOF" {
		t.Fatalf("read after the FIN: %v, want EOF", err)
	}
}

func TestAnOldTimestampIsDroppedByPAWS(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	p.send(p.seg(tcpheader.ACK|tcpheader.PSH, []byte("one")))
	p.saw(e.sent())
	_, _, rcvNxt := seqs(c)
	old := p.seg(tcpheader.ACK|tcpheader.PSH, []byte("two"))
	old.opts.TSval -= 100
	e.inject(old)
	ack := one(t, e.sent(), tcpheader.ACK)
	if ack.ack != rcvNxt {
		t.Fatalf("PAWS drop answered with %v, want ack %d", ack, rcvNxt)
	}
	if _, _, n := seqs(c); n != rcvNxt {
		t.Fatalf("RCV.NXT moved from %d to %d on an old timestamp", rcvNxt, n)
	}
	if ctr := e.counters(); ctr.PAWSEstab != 1 {
		t.Fatalf("PAWSEstab %d, want 1", ctr.PAWSEstab)
	}
	// The same bytes with a fresh timestamp are taken.
	p.send(p.seg(tcpheader.ACK|tcpheader.PSH, []byte("two")))
	if s := string(readN(t, c, 6)); s != "onetwo" {
		t.Fatalf("read %q", s)
	}
}

func TestOutOfOrderDataIsSACKedAtOnceAndTheFilledHoleAckedCumulatively(t *testing.T) {
	_, e, p, c := newEstablished(t, Config{}, Options{})
	base := p.nxt
	s2 := p.seg(tcpheader.ACK, pattern(1000, 2))
	s2.seq = base + 1000
	e.inject(s2)
	s3 := p.seg(tcpheader.ACK, pattern(1000, 3))
	s3.seq = base + 3000 // a second hole before it
	e.inject(s3)
	acks := e.sent()
	if len(acks) != 2 {
		t.Fatalf("out-of-order segments answered with %v, want two ACKs", acks)
	}
	for i, a := range acks {
		if a.ack != base || a.opts.NumSACK != uint8(i+1) {
			t.Fatalf("ACK %d: %v, want ack %d and %d SACK blocks", i, a, base, i+1)
		}
	}
	// The most recent block first (RFC 2018 4).
	if b := acks[1].opts.SACK[:2]; b[0] != (tcpheader.SACKBlock{Left: base + 3000, Right: base + 4000}) ||
		b[1] != (tcpheader.SACKBlock{Left: base + 1000, Right: base + 2000}) {
		t.Fatalf("SACK blocks %v", b)
	}
	if ctr := e.counters(); ctr.TCPOFOQueue != 2 {
		t.Fatalf("TCPOFOQueue %d, want 2", ctr.TCPOFOQueue)
	}
	s1 := p.seg(tcpheader.ACK, pattern(1000, 1))
	s1.seq = base
	e.inject(s1)
	a := one(t, e.sent(), tcpheader.ACK)
	if a.ack != base+2000 || a.opts.NumSACK != 1 || a.opts.SACK[0] != (tcpheader.SACKBlock{Left: base + 3000, Right: base + 4000}) {
		t.Fatalf("first hole filled: %v, want ack %d and the one block left", a, base+2000)
	}
	s4 := p.seg(tcpheader.ACK, pattern(1000, 4))
	s4.seq = base + 2000
	e.inject(s4)
	a = one(t, e.sent(), tcpheader.ACK)
	if a.ack != base+4000 || a.opts.NumSACK != 0 {
		t.Fatalf("last hole filled: %v, want ack %d and no SACK", a, base+4000)
	}
	got := readN(t, c, 4000)
	want := append(append(append(pattern(1000, 1), pattern(1000, 2)...), pattern(1000, 4)...), pattern(1000, 3)...)
	if !bytes.Equal(got, want) {
		t.Fatal("the stream read back out of order")
	}
	e.sent() // the window update
	// A duplicate is reported with a D-SACK block (RFC 2883).
	dup := p.seg(tcpheader.ACK, pattern(1000, 1))
	dup.seq = base
	e.inject(dup)
	a = one(t, e.sent(), tcpheader.ACK)
	if a.ack != base+4000 || a.opts.NumSACK != 1 || a.opts.SACK[0] != (tcpheader.SACKBlock{Left: base, Right: base + 1000}) {
		t.Fatalf("duplicate answered with %v, want a D-SACK of [%d,%d)", a, base, base+1000)
	}
}

func TestKeepaliveProbesAnIdlePeerAndKeepsTheConnectionWhileItAnswers(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{})
	c.SetKeepAlive(true)
	c.SetKeepAlivePeriod(10 * time.Second)
	c.SetKeepAliveProbes(3)
	una, _, rcvNxt := seqs(c)
	for i := range 5 {
		r.advance(10*time.Second - 2*time.Millisecond)
		if got := e.sent(); len(got) != 0 {
			t.Fatalf("sent %v before the idle time passed", got)
		}
		r.advance(2 * time.Millisecond)
		probe := one(t, e.sent(), tcpheader.ACK)
		if probe.seq != una-1 || probe.ack != rcvNxt || len(probe.data) != 0 {
			t.Fatalf("keepalive probe %v, want seq %d ack %d", probe, una-1, rcvNxt)
		}
		if ctr := e.counters(); ctr.TCPKeepAlive != uint64(i+1) {
			t.Fatalf("TCPKeepAlive %d after %d probes", ctr.TCPKeepAlive, i+1)
		}
		// The peer answers (an ACK for an old segment).
		r.advance(time.Millisecond)
		p.saw([]seg{probe})
		p.send(p.seg(tcpheader.ACK, nil))
		if got := e.sent(); len(got) != 0 {
			t.Fatalf("the answer to a probe answered with %v", got)
		}
	}
	if st := c.State(); st != Established {
		t.Fatalf("state %v with a peer that answers", st)
	}
}

func TestKeepaliveGivesUpOnASilentPeerAfterTheProbeCount(t *testing.T) {
	r, e, _, c := newEstablished(t, Config{}, Options{})
	c.SetKeepAlive(true)
	c.SetKeepAlivePeriod(10 * time.Second)
	c.SetKeepAliveProbes(3)
	una, nxt, _ := seqs(c)
	for i := range 3 {
		r.advance(10 * time.Second)
		probe := one(t, e.sent(), tcpheader.ACK)
		if probe.seq != una-1 {
			t.Fatalf("probe %d: %v", i+1, probe)
		}
	}
	r.advance(10*time.Second - 2*time.Millisecond)
	if got := e.sent(); len(got) != 0 || c.State() != Established {
		t.Fatalf("gave up early: sent %v", got)
	}
	r.advance(2 * time.Millisecond)
	rst := one(t, e.sent(), tcpheader.RST)
	if rst.seq != nxt {
		t.Fatalf("RST %v, want seq %d", rst, nxt)
	}
	if st := c.State(); st != Closed {
		t.Fatalf("state %v after the last probe", st)
	}
	if _, err := readErr(c); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("read: %v, want ETIMEDOUT", err)
	}
	if ctr := e.counters(); ctr.TCPKeepAlive != 3 || ctr.TCPAbortOnTimeout != 1 || ctr.OutRsts != 1 {
		t.Fatalf("TCPKeepAlive %d, TCPAbortOnTimeout %d, OutRsts %d; want 3, 1, 1", ctr.TCPKeepAlive, ctr.TCPAbortOnTimeout, ctr.OutRsts)
	}
}

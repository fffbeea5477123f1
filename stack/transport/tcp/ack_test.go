package tcp

import (
	"bytes"
	"testing"
	"time"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
)

// acksFor sends one full segment from the peer and reports whether our end
// answered it at once.
func acksFor(p *peer, data []byte) bool {
	p.send(p.seg(tcpheader.ACK, data))
	out := p.e.sent()
	p.saw(out)
	return len(out) == 1 && out[0].flags == tcpheader.ACK && out[0].ack == p.nxt
}

func TestDelayedACKsAfterTheQuickAcksAndQuickAcksAgainAfterIdle(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{})
	data := pattern(1000, 1)
	for i := range quickAckSegments {
		if !acksFor(p, data) {
			t.Fatalf("segment %d of a new connection not acknowledged at once", i)
		}
		readN(t, c, len(data))
		p.saw(e.sent()) // a window update, if reading opened enough
	}
	// Past the quick acks, a lone small segment waits for the delayed ACK.
	if acksFor(p, data) {
		t.Fatal("a lone segment after the quick acks was acknowledged at once")
	}
	r.advance(200 * time.Millisecond)
	if out := e.sent(); len(out) != 1 || out[0].ack != p.nxt || e.counters().DelayedACKs != 1 {
		t.Fatalf("delayed ACK timer sent %v (DelayedACKs %d)", out, e.counters().DelayedACKs)
	}
	readN(t, c, len(data))
	p.saw(e.sent())
	// Two segments in a row are acknowledged at the second.
	if acksFor(p, data) {
		t.Fatal("first of two segments acknowledged at once")
	}
	if !acksFor(p, data) {
		t.Fatal("second of two segments not acknowledged at once")
	}
	readN(t, c, 2*len(data))
	p.saw(e.sent())
	// After the peer was idle for longer than the RTO: quick acks again.
	r.advance(5 * time.Second)
	if out := e.sent(); len(out) != 0 {
		t.Fatalf("sent %v while idle", out)
	}
	if !acksFor(p, data) {
		t.Fatal("the first segment after an idle period was not acknowledged at once")
	}
}

func TestATailLossIsFoundByAProbeBeforeTheRetransmissionTimeout(t *testing.T) {
	r, e, p, c := newEstablished(t, Config{}, Options{NoDelay: true})
	if _, err := c.Write(pattern(10*1000, 2)); err != nil {
		t.Fatal(err)
	}
	segs := e.sent()
	if len(segs) < 3 {
		t.Fatalf("sent %d segments", len(segs))
	}
	last := segs[len(segs)-1]
	// Everything but the last two segments arrives and is acknowledged: no
	// SACK can tell the sender of the loss, nothing else is in flight. (With
	// one segment out, the probe would wait for a delayed ACK as long as
	// the RTO: RFC 8985 7.2.)
	p.saw(segs[:len(segs)-2])
	p.send(p.seg(tcpheader.ACK, nil))
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("sent %v on the ACK", got)
	}
	c.sh.Lock()
	srtt, rto := time.Duration(c.est.SRTT()), time.Duration(c.est.RTO())
	c.sh.Unlock()
	pto := 2*srtt + time.Duration(probeSlack)
	if pto >= rto {
		t.Fatalf("probe timeout %v not shorter than the RTO %v", pto, rto)
	}
	r.advance(pto - time.Millisecond)
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("sent %v before the probe timeout", got)
	}
	r.advance(2 * time.Millisecond)
	probe := one(t, e.sent(), tcpheader.ACK|tcpheader.PSH)
	if probe.seq != last.seq || !bytes.Equal(probe.data, last.data) {
		t.Fatalf("probe %v, want the last segment %v again", probe, last)
	}
	if ctr := e.counters(); ctr.TCPLossProbes != 1 || ctr.TCPTimeouts != 0 {
		t.Fatalf("TCPLossProbes %d, TCPTimeouts %d; want 1 and 0", ctr.TCPLossProbes, ctr.TCPTimeouts)
	}
	p.saw(segs[len(segs)-2:])
	p.send(p.seg(tcpheader.ACK, nil))
	r.advance(2 * rto)
	if got := e.sent(); len(got) != 0 || e.counters().TCPTimeouts != 0 {
		t.Fatalf("after the probe was acknowledged: sent %v, %d timeouts", got, e.counters().TCPTimeouts)
	}
}

package tcp

import (
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

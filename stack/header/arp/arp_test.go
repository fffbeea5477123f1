package arp

import (
	"bytes"
	"testing"

	"github.com/pollnet/pollnet/stack/header/eth"
)

// A captured request: 198.18.0.1 at 52:54:00:12:34:56 asks for 198.18.0.2,
// padded to 60 bytes.
var requestFrame = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
	0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
	0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

var (
	macA = eth.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	macB = eth.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	ipA  = [4]byte{198, 18, 0, 1}
	ipB  = [4]byte{198, 18, 0, 2}
)

func TestParseCaptured(t *testing.T) {
	p, err := Parse(requestFrame[eth.HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{Op: OpRequest, SenderMAC: macA, SenderIP: ipA, TargetIP: ipB}
	if p != want || p.IsGratuitous() || p.IsProbe() {
		t.Fatalf("got %+v", p)
	}
}

func TestBuildFrames(t *testing.T) {
	b := make([]byte, 64)
	n, err := PutRequest(b, macA, ipA, ipB)
	if err != nil || n != FrameLen || !bytes.Equal(b[:n], requestFrame[:FrameLen]) {
		t.Fatalf("request frame %x, %v", b[:n], err)
	}
	req, _ := Parse(b[eth.HeaderLen:n])
	n, err = ReplyTo(b, req, macB)
	if err != nil || n != FrameLen {
		t.Fatal(err)
	}
	h, _ := eth.Parse(b)
	rep, err := Parse(b[eth.HeaderLen:n])
	if err != nil || h.Dst != macA || h.Src != macB || h.Type != eth.TypeARP ||
		rep != (Packet{Op: OpReply, SenderMAC: macB, SenderIP: ipB, TargetMAC: macA, TargetIP: ipA}) {
		t.Fatalf("reply %+v %+v %v", h, rep, err)
	}
	if _, err := PutRequest(b[:FrameLen-1], macA, ipA, ipB); err != ErrShortBuffer {
		t.Fatal(err)
	}
	if err := (Packet{}).Put(b[:PacketLen-1]); err != ErrShortBuffer {
		t.Fatal(err)
	}
	g := Packet{Op: OpRequest, SenderMAC: macA, SenderIP: ipA, TargetIP: ipA}
	probe := Packet{Op: OpRequest, SenderMAC: macA, TargetIP: ipA}
	if !g.IsGratuitous() || !probe.IsProbe() || g.IsProbe() {
		t.Fatal("gratuitous/probe predicates")
	}
}

func TestParseErrors(t *testing.T) {
	pkt := func(i int, v byte) []byte {
		b := append([]byte(nil), requestFrame[eth.HeaderLen:]...)
		b[i] = v
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", requestFrame[eth.HeaderLen : eth.HeaderLen+27], ErrTruncated},
		{"htype", pkt(1, 6), ErrHardwareType},
		{"ptype", pkt(2, 0x86), ErrProtocolType},
		{"hlen", pkt(4, 8), ErrAddrLen},
		{"plen", pkt(5, 16), ErrAddrLen},
		{"op 3", pkt(7, 3), ErrOp},
		{"op 0", pkt(7, 0), ErrOp},
	} {
		if _, err := Parse(c.b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	b := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		p, _ := Parse(requestFrame[eth.HeaderLen:])
		ReplyTo(b, p, macB)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// TestReplyToAProbe: a probe (RFC 5227) is answered to the prober's MAC with
// target protocol address 0.0.0.0, as Linux's arp_process answers one.
func TestReplyToAProbe(t *testing.T) {
	want := []byte{
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
		0xc6, 0x12, 0x00, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00,
	}
	probe := Packet{Op: OpRequest, SenderMAC: macA, TargetIP: ipB}
	b := make([]byte, FrameLen)
	if n, err := ReplyTo(b, probe, macB); err != nil || n != FrameLen || !bytes.Equal(b, want) {
		t.Fatalf("reply to probe %x, %v\nwant              %x", b, err, want)
	}
}

// TestUnicastRequest: a request re-checking a known address goes to that
// address's MAC, otherwise as a broadcast request.
func TestUnicastRequest(t *testing.T) {
	b := make([]byte, FrameLen)
	if n, err := PutRequestTo(b, macA, macB, ipB, ipA); err != nil || n != FrameLen {
		t.Fatal(err)
	}
	want := append([]byte(nil), requestFrame[:FrameLen]...)
	n, _ := PutRequest(want, macB, ipB, ipA)
	copy(want[0:6], macA[:])
	if !bytes.Equal(b, want[:n]) {
		t.Fatalf("unicast request %x\nwant            %x", b, want[:n])
	}
}

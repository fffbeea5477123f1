package icmp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// A captured echo request (ping -s 8), the IP payload only.
var echoRequest = []byte{
	0x08, 0x00, 0x9d, 0x4b, 0x00, 0x07, 0x00, 0x01,
	0x6f, 0x52, 0x3b, 0x65, 0x00, 0x00, 0x00, 0x00,
}

func init() {
	echoRequest[2], echoRequest[3] = 0, 0
	binary.BigEndian.PutUint16(echoRequest[2:4], ipv4.Checksum(echoRequest, 0))
}

// udpDatagram is a UDP datagram from 198.18.0.1:40000 to 198.18.0.2:53.
func udpDatagram(payload int) []byte {
	b := make([]byte, 28+payload)
	ipv4.Header{TotalLen: uint16(len(b)), TTL: 64, Protocol: ipv4.ProtoUDP,
		Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}}.Put(b, nil)
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], 53)
	binary.BigEndian.PutUint16(b[24:], uint16(8+payload))
	return b
}

func TestEcho(t *testing.T) {
	m, err := Parse(echoRequest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != TypeEchoRequest || m.ID != 7 || m.Seq != 1 || !bytes.Equal(m.Body, echoRequest[8:]) {
		t.Fatalf("parsed %+v", m)
	}
	b := make([]byte, 64)
	n, err := PutEcho(b, TypeEchoRequest, 7, 1, echoRequest[8:])
	if err != nil || !bytes.Equal(b[:n], echoRequest) {
		t.Fatalf("PutEcho %x %v", b[:n], err)
	}
	r := append([]byte(nil), echoRequest...)
	if err := EchoReplyInPlace(r); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	wn, _ := PutEcho(want, TypeEchoReply, 7, 1, echoRequest[8:])
	if !bytes.Equal(r, want[:wn]) {
		t.Fatalf("in-place reply %x, built %x", r, want[:wn])
	}
	if err := EchoReplyInPlace(r); err != ErrType {
		t.Fatalf("reply to a reply: %v", err)
	}
	if err := EchoReplyInPlace(r[:7]); err != ErrTruncated {
		t.Fatal(err)
	}
	if _, err := PutEcho(b, TypeTimeExceeded, 0, 0, nil); err != ErrType {
		t.Fatal(err)
	}
	if _, err := PutEcho(b[:15], TypeEchoRequest, 0, 0, echoRequest[8:]); err != ErrShortBuffer {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	d := udpDatagram(100)
	b := make([]byte, 100)
	n, err := PutDestUnreachable(b, CodeFragNeeded, 1400, d)
	if err != nil || n != 8+28 {
		t.Fatalf("frag needed: %d %v", n, err)
	}
	m, err := Parse(b[:n])
	if err != nil || m.Type != TypeDestUnreachable || m.Code != CodeFragNeeded || m.MTU != 1400 || !bytes.Equal(m.Body, d[:28]) {
		t.Fatalf("parsed %+v %v", m, err)
	}
	h, rest, err := m.Quoted()
	if err != nil || h.Protocol != ipv4.ProtoUDP || binary.BigEndian.Uint16(rest[2:]) != 53 || len(rest) != 8 {
		t.Fatalf("quoted %+v %x %v", h, rest, err)
	}
	n, _ = PutDestUnreachable(b, CodePortUnreachable, 1400, d)
	if m, _ := Parse(b[:n]); m.MTU != 0 || m.Code != CodePortUnreachable {
		t.Fatalf("port unreachable carries an MTU: %+v", m)
	}
	n, _ = PutTimeExceeded(b, CodeReassemblyExceeded, d)
	if m, err := Parse(b[:n]); err != nil || m.Type != TypeTimeExceeded || m.Code != 1 {
		t.Fatalf("time exceeded %+v %v", m, err)
	}
	n, _ = PutParameterProblem(b, 9, d)
	if m, err := Parse(b[:n]); err != nil || m.Pointer != 9 {
		t.Fatalf("parameter problem %+v %v", m, err)
	}
	if _, err := PutTimeExceeded(b[:35], 0, d); err != ErrShortBuffer {
		t.Fatal(err)
	}
	// Options lengthen the quote; short and malformed datagrams are cut.
	withOpts := make([]byte, 24+20)
	ipv4.Header{TotalLen: 44, Protocol: 17}.Put(withOpts, []byte{1, 1, 1, 0})
	if q := Quote(withOpts); len(q) != 32 {
		t.Fatalf("quote with options: %d bytes", len(q))
	}
	if q := Quote(d[:10]); len(q) != 10 {
		t.Fatal("short quote")
	}
	if q := Quote(bytes.Repeat([]byte{0xff}, 40)); len(q) != 28 {
		t.Fatal("junk quote")
	}
}

func TestParseRefusals(t *testing.T) {
	bad := append([]byte(nil), echoRequest...)
	bad[9] ^= 1
	if _, err := Parse(bad); err != ErrChecksum {
		t.Fatal(err)
	}
	if _, err := Parse(echoRequest[:7]); err != ErrTruncated {
		t.Fatal(err)
	}
	if m, err := ParseUnverified(bad); err != nil || m.ID != 7 {
		t.Fatal(err)
	}
	// An error message quoting less than a header and 8 bytes.
	b := make([]byte, 64)
	n, _ := PutDestUnreachable(b, CodePortUnreachable, 0, udpDatagram(0)[:27])
	if _, err := Parse(b[:n]); err != ErrQuote {
		t.Fatalf("short quote: %v", err)
	}
	redirect := []byte{5, 1, 0, 0, 198, 18, 0, 254}
	redirect = append(redirect, udpDatagram(0)...)
	binary.BigEndian.PutUint16(redirect[2:], ipv4.Checksum(redirect, 0))
	if m, err := Parse(redirect); err != nil || m.Gateway != [4]byte{198, 18, 0, 254} {
		t.Fatalf("redirect %+v %v", m, err)
	}
	// Unknown types parse (so they can be counted) without a quote check.
	unknown := []byte{200, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(unknown[2:], ipv4.Checksum(unknown, 0))
	if m, err := Parse(unknown); err != nil || m.Type != 200 {
		t.Fatal(err)
	}
}

func TestErrorAllowed(t *testing.T) {
	with := func(f func(b []byte)) []byte {
		b := udpDatagram(8)
		f(b)
		return b
	}
	icmpErr := make([]byte, 20+36)
	ipv4.Header{TotalLen: 56, Protocol: ipv4.ProtoICMP, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}}.Put(icmpErr, nil)
	PutDestUnreachable(icmpErr[20:], CodePortUnreachable, 0, udpDatagram(0))
	echo := make([]byte, 20+16)
	ipv4.Header{TotalLen: 36, Protocol: ipv4.ProtoICMP, Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}}.Put(echo, nil)
	copy(echo[20:], echoRequest)
	for _, c := range []struct {
		name  string
		b     []byte
		bcast bool
		want  bool
	}{
		{"udp", udpDatagram(8), false, true},
		{"echo", echo, false, true},
		{"link broadcast", udpDatagram(8), true, false},
		{"icmp error", icmpErr, false, false},
		{"icmp cut", echo[:20], false, false},
		{"later fragment", with(func(b []byte) { b[7] = 1 }), false, false},
		{"first fragment", with(func(b []byte) { b[6] = 0x20 }), false, true},
		{"multicast dst", with(func(b []byte) { b[16] = 239 }), false, false},
		{"limited broadcast dst", with(func(b []byte) { copy(b[16:], []byte{255, 255, 255, 255}) }), false, false},
		{"zero src", with(func(b []byte) { copy(b[12:], []byte{0, 0, 0, 0}) }), false, false},
		{"multicast src", with(func(b []byte) { b[12] = 224 }), false, false},
		{"junk", []byte{1, 2, 3}, false, false},
	} {
		if got := ErrorAllowed(c.b, c.bcast); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	b := make([]byte, 128)
	d := udpDatagram(100)
	if n := testing.AllocsPerRun(100, func() {
		m, _ := Parse(echoRequest)
		PutEcho(b, TypeEchoReply, m.ID, m.Seq, m.Body)
		EchoReplyInPlace(b)
		PutDestUnreachable(b, CodeFragNeeded, 1400, d)
		ErrorAllowed(d, false)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

package ipv4

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// A captured ICMP echo request datagram (84 bytes, ping from 10.0.2.15).
var pingDatagram = []byte{
	0x45, 0x00, 0x00, 0x54, 0x3b, 0x6a, 0x40, 0x00, 0x40, 0x01, 0xe7, 0x3b, 0x0a, 0x00, 0x02, 0x0f,
	0x0a, 0x00, 0x02, 0x02, 0x08, 0x00, 0x5a, 0x1d, 0x00, 0x07, 0x00, 0x01, 0x6f, 0x52, 0x3b, 0x65,
	0x00, 0x00, 0x00, 0x00, 0x5c, 0x2a, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13,
	0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,
	0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
	0x34, 0x35, 0x36, 0x37,
}

func init() {
	// Fix the captured checksum up for our copy (the capture's was
	// offloaded), so the vector is a valid datagram.
	pingDatagram[10], pingDatagram[11] = 0, 0
	binary.BigEndian.PutUint16(pingDatagram[10:12], Checksum(pingDatagram[:20], 0))
}

func TestParseCaptured(t *testing.T) {
	h, err := Parse(pingDatagram)
	if err != nil {
		t.Fatal(err)
	}
	if h.HeaderLen != 20 || h.TotalLen != 84 || h.ID != 0x3b6a || !h.DF() || h.MF() || h.IsFragment() ||
		h.TTL != 64 || h.Protocol != ProtoICMP || h.Src != [4]byte{10, 0, 2, 15} || h.Dst != [4]byte{10, 0, 2, 2} ||
		h.PayloadLen() != 64 || h.OptionsLen() != 0 {
		t.Fatalf("parsed %+v", h)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	opts := []byte{0x94, 0x04, 0x00, 0x00} // router alert
	for _, h := range []Header{
		{TOS: 0xb8, TotalLen: 1500, ID: 0xbeef, Flags: FlagMF, FragOff: 1480, TTL: 1, Protocol: ProtoUDP,
			Src: [4]byte{198, 18, 1, 2}, Dst: [4]byte{198, 19, 255, 255}},
		{TotalLen: 24, Flags: FlagDF | FlagReserved, FragOff: 65528, TTL: 255, Protocol: ProtoTCP},
	} {
		for _, o := range [][]byte{nil, opts} {
			b := make([]byte, 64)
			n, err := h.Put(b, o)
			if err != nil || n != HeaderLen+len(o) {
				t.Fatalf("Put: %d %v", n, err)
			}
			got, err := ParseHeader(b[:n], int(h.TotalLen))
			if err != nil {
				t.Fatal(err)
			}
			want := h
			want.HeaderLen = uint8(n)
			want.Checksum = got.Checksum
			if got != want || !bytes.Equal(b[20:n], o) {
				t.Fatalf("round trip: got %+v want %+v", got, want)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	mut := func(f func(b []byte), fix bool) []byte {
		b := append([]byte(nil), pingDatagram...)
		f(b)
		if fix {
			hl := int(b[0]&0xf) * 4
			b[10], b[11] = 0, 0
			binary.BigEndian.PutUint16(b[10:12], Checksum(b[:hl], 0))
		}
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrTruncated},
		{"19 bytes", pingDatagram[:19], ErrTruncated},
		{"version 6", mut(func(b []byte) { b[0] = 0x65 }, true), ErrVersion},
		{"ihl 4", mut(func(b []byte) { b[0] = 0x44 }, false), ErrHeaderLen},
		{"ihl past data", mut(func(b []byte) { b[0] = 0x4f }, false)[:40], ErrTruncated},
		{"total too long", mut(func(b []byte) { b[3] = 85 }, true), ErrTotalLen},
		{"total below header", mut(func(b []byte) { b[2], b[3] = 0, 19 }, true), ErrTotalLen},
		{"cut datagram", pingDatagram[:83], ErrTotalLen},
		{"checksum", mut(func(b []byte) { b[8] = 63 }, false), ErrChecksum},
	} {
		if _, err := Parse(c.b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// Padding after the datagram is fine; the offloaded variant skips
	// only the checksum.
	if _, err := Parse(append(append([]byte(nil), pingDatagram...), 0, 0, 0)); err != nil {
		t.Fatalf("padded: %v", err)
	}
	bad := append([]byte(nil), pingDatagram...)
	bad[11] ^= 1
	if _, err := ParseOffloaded(bad, len(bad)); err != nil {
		t.Fatalf("offloaded: %v", err)
	}
}

func TestPutErrors(t *testing.T) {
	h := Header{TotalLen: 40}
	if _, err := h.Put(make([]byte, 19), nil); err != ErrShortBuffer {
		t.Fatal(err)
	}
	if _, err := h.Put(make([]byte, 60), []byte{1, 1, 1}); err != ErrOptions {
		t.Fatal(err)
	}
	if _, err := h.Put(make([]byte, 80), make([]byte, 44)); err != ErrOptions {
		t.Fatal(err)
	}
	if _, err := (Header{TotalLen: 23}).Put(make([]byte, 60), make([]byte, 4)); err != ErrTotalLen {
		t.Fatal(err)
	}
}

func TestParseNoAllocs(t *testing.T) {
	b := make([]byte, 60)
	if n := testing.AllocsPerRun(100, func() {
		h, _ := Parse(pingDatagram)
		h.Put(b, nil)
		DecTTL(b)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		h, err := Parse(pingDatagram)
		if err != nil || h.Protocol != ProtoICMP {
			b.Fatal(err)
		}
	}
}

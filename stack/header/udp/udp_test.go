package udp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum/rfc1071"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

var (
	src = [4]byte{198, 18, 0, 1}
	dst = [4]byte{198, 18, 0, 2}
)

// A DNS query for example.com as captured, the IP payload only (the
// checksum was recomputed for these addresses).
var dnsQuery = []byte{
	0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0x00, 0x00,
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x03, 'c', 'o', 'm', 0x00, 0x00, 0x01, 0x00, 0x01,
}

func init() { SetChecksum(dnsQuery, src, dst) }

// refChecksum is the datagram's checksum by the plain RFC 1071 loop, 0
// sent as 0xffff.
func refChecksum(b []byte) uint16 {
	if c := rfc1071.Transport(src, dst, ipv4.ProtoUDP, b, 6); c != 0 {
		return c
	}
	return 0xffff
}

func TestParse(t *testing.T) {
	h, err := ParseChecked(dnsQuery, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if h.SrcPort != 40000 || h.DstPort != 53 || h.Length != 37 || h.PayloadLen() != 29 || h.Checksum != refChecksum(dnsQuery) {
		t.Fatalf("parsed %+v (reference checksum %#x)", h, refChecksum(dnsQuery))
	}
	out := make([]byte, 8)
	if err := h.Put(out); err != nil || !bytes.Equal(out, dnsQuery[:8]) {
		t.Fatal("Put differs")
	}
	// Trailing bytes beyond the length field are ignored.
	padded := append(append([]byte(nil), dnsQuery...), 0, 0, 0)
	if _, err := ParseChecked(padded, src, dst); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	withLen := func(n uint16) []byte {
		b := append([]byte(nil), dnsQuery...)
		binary.BigEndian.PutUint16(b[4:], n)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", dnsQuery[:7], ErrTruncated},
		{"length 7", withLen(7), ErrLength},
		{"length past payload", withLen(38), ErrLength},
		{"ip payload cut", dnsQuery[:36], ErrLength},
	} {
		if _, err := Parse(c.b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	bad := append([]byte(nil), dnsQuery...)
	bad[20] ^= 0x40
	if _, err := ParseChecked(bad, src, dst); err != ErrChecksum {
		t.Fatalf("corrupt: %v", err)
	}
	if _, err := ParseChecked(dnsQuery, src, [4]byte{198, 18, 0, 3}); err != ErrChecksum {
		t.Fatalf("wrong pseudo-header: %v", err)
	}
	if err := (Header{}).Put(make([]byte, 7)); err != ErrShortBuffer {
		t.Fatal(err)
	}
	if VerifyChecksum(dnsQuery[:7], src, dst) || Checksum(nil, src, dst) != 0xffff {
		t.Fatal("short datagram checksums")
	}
}

func TestNoChecksumAndZeroSum(t *testing.T) {
	b := append([]byte(nil), dnsQuery...)
	b[6], b[7] = 0, 0
	if !VerifyChecksum(b, src, dst) {
		t.Fatal("checksum 0 (none) refused")
	}
	// Find payload bytes whose checksum computes to 0, to see it sent as
	// 0xffff and still verify.
	z := make([]byte, 10)
	binary.BigEndian.PutUint16(z[4:], 10)
	for v := 0; v < 0x10000; v++ {
		binary.BigEndian.PutUint16(z[8:], uint16(v))
		z[6], z[7] = 0, 0
		s := ipv4.Sum(z, ipv4.PseudoSum(src, dst, ipv4.ProtoUDP, 10))
		if s != 0xffff {
			continue
		}
		if c := Checksum(z, src, dst); c != 0xffff {
			t.Fatalf("a zero sum went out as %#x", c)
		}
		SetChecksum(z, src, dst)
		if !VerifyChecksum(z, src, dst) {
			t.Fatal("0xffff checksum does not verify")
		}
		return
	}
	t.Fatal("no payload sums to zero")
}

func TestChecksumMatchesReference(t *testing.T) {
	for n := 8; n < 200; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*13 + n)
		}
		binary.BigEndian.PutUint16(b[4:], uint16(n))
		if got, want := Checksum(b, src, dst), refChecksum(b); got != want {
			t.Fatalf("len %d: %#x want %#x", n, got, want)
		}
		SetChecksum(b, src, dst)
		if !VerifyChecksum(b, src, dst) {
			t.Fatalf("len %d: own checksum fails", n)
		}
	}
}

func TestMbuf(t *testing.T) {
	p, err := engine.NewPool(t.Name(), 32, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := new(engine.Caches)
	defer func() {
		cs.Flush()
		if p.Available() != p.Size() {
			t.Error("mbuf leak")
		}
		p.Close()
	}()
	big := make([]byte, 5001)
	for i := range big {
		big[i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(big[4:], uint16(len(big)))
	SetChecksum(big, src, dst)
	// Three bytes of junk in front (an offset) and odd segment sizes.
	m, _ := cs.Alloc(p)
	defer cs.Free(m)
	d, _ := m.Append(3)
	copy(d, "xyz")
	if err := cs.AppendBytes(m, p, big); err != nil {
		t.Fatal(err)
	}
	if !VerifyMbuf(m, 3, len(big), src, dst) {
		t.Fatal("chained datagram does not verify")
	}
	if c := ChecksumMbuf(m, 3, len(big), src, dst); c != binary.BigEndian.Uint16(big[6:]) {
		t.Fatalf("ChecksumMbuf %#x, want %#x", c, binary.BigEndian.Uint16(big[6:]))
	}
	if VerifyMbuf(m, 3, len(big), src, [4]byte{1, 2, 3, 4}) || VerifyMbuf(m, 3, 7, src, dst) || VerifyMbuf(m, 6000, 8, src, dst) {
		t.Fatal("bad datagrams verify")
	}
	if ChecksumMbuf(m, 6000, 8, src, dst) != 0xffff {
		t.Fatal("out-of-range ChecksumMbuf")
	}
}

func TestNoAllocs(t *testing.T) {
	b := append([]byte(nil), dnsQuery...)
	if n := testing.AllocsPerRun(100, func() {
		h, _ := ParseChecked(b, src, dst)
		h.Put(b)
		SetChecksum(b, src, dst)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum/rfc1071"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

var (
	src = [4]byte{198, 18, 0, 1}
	dst = [4]byte{198, 18, 0, 2}
)

// A SYN as Linux sends it, written out by hand from the RFC 9293 3.1 layout:
// 198.18.0.1:40000 -> 198.18.0.2:8080, ISN 0x12345678, window 64240, and the
// options MSS 1460, SACK-permitted folded into the timestamps' padding,
// TSval 0x01020304 TSecr 0, NOP, window scale 7. The checksum is filled in
// by init from the reference loop.
var linuxSYN = []byte{
	0x9c, 0x40, 0x1f, 0x90, // ports
	0x12, 0x34, 0x56, 0x78, // sequence number
	0x00, 0x00, 0x00, 0x00, // acknowledgement number
	0xa0, 0x02, // data offset 10 words, flags SYN
	0xfa, 0xf0, // window 64240
	0x00, 0x00, // checksum
	0x00, 0x00, // urgent pointer
	0x02, 0x04, 0x05, 0xb4, // MSS 1460
	0x04, 0x02, 0x08, 0x0a, // SACK_PERM, then timestamps kind and length
	0x01, 0x02, 0x03, 0x04, // TSval
	0x00, 0x00, 0x00, 0x00, // TSecr
	0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
}

// A data segment (ACK|PSH, 5 payload bytes) with timestamps and two SACK
// blocks, aligned as Linux writes them.
var sackData = []byte{
	0x1f, 0x90, 0x9c, 0x40,
	0xab, 0xcd, 0x00, 0x01,
	0x12, 0x34, 0x56, 0x79,
	0xd0, 0x18, // 13 words, ACK|PSH
	0x01, 0xf6, // window 502
	0x00, 0x00,
	0x00, 0x00,
	0x01, 0x01, 0x08, 0x0a, // NOP NOP timestamps
	0x00, 0x00, 0x10, 0x00, // TSval 4096
	0x01, 0x02, 0x03, 0x04, // TSecr
	0x01, 0x01, 0x05, 0x12, // NOP NOP SACK, 2+16
	0x12, 0x34, 0x60, 0x00, 0x12, 0x34, 0x70, 0x00, // block 1
	0x12, 0x34, 0x80, 0x00, 0x12, 0x34, 0x90, 0x00, // block 2
	'h', 'e', 'l', 'l', 'o',
}

func init() {
	binary.BigEndian.PutUint16(linuxSYN[16:], refChecksum(linuxSYN))
	binary.BigEndian.PutUint16(sackData[16:], refChecksum(sackData))
}

// refChecksum is the segment's checksum by the plain RFC 1071 loop.
func refChecksum(b []byte) uint16 { return rfc1071.Transport(src, dst, ipv4.ProtoTCP, b, 16) }

func TestParseReadsEveryFieldOfALinuxSYN(t *testing.T) {
	h, err := Parse(linuxSYN)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		SrcPort: 40000, DstPort: 8080, Seq: 0x12345678, Ack: 0, DataOff: 40,
		Flags: SYN, Window: 64240, Checksum: refChecksum(linuxSYN), Urgent: 0,
	}
	if h != want {
		t.Fatalf("parsed %+v\nwant   %+v", h, want)
	}
	if h.OptionsLen() != 20 || !Verify(src, dst, linuxSYN) {
		t.Fatalf("options %d bytes, checksum verifies %v", h.OptionsLen(), Verify(src, dst, linuxSYN))
	}
	o, err := ParseOptions(linuxSYN[HeaderLen:h.DataOff])
	if err != nil {
		t.Fatal(err)
	}
	wo := Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWScale, MSS: 1460, WScale: 7, TSval: 0x01020304}
	if o != wo {
		t.Fatalf("options %+v\nwant    %+v", o, wo)
	}
}

func TestAParsedSYNIsWrittenBackByteForByte(t *testing.T) {
	h, _ := Parse(linuxSYN)
	o, _ := ParseOptions(linuxSYN[HeaderLen:h.DataOff])
	var ob [MaxOptionsLen]byte
	n, err := o.Put(ob[:])
	if err != nil || n != 20 || n != o.Len() {
		t.Fatalf("options Put %d (Len %d), %v", n, o.Len(), err)
	}
	out := make([]byte, 40)
	h.Checksum = 0
	if hl, err := h.Put(out, ob[:n]); err != nil || hl != 40 {
		t.Fatalf("Put %d, %v", hl, err)
	}
	SetChecksum(src, dst, out)
	if !bytes.Equal(out, linuxSYN) {
		t.Fatalf("wrote %x\nwant  %x", out, linuxSYN)
	}
}

func TestADataSegmentWithTimestampsAndSACKRoundTrips(t *testing.T) {
	h, err := Parse(sackData)
	if err != nil {
		t.Fatal(err)
	}
	if h.Flags != ACK|PSH || h.DataOff != 52 || h.Seq != 0xabcd0001 || h.Ack != 0x12345679 || h.Window != 502 {
		t.Fatalf("parsed %+v", h)
	}
	o, err := ParseOptions(sackData[HeaderLen:h.DataOff])
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Present: HasTimestamps, TSval: 4096, TSecr: 0x01020304, NumSACK: 2,
		SACK: [4]SACKBlock{{0x12346000, 0x12347000}, {0x12348000, 0x12349000}}}
	if o != want {
		t.Fatalf("options %+v\nwant    %+v", o, want)
	}
	out := make([]byte, len(sackData))
	var ob [MaxOptionsLen]byte
	n, _ := o.Put(ob[:])
	hl, err := h.Put(out, ob[:n])
	if err != nil {
		t.Fatal(err)
	}
	copy(out[hl:], "hello")
	if !bytes.Equal(out, sackData) || !Verify(src, dst, out) {
		t.Fatalf("wrote %x\nwant  %x", out, sackData)
	}
}

func TestFlagsKeepTheirWireBitsAndReservedBitsSurvive(t *testing.T) {
	for i, f := range []Flags{FIN, SYN, RST, PSH, ACK, URG, ECE, CWR} {
		if f != 1<<i {
			t.Fatalf("%v is bit %d", f, i)
		}
	}
	if s := (SYN | ACK | CWR).String(); s != "SYN|ACK|CWR" {
		t.Fatal(s)
	}
	if Flags(0).String() != "none" {
		t.Fatal(Flags(0).String())
	}
	b := append([]byte(nil), linuxSYN...)
	b[12] |= 0x0f
	b[13] = 0xff
	h, err := Parse(b)
	if err != nil || h.Reserved != 0x0f || h.Flags != 0xff || h.DataOff != 40 {
		t.Fatalf("%+v %v", h, err)
	}
	out := make([]byte, 40)
	h.Put(out, b[HeaderLen:40])
	if !bytes.Equal(out, b) {
		t.Fatalf("wrote %x\nwant  %x", out, b)
	}
}

func TestParseRejectsEachMalformedHeader(t *testing.T) {
	withOff := func(words byte) []byte {
		b := append([]byte(nil), linuxSYN...)
		b[12] = words<<4 | b[12]&0x0f
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrTruncated},
		{"19 bytes", linuxSYN[:19], ErrTruncated},
		{"data offset 0", withOff(0), ErrDataOff},
		{"data offset 4 words", withOff(4), ErrDataOff},
		{"options cut short", linuxSYN[:39], ErrTruncated},
		{"data offset 15 words past a 40-byte segment", withOff(15), ErrTruncated},
	} {
		if _, err := Parse(c.b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// The smallest and largest offsets are accepted when the bytes are there.
	if h, err := Parse(withOff(5)); err != nil || h.DataOff != 20 || h.OptionsLen() != 0 {
		t.Fatalf("offset 5: %+v %v", h, err)
	}
	b60 := append(withOff(15), make([]byte, 20)...)
	if h, err := Parse(b60); err != nil || h.DataOff != 60 {
		t.Fatalf("offset 15: %+v %v", h, err)
	}
}

func TestPutRefusesBadOptionsAndShortBuffers(t *testing.T) {
	h := Header{SrcPort: 1, DstPort: 2, Flags: ACK}
	for _, c := range []struct {
		name string
		b    []byte
		opts []byte
		err  error
	}{
		{"options not a multiple of 4", make([]byte, 60), make([]byte, 3), ErrOptionsLen},
		{"options of 44 bytes", make([]byte, 64), make([]byte, 44), ErrOptionsLen},
		{"buffer of 19 bytes", make([]byte, 19), nil, ErrShortBuffer},
		{"buffer without room for options", make([]byte, 23), make([]byte, 4), ErrShortBuffer},
	} {
		if n, err := h.Put(c.b, c.opts); err != c.err || n != 0 {
			t.Errorf("%s: %d, %v, want %v", c.name, n, err, c.err)
		}
	}
	if n, err := h.Put(make([]byte, 60), make([]byte, 40)); n != 60 || err != nil {
		t.Fatalf("40 bytes of options: %d %v", n, err)
	}
}

func TestChecksumMatchesTheReferenceAndBothZerosVerify(t *testing.T) {
	for n := HeaderLen; n < 200; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*13 + n)
		}
		if got, want := Checksum(src, dst, b), refChecksum(b); got != want {
			t.Fatalf("len %d: %#x want %#x", n, got, want)
		}
		SetChecksum(src, dst, b)
		if !Verify(src, dst, b) {
			t.Fatalf("len %d: own checksum fails", n)
		}
		if Verify(src, [4]byte{198, 18, 0, 3}, b) {
			t.Fatalf("len %d: verifies under another destination", n)
		}
		b[n-1] ^= 0x10
		if Verify(src, dst, b) {
			t.Fatalf("len %d: a flipped bit verifies", n)
		}
	}
	// A segment whose checksum computes to 0 also verifies with the other
	// encoding of zero, 0xffff.
	z := make([]byte, 22)
	for v := 0; v < 0x10000; v++ {
		binary.BigEndian.PutUint16(z[20:], uint16(v))
		if Checksum(src, dst, z) != 0 {
			continue
		}
		SetChecksum(src, dst, z)
		if !Verify(src, dst, z) {
			t.Fatal("checksum 0 does not verify")
		}
		z[16], z[17] = 0xff, 0xff
		if !Verify(src, dst, z) {
			t.Fatal("checksum 0xffff does not verify")
		}
		return
	}
	t.Fatal("no segment sums to zero")
}

func TestShortSegmentsNeverVerify(t *testing.T) {
	if Verify(src, dst, make([]byte, 19)) || Checksum(src, dst, nil) != 0 {
		t.Fatal("a segment shorter than a header checksums")
	}
	SetChecksum(src, dst, make([]byte, 19)) // writes nothing, does not panic
}

func TestMbufChecksumsAcrossSegmentsAndAFieldThatStraddlesTwo(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	seg := make([]byte, 3001)
	h := Header{SrcPort: 5, DstPort: 6, Seq: 7, Flags: ACK, Window: 100}
	h.Put(seg, nil)
	for i := HeaderLen; i < len(seg); i++ {
		seg[i] = byte(i * 7)
	}
	want := Checksum(src, dst, seg)
	// Three bytes of junk in front; the first segment ends between the two
	// checksum bytes (3+17), the next at an odd length.
	m := mbuftest.Packet(t, cs, p, append([]byte("xyz"), seg...), 20, 7)
	defer cs.Free(m)
	if m.Segs() < 3 {
		t.Fatalf("%d segments", m.Segs())
	}
	if c := ChecksumMbuf(m, 3, len(seg), src, dst); c != want {
		t.Fatalf("ChecksumMbuf %#x, want %#x", c, want)
	}
	if VerifyMbuf(m, 3, len(seg), src, dst) {
		t.Fatal("a zero checksum field verifies")
	}
	if err := SetChecksumMbuf(m, 3, len(seg), src, dst); err != nil {
		t.Fatal(err)
	}
	SetChecksum(src, dst, seg)
	if got := mbuftest.Bytes(m)[3:]; !bytes.Equal(got, seg) {
		t.Fatalf("stored checksum %x, want %x", got[16:18], seg[16:18])
	}
	if !VerifyMbuf(m, 3, len(seg), src, dst) {
		t.Fatal("own checksum fails")
	}
	if VerifyMbuf(m, 3, len(seg), src, [4]byte{1, 2, 3, 4}) || VerifyMbuf(m, 3, 19, src, dst) ||
		VerifyMbuf(m, 3, len(seg)+1, src, dst) || VerifyMbuf(m, 4000, 20, src, dst) {
		t.Fatal("bad segments verify")
	}
	if ChecksumMbuf(m, 4000, 20, src, dst) != 0 {
		t.Fatal("out-of-range ChecksumMbuf")
	}
	if err := SetChecksumMbuf(m, 3, len(seg)+1, src, dst); err != ErrShortBuffer {
		t.Fatalf("past the packet: %v", err)
	}
	// A shared header segment is not written.
	engine.Ref(m)
	err := SetChecksumMbuf(m, 3, len(seg), src, dst)
	cs.Free(m)
	if !errors.Is(err, engine.ErrShared) {
		t.Fatalf("shared segment: %v", err)
	}
}

func TestParsePutAndChecksumDoNotAllocate(t *testing.T) {
	b := append([]byte(nil), linuxSYN...)
	var ob [MaxOptionsLen]byte
	if n := testing.AllocsPerRun(100, func() {
		h, _ := Parse(b)
		o, _ := ParseOptions(b[HeaderLen:h.DataOff])
		k, _ := o.Put(ob[:])
		h.Put(b, ob[:k])
		SetChecksum(src, dst, b)
		Verify(src, dst, b)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	p, cs := mbuftest.Pool(t, 8)
	m := mbuftest.Packet(t, cs, p, b, 30)
	defer cs.Free(m)
	if n := testing.AllocsPerRun(100, func() {
		SetChecksumMbuf(m, 0, len(b), src, dst)
		VerifyMbuf(m, 0, len(b), src, dst)
	}); n != 0 {
		t.Fatalf("mbuf checksums: %v allocations", n)
	}
}

package ipv4

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
)

// refSum is the textbook RFC 1071 loop: 16-bit big-endian words.
func refSum(b []byte, initial uint32) uint32 {
	s := uint64(initial)
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint32(s)
}

func TestChecksumVectors(t *testing.T) {
	// RFC 1071 section 3's worked example: the sum is ddf2.
	if s := Sum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); s != 0xddf2 {
		t.Fatalf("RFC 1071 example sum %#x, want 0xddf2", s)
	}
	// A captured header whose checksum field is b861.
	hdr := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
		0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if c := Checksum(hdr, 0); c != 0xb861 {
		t.Fatalf("header checksum %#x, want 0xb861", c)
	}
	hdr[10], hdr[11] = 0xb8, 0x61
	if c := Checksum(hdr, 0); c != 0 {
		t.Fatalf("verifying a good header gives %#x, want 0", c)
	}
	if c := Checksum(nil, 0); c != 0xffff {
		t.Fatalf("empty checksum %#x", c)
	}
	if s := Sum([]byte{0xff, 0xff}, 0xffff); s != 0xffff {
		t.Fatalf("ones' complement of -0 plus -0: %#x", s)
	}
}

func TestSumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4200)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for n := 0; n < 300; n++ {
		for _, start := range []int{0, 1, 3, 8} {
			init := rng.Uint32()
			if n%7 == 0 {
				init = 0
			}
			b := buf[start : start+n]
			if got, want := Sum(b, init), refSum(b, init); got != want {
				t.Fatalf("len %d start %d init %#x: Sum %#x, reference %#x", n, start, init, got, want)
			}
		}
	}
	// All-ones data exercises every carry.
	ff := make([]byte, 4099)
	for i := range ff {
		ff[i] = 0xff
	}
	for _, n := range []int{31, 32, 33, 4096, 4099} {
		if got, want := Sum(ff[:n], 0xffffffff), refSum(ff[:n], 0xffffffff); got != want {
			t.Fatalf("all ones len %d: %#x want %#x", n, got, want)
		}
	}
}

func TestMbufSumAcrossOddSegments(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3001)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	m := mbuftest.Packet(t, cs, p, data, 1, 7, 2, 999, 3, 2000)
	defer cs.Free(m)
	for _, c := range []struct{ off, n int }{{0, 3001}, {0, 1}, {1, 3000}, {5, 1500}, {11, 1990}, {2999, 2}, {0, 5000}, {4000, 10}} {
		end := min(c.off+c.n, len(data))
		want := refSum(data[min(c.off, len(data)):end], 0x1234)
		if got := MbufSum(m, c.off, c.n, 0x1234); got != want {
			t.Fatalf("off %d n %d: %#x want %#x", c.off, c.n, got, want)
		}
	}
}

func TestPseudoSum(t *testing.T) {
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 200, 9}
	ph := []byte{198, 18, 0, 1, 198, 18, 200, 9, 0, ProtoUDP, 0x05, 0xdc}
	if got, want := PseudoSum(src, dst, ProtoUDP, 1500), refSum(ph, 0); got != want {
		t.Fatalf("PseudoSum %#x want %#x", got, want)
	}
}

func TestIncrementalUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		h := make([]byte, 20)
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		h[0] = 0x45
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:12], Checksum(h, 0))
		w := 2 * rng.IntN(10)
		if w == 10 {
			continue
		}
		old := binary.BigEndian.Uint16(h[w:])
		nw := uint16(rng.Uint32())
		binary.BigEndian.PutUint16(h[w:], nw)
		cs := UpdateChecksum(binary.BigEndian.Uint16(h[10:12]), old, nw)
		binary.BigEndian.PutUint16(h[10:12], cs)
		if Checksum(h, 0) != 0 {
			t.Fatalf("16-bit update left a bad checksum: %x", h)
		}
		old32 := binary.BigEndian.Uint32(h[12:16])
		new32 := rng.Uint32()
		binary.BigEndian.PutUint32(h[12:16], new32)
		binary.BigEndian.PutUint16(h[10:12], UpdateChecksum32(binary.BigEndian.Uint16(h[10:12]), old32, new32))
		if Checksum(h, 0) != 0 {
			t.Fatalf("32-bit update left a bad checksum: %x", h)
		}
	}
}

func TestDecTTL(t *testing.T) {
	b := make([]byte, HeaderLen)
	if _, err := (Header{TotalLen: HeaderLen, ID: 1, Flags: FlagDF, TTL: 64, Protocol: ProtoUDP}).Put(b, nil); err != nil {
		t.Fatal(err)
	}
	for ttl := 64; ttl > 1; ttl-- {
		if !DecTTL(b) {
			t.Fatalf("DecTTL refused at %d", ttl)
		}
		h, err := Parse(b)
		if err != nil || int(h.TTL) != ttl-1 {
			t.Fatalf("after DecTTL from %d: ttl %d, %v", ttl, h.TTL, err)
		}
	}
	if DecTTL(b) || b[8] != 1 {
		t.Fatal("DecTTL at TTL 1 must refuse and change nothing")
	}
	if DecTTL(b[:19]) {
		t.Fatal("DecTTL on a short buffer")
	}
}

func TestChecksumNoAllocs(t *testing.T) {
	p, cs := mbuftest.Pool(t, 8)
	b := make([]byte, 1500)
	m := mbuftest.Packet(t, cs, p, b, 3, 700)
	defer cs.Free(m)
	if n := testing.AllocsPerRun(100, func() {
		_ = Checksum(b, 0)
		_ = MbufSum(m, 1, 1400, PseudoSum([4]byte{}, [4]byte{}, 17, 1))
		_ = UpdateChecksum(1, 2, 3)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	_ = engine.NoMbuf
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 1500} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run(itoa(n)+"B", func(b *testing.B) {
			b.SetBytes(int64(n))
			var s uint16
			for b.Loop() {
				s += Checksum(buf, 0)
			}
			sink = s
		})
	}
}

// BenchmarkChecksumReference is the plain 16-bit loop, for comparison.
func BenchmarkChecksumReference(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	var s uint32
	for b.Loop() {
		s += refSum(buf, 0)
	}
	sink = uint16(s)
}

var sink uint16

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

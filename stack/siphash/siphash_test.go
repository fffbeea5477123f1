package siphash

import (
	"encoding/binary"
	"testing"
)

// vectors are SipHash-2-4's reference outputs (vectors_sip64 of the
// reference implementation): key 00 01 .. 0f, message 00 01 .. (i-1) for
// the i-th entry, as little-endian words.
var vectors = [64]uint64{
	0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
	0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
	0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
	0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
	0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
	0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
	0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
	0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
	0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
	0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
	0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
	0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
	0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
	0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
	0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
	0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
}

// refKey is the vectors' key 00 01 .. 0f.
var refKey = Key{K0: 0x0706050403020100, K1: 0x0f0e0d0c0b0a0908}

func TestSum64MatchesTheReferenceVectors(t *testing.T) {
	var msg [64]byte
	for i := range msg {
		msg[i] = byte(i)
	}
	for i, want := range vectors {
		if got := Sum64(refKey.K0, refKey.K1, msg[:i]); got != want {
			t.Errorf("message of %d bytes: %#016x, want %#016x", i, got, want)
		}
		if got := refKey.Sum64(msg[:i]); got != want {
			t.Errorf("Key.Sum64, %d bytes: %#016x, want %#016x", i, got, want)
		}
	}
}

// The paper's example (appendix A): the 15-byte
// message 00 .. 0e under key 00 .. 0f.
func TestThePapersExampleHashesToA129CA6149BE45E5(t *testing.T) {
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if got := refKey.Sum64(msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("%#016x", got)
	}
}

func TestWordHashesEqualSum64OfTheirLittleEndianBytes(t *testing.T) {
	k := Key{K0: 0x0123456789abcdef, K1: 0xfedcba9876543210}
	w := []uint64{0xc0a80001c0a80002, 17, 0xffffffffffffffff, 0}
	var b [32]byte
	for i, x := range w {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	if got, want := k.Hash2(w[0], w[1]), k.Sum64(b[:16]); got != want {
		t.Errorf("Hash2 %#x, Sum64 %#x", got, want)
	}
	if got, want := k.Hash3(w[0], w[1], w[2]), k.Sum64(b[:24]); got != want {
		t.Errorf("Hash3 %#x, Sum64 %#x", got, want)
	}
	if got, want := k.Hash4(w[0], w[1], w[2], w[3]), k.Sum64(b[:32]); got != want {
		t.Errorf("Hash4 %#x, Sum64 %#x", got, want)
	}
	// The vectors cover the word path too: 16, 24 and 32 bytes 00 01 ...
	var msg [32]byte
	for i := range msg {
		msg[i] = byte(i)
	}
	le := func(i int) uint64 { return binary.LittleEndian.Uint64(msg[8*i:]) }
	if got := refKey.Hash4(le(0), le(1), le(2), le(3)); got != vectors[32] {
		t.Errorf("Hash4 of 00..1f: %#x, want %#x", got, vectors[32])
	}
	if got := refKey.Hash3(le(0), le(1), le(2)); got != vectors[24] {
		t.Errorf("Hash3 of 00..17: %#x, want %#x", got, vectors[24])
	}
	if got := refKey.Hash2(le(0), le(1)); got != vectors[16] {
		t.Errorf("Hash2 of 00..0f: %#x, want %#x", got, vectors[16])
	}
}

func TestNewKeyIsRandom(t *testing.T) {
	a, b := NewKey(), NewKey()
	if a == b || a == (Key{}) {
		t.Fatalf("keys %+v and %+v", a, b)
	}
}

func TestHashingAllocatesNothing(t *testing.T) {
	k := NewKey()
	buf := make([]byte, 40)
	var sink uint64
	n := testing.AllocsPerRun(100, func() {
		sink += k.Hash3(1, 2, 3) + k.Hash2(4, 5) + k.Hash4(6, 7, 8, 9) + k.Sum64(buf)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	_ = sink
}

// Package siphash is SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
// short-input PRF", 2012), the keyed hash the stack uses wherever an
// off-path attacker must not predict or collide what it computes: IP IDs per
// destination, ephemeral port offsets (RFC 6056), and later TCP initial
// sequence numbers (RFC 6528) and SYN cookies. Linux uses the same function
// for these (lib/siphash.c).
//
// Read first: the paper, section 2 (the algorithm) and appendix A (the test
// vector). A hash is only as secret as its key: make one per stack with
// NewKey and never publish it.
package siphash

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// Key is a 128-bit SipHash key as two little-endian words: K0 is bytes 0..7
// of the key, K1 bytes 8..15. The zero Key is valid but public: use NewKey.
type Key struct {
	K0, K1 uint64
}

// NewKey returns a key read from crypto/rand.
func NewKey() Key {
	var b [16]byte
	rand.Read(b[:]) // never returns an error: it crashes the program instead
	return Key{binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])}
}

// state is the four words v0..v3 of the paper.
type state struct{ v0, v1, v2, v3 uint64 }

func initState(k0, k1 uint64) state {
	return state{
		v0: k0 ^ 0x736f6d6570736575, // "somepseudorandomlygeneratedbytes"
		v1: k1 ^ 0x646f72616e646f6d,
		v2: k0 ^ 0x6c7967656e657261,
		v3: k1 ^ 0x7465646279746573,
	}
}

// round is one SipRound.
func (s *state) round() {
	s.v0 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 13)
	s.v1 ^= s.v0
	s.v0 = bits.RotateLeft64(s.v0, 32)
	s.v2 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 16)
	s.v3 ^= s.v2
	s.v0 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 21)
	s.v3 ^= s.v0
	s.v2 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 17)
	s.v1 ^= s.v2
	s.v2 = bits.RotateLeft64(s.v2, 32)
}

// compress absorbs one 8-byte message word with two rounds (the "2" of 2-4).
func (s *state) compress(m uint64) {
	s.v3 ^= m
	s.round()
	s.round()
	s.v0 ^= m
}

// finish runs the four finalization rounds (the "4") and folds the state.
func (s *state) finish() uint64 {
	s.v2 ^= 0xff
	s.round()
	s.round()
	s.round()
	s.round()
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

// Sum64 is SipHash-2-4 of p under the key (k0, k1).
func Sum64(k0, k1 uint64, p []byte) uint64 {
	s := initState(k0, k1)
	n := len(p)
	for len(p) >= 8 {
		s.compress(binary.LittleEndian.Uint64(p))
		p = p[8:]
	}
	// The last word: the remaining bytes, and the length mod 256 on top.
	last := uint64(n) << 56
	for i, b := range p {
		last |= uint64(b) << (8 * i)
	}
	s.compress(last)
	return s.finish()
}

// Sum64 is SipHash-2-4 of p under k.
func (k Key) Sum64(p []byte) uint64 { return Sum64(k.K0, k.K1, p) }

// Hash2, Hash3 and Hash4 hash two, three or four words without building a
// byte slice: each equals Sum64 of the words' little-endian encoding, one
// after the other (16, 24 or 32 bytes). They allocate nothing and suit a
// per-packet path: pass addresses and ports as words, and a constant word
// to separate uses of one key (IP IDs, ports, sequence numbers).
func (k Key) Hash2(a, b uint64) uint64 {
	s := initState(k.K0, k.K1)
	s.compress(a)
	s.compress(b)
	s.compress(16 << 56)
	return s.finish()
}

// Hash3 is Hash2 for three words.
func (k Key) Hash3(a, b, c uint64) uint64 {
	s := initState(k.K0, k.K1)
	s.compress(a)
	s.compress(b)
	s.compress(c)
	s.compress(24 << 56)
	return s.finish()
}

// Hash4 is Hash2 for four words.
func (k Key) Hash4(a, b, c, d uint64) uint64 {
	s := initState(k.K0, k.K1)
	s.compress(a)
	s.compress(b)
	s.compress(c)
	s.compress(d)
	s.compress(32 << 56)
	return s.finish()
}

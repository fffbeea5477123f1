// Package seq is TCP's sequence space: 32-bit numbers compared modulo 2^32
// (RFC 9293 section 3.4), and initial sequence numbers that an off-path
// attacker cannot guess (RFC 6528).
//
// Read first: RFC 9293 section 3.4 (sequence numbers), RFC 6528 sections 3
// and 4 (the ISN algorithm and why its clock matters), RFC 1982 (serial
// number arithmetic, the general rule behind the comparisons).
//
// A comparison of two numbers is meaningful only while they lie less than
// 2^31 apart: windows are bounded by 2^30 (RFC 7323 section 2.3), so every
// number a connection compares lies within a window or two of another.
package seq

import "github.com/pollnet/pollnet/stack/siphash"

// Value is a sequence or acknowledgement number.
type Value uint32

// Size is a length in sequence space: a window, a segment's length, the
// distance between two numbers.
type Size uint32

// LessThan reports whether v comes before w: their distance, read as a
// signed 32-bit number, is negative.
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessEq reports whether v comes before w or is w.
func (v Value) LessEq(w Value) bool { return int32(v-w) <= 0 }

// InWindow reports whether start <= v < start+size, modulo 2^32. A window of
// size 0 holds nothing: RFC 9293 section 3.10.7.4's zero-window acceptance
// test (SEG.SEQ = RCV.NXT) is the caller's special case.
func (v Value) InWindow(start Value, size Size) bool {
	return uint32(v-start) < uint32(size)
}

// Add returns v moved on by n.
func (v Value) Add(n Size) Value { return v + Value(n) }

// Sub returns the distance from w forward to v (v - w); it is meaningful
// when w.LessEq(v).
func (v Value) Sub(w Value) Size { return Size(v - w) }

// isnTick is the period of the ISN clock: RFC 6528 section 3 keeps RFC 793's
// 4 µs timer (250 ticks a millisecond), so the clock wraps in 4.77 hours,
// far longer than a segment can live (2 MSL).
const isnTick = 4000 // ns

// ISN returns the initial sequence number of the connection from src:sport
// to dst:dport (our address and port first) at time now (ns, any monotonic
// origin shared by the stack's connections): ISN = M + F(4-tuple, key) of
// RFC 6528 section 3, where F is SipHash under the stack's secret key and M
// ticks every 4 µs. Linux's secure_tcp_seq hashes the same tuple with
// SipHash; its clock ticks every 64 ns instead. Two incarnations of a
// connection thus get numbers that grow with time, as the RFC wants, while
// another tuple's numbers say nothing about this one's.
func ISN(key siphash.Key, src, dst [4]byte, sport, dport uint16, now int64) Value {
	addrs := uint64(src[0])<<56 | uint64(src[1])<<48 | uint64(src[2])<<40 | uint64(src[3])<<32 |
		uint64(dst[0])<<24 | uint64(dst[1])<<16 | uint64(dst[2])<<8 | uint64(dst[3])
	ports := uint64(sport)<<16 | uint64(dport)
	f := key.Hash3(siphash.TagTCPISN, addrs, ports)
	return Value(uint32(f) + uint32(now/isnTick))
}

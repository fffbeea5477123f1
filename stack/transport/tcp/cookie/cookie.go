// Package cookie makes and checks TCP SYN cookies (RFC 4987 section 3.6): a
// listener whose SYN queue is full answers a SYN with a SYN-ACK whose
// initial sequence number encodes what it needs of the SYN, and keeps no
// state; the client's ACK, acknowledging that number plus one, brings the
// state back. The scheme follows Linux's net/ipv4/syncookies.c
// (secure_tcp_syn_cookie, check_tcp_syn_cookie): a time counter and an index
// into a table of common MSS values, authenticated by SipHash under the
// stack's secret key over the 4-tuple, the client's ISN, the counter and the
// index.
//
// Read first: RFC 4987 section 3.6 (what cookies cost), RFC 6528 (why the
// ISN must stay unpredictable: the cookie is the connection's ISN).
//
// Layout of a cookie, before the mask is added:
//
//	bits 31..24  the low 8 bits of the counter (minutes)
//	bits 23..22  the MSS index
//	bits 21..0   MAC(tuple, client ISN, counter, MSS index)
//
// Linux instead adds the index to a 24-bit MAC, so flipping a low bit of a
// cookie can turn it into a valid cookie for a neighbouring MSS; covering
// the index by the MAC makes every single-bit change fail, at the same
// forgery odds (2 of 256 counter bytes, times 2^-22).
//
// The mask, a keyed hash of the tuple and the client ISN without the
// counter, hides the counter's bits, so the ISN tells an observer nothing
// about the time and stays as hard to guess as any other ISN.
//
// What a cookie does not carry: Linux, when the SYN had timestamps, hides
// window scale, SACK-permitted and ECN in the low bits of the SYN-ACK's
// timestamp (cookie_init_timestamp); without timestamps those options are
// lost. This package has no timestamp variant yet, so a connection set up by
// cookie always runs without window scaling, SACK and ECN.
package cookie

import (
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

const (
	// Tick is the period of the cookie clock in nanoseconds: a minute, as
	// Linux's TCP_SYNCOOKIE_PERIOD on its 64-bit jiffies clock
	// (tcp_cookie_time).
	Tick int64 = 60e9

	// MaxAge is how many counter values a cookie stays valid for: the one
	// it was made in and the one after, so it lives between 60 and 120 s
	// (Linux's MAX_SYNCOOKIE_AGE).
	MaxAge = 2

	countBits = 8
	indexBits = 2
	macBits   = 32 - countBits - indexBits
	macMask   = 1<<macBits - 1
	indexMask = 1<<indexBits - 1
)

// mssTable is Linux's msstab for IPv4: the MSS values most SYNs carry; its
// length is 1<<indexBits.
var mssTable = [1 << indexBits]int{536, 1300, 1440, 1460}

// mssIndex is the index of the largest table value at most mss. An MSS below
// 536 maps to 536, which every IPv4 host must accept (RFC 9293 section
// 3.7.1, the default send MSS).
func mssIndex(mss int) uint32 {
	for i := len(mssTable) - 1; i > 0; i-- {
		if mss >= mssTable[i] {
			return uint32(i)
		}
	}
	return 0
}

// counter is the cookie clock at now: floor(now / Tick), modulo 2^32.
func counter(now int64) uint32 {
	c := now / Tick
	if now < 0 && c*Tick != now {
		c--
	}
	return uint32(c)
}

// words packs the tuple and the client's ISN into the two hash words.
func words(src, dst [4]byte, sport, dport uint16, isn seq.Value) (uint64, uint64) {
	addrs := uint64(src[0])<<56 | uint64(src[1])<<48 | uint64(src[2])<<40 | uint64(src[3])<<32 |
		uint64(dst[0])<<24 | uint64(dst[1])<<16 | uint64(dst[2])<<8 | uint64(dst[3])
	rest := uint64(sport)<<48 | uint64(dport)<<32 | uint64(isn)
	return addrs, rest
}

// The mask and the MAC hash different numbers of words under one tag, so
// SipHash's length byte keeps them distinct functions.
func mask(key siphash.Key, a, b uint64) uint32 {
	return uint32(key.Hash3(siphash.TagSYNCookie, a, b))
}

func mac(key siphash.Key, a, b uint64, count, idx uint32) uint32 {
	return uint32(key.Hash4(siphash.TagSYNCookie, a, b, uint64(idx)<<32|uint64(count))) & macMask
}

// Make returns the SYN-ACK's initial sequence number for a SYN from the
// client: src:sport is our address and port (the SYN's destination),
// dst:dport the client's, clientISN the SYN's sequence number, mss the MSS
// the SYN announced (536 if it had none), now the time in nanoseconds on
// the stack's monotonic clock. The MSS is rounded down to the table.
func Make(key siphash.Key, src, dst [4]byte, sport, dport uint16, clientISN seq.Value, mss int, now int64) seq.Value {
	a, b := words(src, dst, sport, dport, clientISN)
	c, idx := counter(now), mssIndex(mss)
	v := c<<(32-countBits) | idx<<macBits | mac(key, a, b, c, idx)
	return seq.Value(v + mask(key, a, b))
}

// Check verifies the cookie an ACK brings back: cookie is the ACK's
// acknowledgement number minus one, clientISN the ACK's sequence number
// minus one, the tuple as for Make. It returns the MSS the cookie encodes
// and true if the cookie was made for this tuple and ISN within the last
// MaxAge counter values; otherwise 0 and false. A random cookie passes with
// probability MaxAge/2^8 * 2^-22 = 2^-29.
func Check(key siphash.Key, src, dst [4]byte, sport, dport uint16, clientISN, cookie seq.Value, now int64) (mss int, ok bool) {
	a, b := words(src, dst, sport, dport, clientISN)
	v := uint32(cookie) - mask(key, a, b)
	c := counter(now)
	// How many ticks ago the cookie was made; a cookie from the future
	// wraps to a large age.
	age := (c - v>>(32-countBits)) & (1<<countBits - 1)
	if age >= MaxAge {
		return 0, false
	}
	idx := v >> macBits & indexMask
	if v&macMask != mac(key, a, b, c-age, idx) {
		return 0, false
	}
	return mssTable[idx], true
}

// Package csum is the Internet checksum (RFC 1071) and the completion of a
// checksum a sender left to its device (engine.FlagTxL4Csum). It sits below
// both the stack, whose header packages wrap it, and the drivers, which
// finish an offloaded checksum in software when they must, so a driver need
// not import the stack.
//
// The sum is byte-order independent up to a final swap (RFC 1071 section
// 2(B)), so the loop adds native little-endian 64-bit words with carries and
// swaps once at the end: four 16-bit lanes per add, no per-word byte
// swapping.
package csum

import (
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/pollnet/pollnet/engine"
)

// Sum adds the bytes of b to the running sum initial and returns the new sum
// folded to 16 bits. An odd final byte is the high byte of a word padded with
// zero, so b must start at an even offset of the checksummed data. initial may
// be any value, such as a pseudo-header sum or a previous Sum.
func Sum(b []byte, initial uint32) uint32 {
	s := uint32(bits.ReverseBytes16(Fold(sumLE(b))))
	return uint32(Fold(uint64(s) + uint64(initial)))
}

// Checksum returns the Internet checksum of b with initial folded in: the
// value to store in a header whose checksum field was zero while summing.
// Over data that already holds its checksum, a correct one gives 0.
func Checksum(b []byte, initial uint32) uint16 {
	return ^uint16(Sum(b, initial))
}

// sumLE is the ones' complement sum of b taken as little-endian 16-bit words,
// not yet folded.
func sumLE(b []byte) uint64 {
	var s, c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[0:8]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:16]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:24]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	// Any lane of the accumulator may take any 16-bit word, so the tail
	// words are added as small values.
	var t uint64
	if len(b) >= 4 {
		t += uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		t += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		t += uint64(b[0]) // the high byte of a big-endian word
	}
	s, c = bits.Add64(s, t, c)
	s, c = bits.Add64(s, 0, c)
	return s + c // the end-around carry of a wrapped sum cannot carry again
}

// Fold reduces a 64-bit ones' complement sum to 16 bits.
func Fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// PseudoSum is the sum of the IPv4 pseudo-header that TCP and UDP checksums
// cover (RFC 768, RFC 793): source, destination, protocol and the transport
// length. Pass it as initial to Sum or Checksum over the transport bytes. It
// is also what a sender leaving the checksum to its device stores in the
// checksum field (folded, not complemented, as DPDK's
// rte_ipv4_phdr_cksum and Linux's CHECKSUM_PARTIAL expect).
func PseudoSum(src, dst [4]byte, proto uint8, length uint16) uint32 {
	s := uint64(binary.BigEndian.Uint16(src[0:2])) + uint64(binary.BigEndian.Uint16(src[2:4])) +
		uint64(binary.BigEndian.Uint16(dst[0:2])) + uint64(binary.BigEndian.Uint16(dst[2:4])) +
		uint64(proto) + uint64(length)
	return uint32(Fold(s))
}

// MbufSum adds n bytes of the packet m, starting at byte off, to initial,
// across segments, and returns the folded sum. Segments of odd length are
// handled by swapping the partial sum of the segment that follows. It sums
// fewer bytes, without failing, if the packet is shorter than off+n.
func MbufSum(m engine.Mbuf, off, n int, initial uint32) uint32 {
	s := uint64(initial)
	odd := false
	for seg := m; seg != engine.NoMbuf && n > 0; seg = seg.Next() {
		d := seg.Data()
		if off >= len(d) {
			off -= len(d)
			continue
		}
		d = d[off:]
		off = 0
		if len(d) > n {
			d = d[:n]
		}
		p := Sum(d, 0)
		if odd {
			p = uint32(bits.ReverseBytes16(uint16(p)))
		}
		s += uint64(p)
		n -= len(d)
		if len(d)&1 != 0 {
			odd = !odd
		}
	}
	return uint32(Fold(s))
}

// ErrNotOffloadable is Finish's refusal of a packet it cannot complete.
var ErrNotOffloadable = errors.New("csum: not an IPv4 TCP or UDP packet with room for its checksum")

// IPv4 protocol numbers and checksum field offsets of the transports whose
// checksum a device may fill.
const (
	protoTCP = 6
	protoUDP = 17
	tcpField = 16
	udpField = 6
)

// Finish completes the TCP or UDP checksum of the IPv4 packet whose header
// starts at byte l3 of m and whose checksum field holds the pseudo-header
// sum (engine.FlagTxL4Csum), as a device does on transmit and Linux's
// skb_checksum_help does for one that cannot: the sum over the transport
// header and payload, complemented, into the field; a UDP result of 0 goes
// out as 0xffff (RFC 768). It clears FlagTxL4Csum. The bytes of the field
// must be m's own to write (engine.ErrShared otherwise). The transport
// length is the IPv4 total length less the header, so link padding is not
// summed.
func Finish(m engine.Mbuf, l3 int) error {
	var ip [10]byte
	if m.CopyOut(ip[:], l3) != len(ip) || ip[0]>>4 != 4 {
		return ErrNotOffloadable
	}
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	l4, n := l3+ihl, total-ihl
	var field int
	switch ip[9] {
	case protoTCP:
		field = tcpField
	case protoUDP:
		field = udpField
	default:
		return ErrNotOffloadable
	}
	if ihl < 20 || n < field+2 || l4+n > m.PktLen() {
		return ErrNotOffloadable
	}
	c := ^uint16(MbufSum(m, l4, n, 0)) // the field holds the pseudo-header sum
	if c == 0 && ip[9] == protoUDP {
		c = 0xffff
	}
	if err := Put16(m, l4+field, c); err != nil {
		return err
	}
	m.SetFlags(m.Flags() &^ engine.FlagTxL4Csum)
	return nil
}

// Put16 writes v big-endian at byte pos of m, whose two bytes may straddle
// two segments. It checks both before writing either: a byte shared with
// another holder is engine.ErrShared, one past the end engine.ErrShortPacket.
func Put16(m engine.Mbuf, pos int, v uint16) error {
	if pos < 0 {
		return engine.ErrShortPacket
	}
	var segs [2]engine.Mbuf
	var idx [2]int
	i := 0
	for s := m; s != engine.NoMbuf && i < 2; s = s.Next() {
		l := s.Len()
		for i < 2 && pos+i < l {
			if !s.Writable() {
				return engine.ErrShared
			}
			segs[i], idx[i] = s, pos+i
			i++
		}
		pos -= l
	}
	if i < 2 {
		return engine.ErrShortPacket
	}
	segs[0].Data()[idx[0]] = byte(v >> 8)
	segs[1].Data()[idx[1]] = byte(v)
	return nil
}

package ipv4

import (
	"encoding/binary"
	"math/bits"

	"github.com/pollnet/pollnet/engine"
)

// The Internet checksum (RFC 1071) is the ones' complement of the ones'
// complement sum of 16-bit big-endian words. The sum is byte-order
// independent up to a final swap (RFC 1071 section 2(B)), so the loop adds
// native little-endian 64-bit words with carries and swaps once at the end:
// four 16-bit lanes per add, no per-word byte swapping.

// Sum adds the bytes of b to the running sum initial and returns the new sum
// folded to 16 bits. An odd final byte is the high byte of a word padded with
// zero, so b must start at an even offset of the checksummed data. initial may
// be any value, such as a pseudo-header sum or a previous Sum.
func Sum(b []byte, initial uint32) uint32 {
	s := uint32(bits.ReverseBytes16(fold(sumLE(b))))
	return uint32(fold(uint64(s) + uint64(initial)))
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

// fold reduces a 64-bit ones' complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// PseudoSum is the sum of the IPv4 pseudo-header that TCP and UDP checksums
// cover (RFC 768, RFC 793): source, destination, protocol and the transport
// length. Pass it as initial to Sum or Checksum over the transport bytes.
func PseudoSum(src, dst [4]byte, proto uint8, length uint16) uint32 {
	s := uint64(binary.BigEndian.Uint16(src[0:2])) + uint64(binary.BigEndian.Uint16(src[2:4])) +
		uint64(binary.BigEndian.Uint16(dst[0:2])) + uint64(binary.BigEndian.Uint16(dst[2:4])) +
		uint64(proto) + uint64(length)
	return uint32(fold(s))
}

// TransportMbufSum is the folded sum a transport checksum (UDP, TCP) is the
// complement of: the pseudo-header of an n-byte segment of proto from src to
// dst, and the segment at off in m with its checksum field, field bytes into
// it, counted as zero. ok is false when the field lies outside the packet.
func TransportMbufSum(m engine.Mbuf, off, n, field int, src, dst [4]byte, proto uint8) (sum uint32, ok bool) {
	var f [2]byte
	if m.CopyOut(f[:], off+field) != 2 {
		return 0, false
	}
	s := MbufSum(m, off, n, PseudoSum(src, dst, proto, uint16(n)))
	// Take the stored field back out: add its ones' complement.
	return Sum(nil, s+uint32(^binary.BigEndian.Uint16(f[:]))), true
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
	return uint32(fold(s))
}

// UpdateChecksum returns checksum csum after a 16-bit word of the covered data
// changed from old to new, by RFC 1624 equation 3: HC' = ~(~HC + ~m + m').
// It costs a few adds where recomputing costs the whole header.
func UpdateChecksum(csum, old, new uint16) uint16 {
	s := uint64(^csum) + uint64(^old) + uint64(new)
	return ^fold(s)
}

// UpdateChecksum32 is UpdateChecksum for a 32-bit field, such as an address
// rewritten by NAT.
func UpdateChecksum32(csum uint16, old, new uint32) uint16 {
	s := uint64(^csum) + uint64(^uint16(old>>16)) + uint64(^uint16(old)) +
		uint64(uint16(new>>16)) + uint64(uint16(new))
	return ^fold(s)
}

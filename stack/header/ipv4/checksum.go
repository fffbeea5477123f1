package ipv4

import (
	"encoding/binary"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
)

// The Internet checksum (RFC 1071) is the ones' complement of the ones'
// complement sum of 16-bit big-endian words. The fast sum lives in
// engine/csum, shared with the drivers that finish an offloaded checksum;
// these are the stack's names for it.

// Sum adds the bytes of b to the running sum initial and returns the new sum
// folded to 16 bits. An odd final byte is the high byte of a word padded with
// zero, so b must start at an even offset of the checksummed data. initial may
// be any value, such as a pseudo-header sum or a previous Sum.
func Sum(b []byte, initial uint32) uint32 { return csum.Sum(b, initial) }

// Checksum returns the Internet checksum of b with initial folded in: the
// value to store in a header whose checksum field was zero while summing.
// Over data that already holds its checksum, a correct one gives 0.
func Checksum(b []byte, initial uint32) uint16 { return csum.Checksum(b, initial) }

// fold reduces a 64-bit ones' complement sum to 16 bits.
func fold(s uint64) uint16 { return csum.Fold(s) }

// PseudoSum is the sum of the IPv4 pseudo-header that TCP and UDP checksums
// cover (RFC 768, RFC 793): source, destination, protocol and the transport
// length. Pass it as initial to Sum or Checksum over the transport bytes.
func PseudoSum(src, dst [4]byte, proto uint8, length uint16) uint32 {
	return csum.PseudoSum(src, dst, proto, length)
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
// across segments, and returns the folded sum. It sums fewer bytes, without
// failing, if the packet is shorter than off+n.
func MbufSum(m engine.Mbuf, off, n int, initial uint32) uint32 {
	return csum.MbufSum(m, off, n, initial)
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

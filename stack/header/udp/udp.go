// Package udp is the UDP header (RFC 768) and its checksum over the IPv4
// pseudo-header. Sockets and demultiplexing live elsewhere.
package udp

import (
	"encoding/binary"
	"errors"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// HeaderLen is the UDP header length.
const HeaderLen = 8

// Errors, one per reason, as Linux counts InErrors, InCsumErrors and short
// packets apart.
var (
	ErrTruncated   = errors.New("udp: datagram shorter than its header")
	ErrLength      = errors.New("udp: length field below 8 or beyond the IP payload")
	ErrChecksum    = errors.New("udp: bad checksum")
	ErrShortBuffer = errors.New("udp: buffer too short")
)

// Header is a parsed UDP header.
type Header struct {
	SrcPort, DstPort uint16
	Length           uint16 // header and payload
	Checksum         uint16 // 0: none was sent
}

// PayloadLen is the number of data bytes by the length field.
func (h Header) PayloadLen() int { return int(h.Length) - HeaderLen }

// Parse reads the UDP header at the front of b, the IP payload (as long as
// the IP total length says). The length field must cover the header and fit
// in b; bytes past it are ignored, as Linux trims them. The checksum is not
// verified here: see VerifyChecksum.
func Parse(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncated
	}
	h := Header{
		SrcPort:  binary.BigEndian.Uint16(b[0:2]),
		DstPort:  binary.BigEndian.Uint16(b[2:4]),
		Length:   binary.BigEndian.Uint16(b[4:6]),
		Checksum: binary.BigEndian.Uint16(b[6:8]),
	}
	if h.Length < HeaderLen || int(h.Length) > len(b) {
		return Header{}, ErrLength
	}
	return h, nil
}

// ParseChecked is Parse followed by VerifyChecksum, for a datagram in one
// buffer.
func ParseChecked(b []byte, src, dst [4]byte) (Header, error) {
	h, err := Parse(b)
	if err != nil {
		return Header{}, err
	}
	if !VerifyChecksum(b[:h.Length], src, dst) {
		return Header{}, ErrChecksum
	}
	return h, nil
}

// Put writes the header at the front of b as it is, checksum included.
func (h Header) Put(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShortBuffer
	}
	binary.BigEndian.PutUint16(b[0:2], h.SrcPort)
	binary.BigEndian.PutUint16(b[2:4], h.DstPort)
	binary.BigEndian.PutUint16(b[4:6], h.Length)
	binary.BigEndian.PutUint16(b[6:8], h.Checksum)
	return nil
}

// Checksum computes the checksum of the datagram b (header and payload,
// len(b) bytes) from src to dst, as if its checksum field were zero. A sum
// that comes out as 0 is returned as 0xffff, since 0 on the wire means "no
// checksum" (RFC 768).
func Checksum(b []byte, src, dst [4]byte) uint16 {
	if len(b) < HeaderLen {
		return 0xffff
	}
	s := ipv4.PseudoSum(src, dst, ipv4.ProtoUDP, uint16(len(b)))
	s = ipv4.Sum(b[:6], s)
	return final(ipv4.Sum(b[8:], s))
}

// SetChecksum computes the checksum of b and stores it in the header.
func SetChecksum(b []byte, src, dst [4]byte) {
	if len(b) >= HeaderLen {
		binary.BigEndian.PutUint16(b[6:8], Checksum(b, src, dst))
	}
}

// VerifyChecksum reports whether the datagram b (exactly Length bytes)
// carries a correct checksum, or none (0), which IPv4 allows.
func VerifyChecksum(b []byte, src, dst [4]byte) bool {
	if len(b) < HeaderLen {
		return false
	}
	if b[6] == 0 && b[7] == 0 {
		return true
	}
	return ipv4.Sum(b, ipv4.PseudoSum(src, dst, ipv4.ProtoUDP, uint16(len(b)))) == 0xffff
}

// ChecksumMbuf is Checksum for a datagram of n bytes starting at off in the
// packet m, across segments (a reassembled or a large datagram).
func ChecksumMbuf(m engine.Mbuf, off, n int, src, dst [4]byte) uint16 {
	if n < HeaderLen {
		return 0xffff
	}
	s, ok := ipv4.TransportMbufSum(m, off, n, 6, src, dst, ipv4.ProtoUDP)
	if !ok {
		return 0xffff
	}
	return final(s)
}

// VerifyMbuf is VerifyChecksum for a datagram of n bytes starting at off in
// the packet m, across segments.
func VerifyMbuf(m engine.Mbuf, off, n int, src, dst [4]byte) bool {
	var field [2]byte
	if n < HeaderLen || m.CopyOut(field[:], off+6) != 2 {
		return false
	}
	if field == [2]byte{} {
		return true
	}
	return ipv4.MbufSum(m, off, n, ipv4.PseudoSum(src, dst, ipv4.ProtoUDP, uint16(n))) == 0xffff
}

// final turns a folded sum into the value sent: its complement, with 0
// written as 0xffff.
func final(s uint32) uint16 {
	c := ^uint16(s)
	if c == 0 {
		return 0xffff
	}
	return c
}

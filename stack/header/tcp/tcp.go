// Package tcp is the TCP segment header (RFC 9293 section 3.1), its options
// (RFC 9293 3.2, RFC 7323, RFC 2018) and its checksum over the IPv4
// pseudo-header. Connections, sequence arithmetic and demultiplexing live
// elsewhere.
//
// Safety contract: Parse and ParseOptions read only the bytes they are given
// and return an error, never panic, on any input. Once Parse accepts b, the
// header and its options are b[:h.DataOff], so b[HeaderLen:h.DataOff] may be
// sliced without a further check. Put and Options.Put write only within the
// length they return, and refuse a short buffer with ErrShortBuffer.
package tcp

import (
	"encoding/binary"
	"errors"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// Header sizes: the fixed part, and the largest a 4-bit data offset can say.
const (
	HeaderLen     = 20
	MaxHeaderLen  = 60
	MaxOptionsLen = MaxHeaderLen - HeaderLen
)

// Flags is the control-bit set of byte 13 (RFC 9293 3.1; ECE and CWR from
// RFC 3168).
type Flags uint8

const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String names the set bits joined by "|", for logs and test failures.
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	s := ""
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	return s
}

// Errors, one per drop reason, so the receive path counts them without
// allocating. ErrTruncated and ErrDataOff are the two early drops of Linux's
// tcp_v4_rcv (a failed pull, a data offset below five words).
var (
	ErrTruncated   = errors.New("tcp: segment shorter than its header")
	ErrDataOff     = errors.New("tcp: data offset below 20 bytes")
	ErrShortBuffer = errors.New("tcp: buffer too short")
	ErrOptionsLen  = errors.New("tcp: options longer than 40 bytes or not a multiple of 4")
)

// Header is a parsed TCP header. Options stay in the segment's bytes: read
// them with ParseOptions(b[HeaderLen:h.DataOff]).
type Header struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	DataOff          uint8 // header length in bytes, options included: 20..60
	// Reserved is the four bits between the data offset and the flags.
	// RFC 9293 says send zero and ignore on receipt; it is kept so a
	// parsed header is written back as it came.
	Reserved uint8
	Flags    Flags
	Window   uint16 // unscaled, as on the wire
	Checksum uint16
	Urgent   uint16
}

// OptionsLen is the number of option bytes after the fixed header.
func (h Header) OptionsLen() int { return int(h.DataOff) - HeaderLen }

// Parse reads the header at the front of b, which holds the segment from its
// first byte: at least the header and its options, the payload possibly
// continuing in later segments of a chain. The data offset must be at least
// 20 and fit in b. The checksum is not verified here: see Verify and
// VerifyMbuf.
func Parse(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncated
	}
	off := (b[12] >> 4) * 4
	if off < HeaderLen {
		return Header{}, ErrDataOff
	}
	if int(off) > len(b) {
		return Header{}, ErrTruncated
	}
	return Header{
		SrcPort:  binary.BigEndian.Uint16(b[0:2]),
		DstPort:  binary.BigEndian.Uint16(b[2:4]),
		Seq:      binary.BigEndian.Uint32(b[4:8]),
		Ack:      binary.BigEndian.Uint32(b[8:12]),
		DataOff:  off,
		Reserved: b[12] & 0x0f,
		Flags:    Flags(b[13]),
		Window:   binary.BigEndian.Uint16(b[14:16]),
		Checksum: binary.BigEndian.Uint16(b[16:18]),
		Urgent:   binary.BigEndian.Uint16(b[18:20]),
	}, nil
}

// Put writes the header with the given options at the front of b and returns
// the header length. h.DataOff is ignored (derived from len(opts)); the
// checksum is written as it is, since it covers the payload and the
// pseudo-header: set it afterwards with SetChecksum or SetChecksumMbuf.
// Options must be padded to a multiple of 4 bytes and at most 40 (Options.Put
// pads them).
func (h Header) Put(b []byte, opts []byte) (int, error) {
	if len(opts)%4 != 0 || len(opts) > MaxOptionsLen {
		return 0, ErrOptionsLen
	}
	n := HeaderLen + len(opts)
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	binary.BigEndian.PutUint16(b[0:2], h.SrcPort)
	binary.BigEndian.PutUint16(b[2:4], h.DstPort)
	binary.BigEndian.PutUint32(b[4:8], h.Seq)
	binary.BigEndian.PutUint32(b[8:12], h.Ack)
	b[12] = uint8(n/4)<<4 | h.Reserved&0x0f
	b[13] = uint8(h.Flags)
	binary.BigEndian.PutUint16(b[14:16], h.Window)
	binary.BigEndian.PutUint16(b[16:18], h.Checksum)
	binary.BigEndian.PutUint16(b[18:20], h.Urgent)
	copy(b[HeaderLen:n], opts)
	return n, nil
}

// Checksum is the checksum of the segment seg (header, options and payload,
// len(seg) bytes) from src to dst, computed as if its checksum field were
// zero (RFC 9293 3.1). Unlike UDP, TCP gives 0 no special meaning: a sum
// that comes out as 0 is sent as 0.
func Checksum(src, dst [4]byte, seg []byte) uint16 {
	if len(seg) < HeaderLen {
		return 0
	}
	s := ipv4.PseudoSum(src, dst, ipv4.ProtoTCP, uint16(len(seg)))
	s = ipv4.Sum(seg[:16], s)
	return ^uint16(ipv4.Sum(seg[18:], s))
}

// SetChecksum computes the checksum of seg and stores it in its header.
func SetChecksum(src, dst [4]byte, seg []byte) {
	if len(seg) >= HeaderLen {
		binary.BigEndian.PutUint16(seg[16:18], Checksum(src, dst, seg))
	}
}

// Verify reports whether the segment seg (exactly the IP payload) carries a
// correct checksum. Both encodings of zero, 0x0000 and 0xffff, verify.
func Verify(src, dst [4]byte, seg []byte) bool {
	if len(seg) < HeaderLen {
		return false
	}
	return ipv4.Sum(seg, ipv4.PseudoSum(src, dst, ipv4.ProtoTCP, uint16(len(seg)))) == 0xffff
}

// ChecksumMbuf is Checksum for a segment of n bytes starting at off in the
// packet m, across segments (a header in front of payload held by reference).
// It returns 0 if the packet is shorter than a header at off.
func ChecksumMbuf(m engine.Mbuf, off, n int, src, dst [4]byte) uint16 {
	if n < HeaderLen {
		return 0
	}
	s, ok := ipv4.TransportMbufSum(m, off, n, 16, src, dst, ipv4.ProtoTCP)
	if !ok {
		return 0
	}
	return ^uint16(s)
}

// VerifyMbuf is Verify for a segment of n bytes starting at off in the
// packet m, across segments.
func VerifyMbuf(m engine.Mbuf, off, n int, src, dst [4]byte) bool {
	if n < HeaderLen || off < 0 || off+n > m.PktLen() {
		return false
	}
	return ipv4.MbufSum(m, off, n, ipv4.PseudoSum(src, dst, ipv4.ProtoTCP, uint16(n))) == 0xffff
}

// SetChecksumMbuf computes the checksum of the n-byte segment at off in m and
// stores it in the header. The field's bytes must lie in writable segments:
// it refuses a shared one with engine.ErrShared, and a packet too short for
// the header with ErrShortBuffer, writing nothing.
func SetChecksumMbuf(m engine.Mbuf, off, n int, src, dst [4]byte) error {
	if n < HeaderLen || off < 0 || off+n > m.PktLen() {
		return ErrShortBuffer
	}
	return csum.Put16(m, off+16, ChecksumMbuf(m, off, n, src, dst))
}

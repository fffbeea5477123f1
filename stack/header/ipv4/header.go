// Package ipv4 is the IPv4 layer's pure parts: the header (RFC 791), the
// Internet checksum (RFC 1071, RFC 1624), routing tables with longest-prefix
// match, fragmentation on output and reassembly on input. Nothing here owns a
// device or a socket; the stack's receive and transmit paths call into it.
package ipv4

import (
	"encoding/binary"
	"errors"
)

// Header field constants.
const (
	HeaderLen    = 20 // without options
	MaxHeaderLen = 60
	MaxTotalLen  = 65535
	MinMTU       = 68 // RFC 791: every link must carry this without fragmenting

	// Flags, as stored in Header.Flags (the top three bits of the
	// flags-and-offset word, shifted down).
	FlagMF       = 1 // more fragments follow
	FlagDF       = 2 // do not fragment
	FlagReserved = 4 // must be zero (RFC 3514 notwithstanding)

	// Protocol numbers.
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17

	DefaultTTL = 64
)

// Parse and build errors, one per reason, so the receive path counts drops
// without allocating (as Linux's InHdrErrors, InTruncatedPkts, InCsumErrors).
var (
	ErrTruncated   = errors.New("ipv4: packet shorter than its header")
	ErrVersion     = errors.New("ipv4: version is not 4")
	ErrHeaderLen   = errors.New("ipv4: header length below 20 bytes")
	ErrTotalLen    = errors.New("ipv4: total length shorter than the header or longer than the packet")
	ErrChecksum    = errors.New("ipv4: bad header checksum")
	ErrShortBuffer = errors.New("ipv4: buffer too short")
	ErrOptions     = errors.New("ipv4: malformed options")
)

// Header is a parsed IPv4 header. Addresses are [4]byte values: they cost no
// allocation, compare with ==, and convert with netip.AddrFrom4 and As4.
type Header struct {
	TOS       uint8
	HeaderLen uint8 // IHL in bytes: 20 plus options
	TotalLen  uint16
	ID        uint16
	Flags     uint8  // FlagMF, FlagDF, FlagReserved
	FragOff   uint16 // fragment offset in bytes (the wire field times 8)
	TTL       uint8
	Protocol  uint8
	Checksum  uint16
	Src, Dst  [4]byte
}

// OptionsLen is the number of option bytes after the fixed header.
func (h Header) OptionsLen() int { return int(h.HeaderLen) - HeaderLen }

// PayloadLen is the number of bytes after the header, by the total length.
func (h Header) PayloadLen() int { return int(h.TotalLen) - int(h.HeaderLen) }

// DF and MF report the don't-fragment and more-fragments flags.
func (h Header) DF() bool { return h.Flags&FlagDF != 0 }
func (h Header) MF() bool { return h.Flags&FlagMF != 0 }

// IsFragment reports whether the datagram is one piece of a larger one.
func (h Header) IsFragment() bool { return h.Flags&FlagMF != 0 || h.FragOff != 0 }

// Parse reads and validates the header of the datagram in b: version,
// header length, total length against len(b) and the header checksum. Bytes
// after the total length (link padding) are allowed.
func Parse(b []byte) (Header, error) { return parse(b, len(b), true) }

// ParseHeader is Parse for a datagram whose first pktLen bytes are spread
// over a chain: b holds at least the header (an mbuf's first segment) and
// the total length is checked against pktLen.
func ParseHeader(b []byte, pktLen int) (Header, error) { return parse(b, pktLen, true) }

// ParseOffloaded is ParseHeader without the checksum check, for frames whose
// port already verified it (engine.FlagRxIPCsumGood) and for datagrams built
// locally whose checksum is left to the port.
func ParseOffloaded(b []byte, pktLen int) (Header, error) { return parse(b, pktLen, false) }

func parse(b []byte, pktLen int, verify bool) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return Header{}, ErrVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < HeaderLen {
		return Header{}, ErrHeaderLen
	}
	if len(b) < hl {
		return Header{}, ErrTruncated
	}
	tl := binary.BigEndian.Uint16(b[2:4])
	if int(tl) < hl || int(tl) > pktLen {
		return Header{}, ErrTotalLen
	}
	if verify && Checksum(b[:hl], 0) != 0 {
		return Header{}, ErrChecksum
	}
	fo := binary.BigEndian.Uint16(b[6:8])
	return Header{
		TOS:       b[1],
		HeaderLen: uint8(hl),
		TotalLen:  tl,
		ID:        binary.BigEndian.Uint16(b[4:6]),
		Flags:     uint8(fo >> 13),
		FragOff:   (fo & 0x1fff) << 3,
		TTL:       b[8],
		Protocol:  b[9],
		Checksum:  binary.BigEndian.Uint16(b[10:12]),
		Src:       [4]byte(b[12:16]),
		Dst:       [4]byte(b[16:20]),
	}, nil
}

// Put writes the header with the given options at the front of b, computes
// its checksum, and returns the header length. h.HeaderLen and h.Checksum are
// ignored (derived); FragOff is rounded down to a multiple of 8. Options must
// be padded to a multiple of 4 bytes and at most 40; TotalLen must cover the
// header.
func (h Header) Put(b []byte, options []byte) (int, error) {
	if len(options)%4 != 0 || len(options) > MaxHeaderLen-HeaderLen {
		return 0, ErrOptions
	}
	hl := HeaderLen + len(options)
	if int(h.TotalLen) < hl {
		return 0, ErrTotalLen
	}
	if len(b) < hl {
		return 0, ErrShortBuffer
	}
	b[0] = 0x40 | uint8(hl/4)
	b[1] = h.TOS
	binary.BigEndian.PutUint16(b[2:4], h.TotalLen)
	binary.BigEndian.PutUint16(b[4:6], h.ID)
	binary.BigEndian.PutUint16(b[6:8], uint16(h.Flags&7)<<13|h.FragOff>>3)
	b[8] = h.TTL
	b[9] = h.Protocol
	b[10], b[11] = 0, 0
	copy(b[12:16], h.Src[:])
	copy(b[16:20], h.Dst[:])
	copy(b[20:hl], options)
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:hl], 0))
	return hl, nil
}

// DecTTL decrements the TTL of the header at the front of b for forwarding
// and patches the checksum incrementally (RFC 1624), like ip_decrease_ttl. It
// returns false, changing nothing, if the TTL is already 1 or 0 (the caller
// then sends ICMP time exceeded) or b is shorter than a header.
func DecTTL(b []byte) bool {
	if len(b) < HeaderLen || b[8] <= 1 {
		return false
	}
	old := binary.BigEndian.Uint16(b[8:10]) // TTL and protocol share a word
	b[8]--
	cs := UpdateChecksum(binary.BigEndian.Uint16(b[10:12]), old, binary.BigEndian.Uint16(b[8:10]))
	binary.BigEndian.PutUint16(b[10:12], cs)
	return true
}

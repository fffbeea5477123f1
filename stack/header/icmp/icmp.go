// Package icmp is ICMP for IPv4 (RFC 792): parsing, echo request and reply,
// the error messages a host and a router send (destination unreachable,
// including fragmentation needed with the next-hop MTU of RFC 1191, and time
// exceeded), and the RFC 1122 rules for when an error may be sent at all.
package icmp

import (
	"encoding/binary"
	"errors"

	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// HeaderLen is the fixed part of every message: type, code, checksum and
// four type-specific bytes.
const HeaderLen = 8

// Message types.
const (
	TypeEchoReply        uint8 = 0
	TypeDestUnreachable  uint8 = 3
	TypeSourceQuench     uint8 = 4
	TypeRedirect         uint8 = 5
	TypeEchoRequest      uint8 = 8
	TypeTimeExceeded     uint8 = 11
	TypeParameterProblem uint8 = 12
	TypeTimestamp        uint8 = 13
	TypeTimestampReply   uint8 = 14

	maxKnownType = 18 // address mask reply; above it, types are unknown
)

// Destination unreachable codes.
const (
	CodeNetUnreachable   uint8 = 0
	CodeHostUnreachable  uint8 = 1
	CodeProtoUnreachable uint8 = 2
	CodePortUnreachable  uint8 = 3
	CodeFragNeeded       uint8 = 4 // with the next-hop MTU (RFC 1191)
	CodeSourceRouteFail  uint8 = 5
	CodeAdminProhibited  uint8 = 13
)

// Time exceeded codes.
const (
	CodeTTLExceeded        uint8 = 0
	CodeReassemblyExceeded uint8 = 1
)

// Errors, one per reason, so callers count by value without allocating.
var (
	ErrTruncated   = errors.New("icmp: message shorter than 8 bytes")
	ErrChecksum    = errors.New("icmp: bad checksum")
	ErrQuote       = errors.New("icmp: error message does not quote an IPv4 header and 8 bytes")
	ErrType        = errors.New("icmp: wrong message type for this operation")
	ErrShortBuffer = errors.New("icmp: buffer too short")
)

// Message is a parsed ICMP message. The type-specific fields are filled
// for the types that have them; Body aliases the parsed buffer: the echo
// data, or the quoted datagram of an error.
type Message struct {
	Type, Code uint8
	Checksum   uint16
	ID, Seq    uint16  // echo request and reply, timestamp
	MTU        uint16  // next-hop MTU of destination unreachable, fragmentation needed
	Gateway    [4]byte // redirect
	Pointer    uint8   // parameter problem: offset of the bad byte
	Body       []byte
}

// IsError reports whether typ is an error message, about which no error may
// be sent. Unknown types count as errors, as Linux treats them.
func IsError(typ uint8) bool {
	switch typ {
	case TypeDestUnreachable, TypeSourceQuench, TypeRedirect, TypeTimeExceeded, TypeParameterProblem:
		return true
	}
	return typ > maxKnownType
}

// Parse reads the ICMP message b (the whole IP payload) and verifies its
// checksum. An error message must quote at least an IPv4 header and the 8
// bytes after it, the part a transport protocol needs to find its socket.
func Parse(b []byte) (Message, error) {
	if len(b) >= HeaderLen && ipv4.Checksum(b, 0) != 0 {
		return Message{}, ErrChecksum
	}
	return ParseUnverified(b)
}

// ParseUnverified is Parse without the checksum, for a message spread over
// a chain: b is the first segment, and the caller verifies the checksum over
// the whole chain with ipv4.MbufSum (which must give 0xffff).
func ParseUnverified(b []byte) (Message, error) {
	if len(b) < HeaderLen {
		return Message{}, ErrTruncated
	}
	m := Message{
		Type:     b[0],
		Code:     b[1],
		Checksum: binary.BigEndian.Uint16(b[2:4]),
		Body:     b[HeaderLen:],
	}
	switch m.Type {
	case TypeEchoRequest, TypeEchoReply, TypeTimestamp, TypeTimestampReply:
		m.ID = binary.BigEndian.Uint16(b[4:6])
		m.Seq = binary.BigEndian.Uint16(b[6:8])
	case TypeDestUnreachable:
		m.MTU = binary.BigEndian.Uint16(b[6:8])
	case TypeRedirect:
		m.Gateway = [4]byte(b[4:8])
	case TypeParameterProblem:
		m.Pointer = b[4]
	}
	if IsError(m.Type) && m.Type <= maxKnownType {
		if _, _, err := quoted(m.Body); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

// Quoted parses the datagram an error message quotes: its IP header, and
// the bytes after the header (at least 8: the transport ports). The quoted
// header's total length and checksum are not checked, since the quote is
// cut short and was taken as the datagram arrived.
func (m Message) Quoted() (ipv4.Header, []byte, error) { return quoted(m.Body) }

func quoted(body []byte) (ipv4.Header, []byte, error) {
	h, err := ipv4.ParseOffloaded(body, ipv4.MaxTotalLen)
	if err != nil || len(body) < int(h.HeaderLen)+8 {
		return ipv4.Header{}, nil, ErrQuote
	}
	return h, body[h.HeaderLen:], nil
}

// PutEcho writes an echo request or reply with data and its checksum at the
// front of b, and returns its length.
func PutEcho(b []byte, typ uint8, id, seq uint16, data []byte) (int, error) {
	if typ != TypeEchoRequest && typ != TypeEchoReply {
		return 0, ErrType
	}
	n := HeaderLen + len(data)
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	b[0], b[1] = typ, 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	copy(b[HeaderLen:n], data)
	binary.BigEndian.PutUint16(b[2:4], ipv4.Checksum(b[:n], 0))
	return n, nil
}

// EchoReplyInPlace turns the echo request at the front of b into its reply
// by changing the type and patching the checksum (RFC 1624), so a responder
// touches four bytes whatever the data length, and a chained request needs
// only its first segment. The caller swaps the IP addresses.
func EchoReplyInPlace(b []byte) error {
	if len(b) < HeaderLen {
		return ErrTruncated
	}
	if b[0] != TypeEchoRequest || b[1] != 0 {
		return ErrType
	}
	old := binary.BigEndian.Uint16(b[0:2])
	b[0] = TypeEchoReply
	cs := ipv4.UpdateChecksum(binary.BigEndian.Uint16(b[2:4]), old, binary.BigEndian.Uint16(b[0:2]))
	binary.BigEndian.PutUint16(b[2:4], cs)
	return nil
}

// Quote is the part of an offending datagram an error message carries: its
// IP header and the first 8 bytes of its payload (RFC 792), or less if the
// datagram is shorter. A datagram without a sane header quotes its first 28
// bytes.
func Quote(datagram []byte) []byte {
	n := ipv4.HeaderLen + 8
	if len(datagram) > 0 && datagram[0]>>4 == 4 && datagram[0]&0x0f >= 5 {
		n = int(datagram[0]&0x0f)*4 + 8
	}
	return datagram[:min(n, len(datagram))]
}

// PutDestUnreachable writes a destination unreachable message about
// datagram. mtu is the next-hop MTU, sent only with CodeFragNeeded.
func PutDestUnreachable(b []byte, code uint8, mtu uint16, datagram []byte) (int, error) {
	var rest [4]byte
	if code == CodeFragNeeded {
		binary.BigEndian.PutUint16(rest[2:4], mtu)
	}
	return putError(b, TypeDestUnreachable, code, rest, datagram)
}

// PutTimeExceeded writes a time exceeded message about datagram: TTL
// expired in transit (CodeTTLExceeded) or reassembly timed out
// (CodeReassemblyExceeded).
func PutTimeExceeded(b []byte, code uint8, datagram []byte) (int, error) {
	return putError(b, TypeTimeExceeded, code, [4]byte{}, datagram)
}

// PutParameterProblem writes a parameter problem message pointing at the
// offending byte of datagram's header.
func PutParameterProblem(b []byte, pointer uint8, datagram []byte) (int, error) {
	return putError(b, TypeParameterProblem, 0, [4]byte{pointer}, datagram)
}

func putError(b []byte, typ, code uint8, rest [4]byte, datagram []byte) (int, error) {
	q := Quote(datagram)
	n := HeaderLen + len(q)
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	b[0], b[1] = typ, code
	b[2], b[3] = 0, 0
	copy(b[4:8], rest[:])
	copy(b[HeaderLen:n], q)
	binary.BigEndian.PutUint16(b[2:4], ipv4.Checksum(b[:n], 0))
	return n, nil
}

// ErrorAllowed applies the rules of RFC 1122 section 3.2.2 (and RFC 1812
// 4.3.2.7), as Linux's icmp_send does, to decide whether an error may be
// sent about datagram. It may not when the datagram is itself an ICMP error,
// is a fragment other than the first, was sent to a multicast or broadcast
// address (toBroadcast covers what only the caller knows: a link-layer
// broadcast or a subnet broadcast found by routing), or has a source that
// does not name one host. A datagram too short to judge gets no error.
func ErrorAllowed(datagram []byte, toBroadcast bool) bool {
	if toBroadcast {
		return false
	}
	h, err := ipv4.ParseOffloaded(datagram, ipv4.MaxTotalLen)
	if err != nil || h.FragOff != 0 {
		return false
	}
	if h.Dst[0] >= 224 || h.Src[0] >= 224 || h.Src == [4]byte{} {
		return false // multicast, class E or limited broadcast; no source
	}
	if h.Protocol == ipv4.ProtoICMP {
		hl := int(h.HeaderLen)
		if len(datagram) <= hl || IsError(datagram[hl]) {
			return false
		}
	}
	return true
}

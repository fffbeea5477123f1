// Package eth is the Ethernet II frame header (IEEE 802.3 with an EtherType)
// and MAC addresses. It only reads and writes bytes: dispatching by
// EtherType is the netdev's job.
package eth

import (
	"encoding/binary"
	"errors"
)

// Header lengths: an untagged header, and one with a single 802.1Q tag.
const (
	HeaderLen     = 14
	VLANHeaderLen = 18
)

// EtherTypes this stack knows by name.
const (
	TypeIPv4 uint16 = 0x0800
	TypeARP  uint16 = 0x0806
	TypeVLAN uint16 = 0x8100 // IEEE 802.1Q customer tag
	TypeQinQ uint16 = 0x88a8 // IEEE 802.1ad service tag
	TypeIPv6 uint16 = 0x86dd
)

// minType is the smallest EtherType; values below it are 802.3 length fields.
const minType = 0x0600

// Parse errors. They are package-level values so a receive path can count
// drops by reason with a switch, allocating nothing.
var (
	ErrTruncated   = errors.New("eth: frame shorter than its header")
	ErrVLAN        = errors.New("eth: stacked VLAN tags (QinQ) not supported")
	ErrLLC         = errors.New("eth: 802.3 length field instead of an EtherType (LLC frame)")
	ErrShortBuffer = errors.New("eth: buffer too short for the header")
)

// Header is a parsed Ethernet II header. Type is the EtherType of the
// payload; for a frame with one 802.1Q tag, it is the inner type, Tagged is
// set, and TCI holds the tag (priority, DEI and VLAN ID).
type Header struct {
	Dst, Src MAC
	Type     uint16
	Tagged   bool
	TCI      uint16
}

// Len is the header's length on the wire: 14, or 18 with a VLAN tag.
func (h Header) Len() int {
	if h.Tagged {
		return VLANHeaderLen
	}
	return HeaderLen
}

// VID is the 12-bit VLAN ID of a tagged frame.
func (h Header) VID() uint16 { return h.TCI & 0x0fff }

// Parse reads the Ethernet header at the front of b.
//
// One 802.1Q tag is unwrapped: Parse reports the inner EtherType, sets Tagged
// and TCI, and Len becomes 18, so a netdev can filter by VLAN ID or strip the
// tag without parsing again. Two tags (QinQ, or an 802.1ad outer tag) return
// ErrVLAN: this stack runs on untagged or singly tagged ports only. A length
// field below 0x0600 (802.3 with LLC) returns ErrLLC.
func Parse(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncated
	}
	var h Header
	copy(h.Dst[:], b[0:6])
	copy(h.Src[:], b[6:12])
	t := binary.BigEndian.Uint16(b[12:14])
	switch {
	case t == TypeVLAN:
		if len(b) < VLANHeaderLen {
			return Header{}, ErrTruncated
		}
		h.Tagged = true
		h.TCI = binary.BigEndian.Uint16(b[14:16])
		t = binary.BigEndian.Uint16(b[16:18])
		if t == TypeVLAN || t == TypeQinQ {
			return Header{}, ErrVLAN
		}
	case t == TypeQinQ:
		return Header{}, ErrVLAN
	}
	if t < minType {
		return Header{}, ErrLLC
	}
	h.Type = t
	return h, nil
}

// Put writes the header at the front of b (with the tag when Tagged) and
// returns ErrShortBuffer, writing nothing, when b is shorter than h.Len().
func (h Header) Put(b []byte) error {
	if len(b) < h.Len() {
		return ErrShortBuffer
	}
	copy(b[0:6], h.Dst[:])
	copy(b[6:12], h.Src[:])
	if h.Tagged {
		binary.BigEndian.PutUint16(b[12:14], TypeVLAN)
		binary.BigEndian.PutUint16(b[14:16], h.TCI)
		binary.BigEndian.PutUint16(b[16:18], h.Type)
		return nil
	}
	binary.BigEndian.PutUint16(b[12:14], h.Type)
	return nil
}

// Package arp is the ARP packet for IPv4 over Ethernet (RFC 826): parsing,
// building, and whole request and reply frames. The neighbour table that
// uses it (resolution, pending queues, timeouts) lives elsewhere.
package arp

import (
	"encoding/binary"
	"errors"

	"github.com/pollnet/pollnet/stack/header/eth"
)

// PacketLen is the length of an Ethernet/IPv4 ARP packet; FrameLen adds the
// Ethernet header. Ports pad frames to the 60-byte minimum, as NICs do.
const (
	PacketLen = 28
	FrameLen  = eth.HeaderLen + PacketLen
)

// Operations.
const (
	OpRequest uint16 = 1
	OpReply   uint16 = 2
)

const (
	htypeEthernet = 1
	ptypeIPv4     = 0x0800
)

// Parse errors, one per reason, so a receive path can count drops by
// comparing values, allocating nothing.
var (
	ErrTruncated    = errors.New("arp: packet shorter than 28 bytes")
	ErrHardwareType = errors.New("arp: hardware type is not Ethernet")
	ErrProtocolType = errors.New("arp: protocol type is not IPv4")
	ErrAddrLen      = errors.New("arp: address lengths are not 6 and 4")
	ErrOp           = errors.New("arp: operation is neither request nor reply")
	ErrShortBuffer  = errors.New("arp: buffer too short")
)

// Packet is an Ethernet/IPv4 ARP packet. Addresses are values: [4]byte
// IPv4 addresses compare with == and convert with netip.AddrFrom4.
type Packet struct {
	Op        uint16
	SenderMAC eth.MAC
	SenderIP  [4]byte
	TargetMAC eth.MAC
	TargetIP  [4]byte
}

// IsGratuitous reports whether the packet announces its sender's own
// binding (sender and target IP equal), as hosts do when an address comes
// up or moves.
func (p Packet) IsGratuitous() bool { return p.SenderIP == p.TargetIP }

// IsProbe reports whether the packet is an address-conflict probe (RFC
// 5227): a request from 0.0.0.0, which must not create a neighbour entry.
func (p Packet) IsProbe() bool { return p.Op == OpRequest && p.SenderIP == [4]byte{} }

// Parse reads the ARP packet at the front of b (the Ethernet payload;
// trailing padding is ignored). It accepts only Ethernet hardware addresses,
// IPv4 protocol addresses and the request and reply operations.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return Packet{}, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[0:2]) != htypeEthernet {
		return Packet{}, ErrHardwareType
	}
	if binary.BigEndian.Uint16(b[2:4]) != ptypeIPv4 {
		return Packet{}, ErrProtocolType
	}
	if b[4] != 6 || b[5] != 4 {
		return Packet{}, ErrAddrLen
	}
	op := binary.BigEndian.Uint16(b[6:8])
	if op != OpRequest && op != OpReply {
		return Packet{}, ErrOp
	}
	return Packet{
		Op:        op,
		SenderMAC: eth.MAC(b[8:14]),
		SenderIP:  [4]byte(b[14:18]),
		TargetMAC: eth.MAC(b[18:24]),
		TargetIP:  [4]byte(b[24:28]),
	}, nil
}

// Put writes the packet at the front of b.
func (p Packet) Put(b []byte) error {
	if len(b) < PacketLen {
		return ErrShortBuffer
	}
	binary.BigEndian.PutUint16(b[0:2], htypeEthernet)
	binary.BigEndian.PutUint16(b[2:4], ptypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], p.Op)
	copy(b[8:14], p.SenderMAC[:])
	copy(b[14:18], p.SenderIP[:])
	copy(b[18:24], p.TargetMAC[:])
	copy(b[24:28], p.TargetIP[:])
	return nil
}

// PutRequest writes a whole frame asking who has targetIP: broadcast, with
// the target hardware address zero. It returns FrameLen.
func PutRequest(b []byte, srcMAC eth.MAC, srcIP, targetIP [4]byte) (int, error) {
	return PutRequestTo(b, eth.Broadcast, srcMAC, srcIP, targetIP)
}

// PutRequestTo writes a request for targetIP sent to dstMAC alone: the
// unicast probe that re-checks an address already known, as Linux's
// arp_solicit sends from the PROBE state. The target hardware address is
// zero, as in a broadcast request. It returns FrameLen.
func PutRequestTo(b []byte, dstMAC, srcMAC eth.MAC, srcIP, targetIP [4]byte) (int, error) {
	return putFrame(b, dstMAC, Packet{Op: OpRequest, SenderMAC: srcMAC, SenderIP: srcIP, TargetIP: targetIP})
}

// PutReply writes a whole frame telling dstMAC/dstIP that srcIP is at
// srcMAC, unicast to the asker as RFC 826 prescribes. It returns FrameLen.
func PutReply(b []byte, srcMAC eth.MAC, srcIP [4]byte, dstMAC eth.MAC, dstIP [4]byte) (int, error) {
	return putFrame(b, dstMAC, Packet{Op: OpReply, SenderMAC: srcMAC, SenderIP: srcIP, TargetMAC: dstMAC, TargetIP: dstIP})
}

// ReplyTo writes the frame answering the request req for an address this
// host owns at mac. It returns FrameLen.
func ReplyTo(b []byte, req Packet, mac eth.MAC) (int, error) {
	return PutReply(b, mac, req.TargetIP, req.SenderMAC, req.SenderIP)
}

func putFrame(b []byte, dst eth.MAC, p Packet) (int, error) {
	if len(b) < FrameLen {
		return 0, ErrShortBuffer
	}
	eth.Header{Dst: dst, Src: p.SenderMAC, Type: eth.TypeARP}.Put(b) // length checked above
	p.Put(b[eth.HeaderLen:])
	return FrameLen, nil
}

package null

import (
	"encoding/binary"
	"fmt"
)

// Addresses of the template frame. The frame comes from PeerMAC to the
// port's own MAC, from PeerIP to PortIP, both in 198.18.0.0/15, the range RFC
// 2544 reserves for benchmarks, so a frame that escaped would name no real
// host. A forwarder has real MACs to swap and a stack a datagram it could
// parse.
var (
	PeerMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0xfe, 0x01}
	PeerIP  = [4]byte{198, 18, 0, 1}
	PortIP  = [4]byte{198, 19, 0, 1}
)

// UDP ports of the template frame: the discard service (RFC 863), so a
// receiver that answers nothing is right.
const (
	SrcPort = 9
	DstPort = 9
)

// Header lengths of the template frame.
const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	hdrLen  = ethLen + ipv4Len + udpLen
)

// Template returns a frame of size bytes (without FCS): Ethernet from PeerMAC
// to dst, IPv4 from PeerIP to PortIP (TTL 64, header checksum filled), UDP
// from SrcPort to DstPort (checksum filled), and a payload of the byte
// values 0, 1, 2, ... so a copy that misses a byte shows. size must be at
// least MinSize.
func Template(size int, dst [6]byte) ([]byte, error) {
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("null: frame size %d out of range %d..%d", size, MinSize, MaxSize)
	}
	f := make([]byte, size)
	copy(f[0:6], dst[:])
	copy(f[6:12], PeerMAC[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)

	ip := f[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(ip[2:4], uint16(size-ethLen))
	ip[6] = 0x40 // don't fragment
	ip[8] = 64   // TTL
	ip[9] = 17   // UDP
	copy(ip[12:16], PeerIP[:])
	copy(ip[16:20], PortIP[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(ip, 0)))

	udp := f[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:2], SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	for i := range udp[udpLen:] {
		udp[udpLen+i] = byte(i)
	}
	// RFC 768: the checksum covers a pseudo-header of the addresses, the
	// protocol and the UDP length, then the datagram; a result of zero is
	// sent as all ones.
	var pseudo [12]byte
	copy(pseudo[0:4], PeerIP[:])
	copy(pseudo[4:8], PortIP[:])
	pseudo[9] = 17
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(len(udp)))
	c := ^fold(sum(udp, sum(pseudo[:], 0)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return f, nil
}

// sum adds b to the one's-complement accumulator acc, 16 bits at a time
// (RFC 1071).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

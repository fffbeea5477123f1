package wire

import (
	"encoding/binary"

	"github.com/pollnet/pollnet/engine"
)

// Receive side scaling: the receiving port's Toeplitz hash picks the queue a
// frame lands on, through the port's redirection table. Both are published
// in its PortInfo (RSSKey, RETA), and the hash and the lookup are the
// engine's own (Toeplitz.HashIPv4Ports and HashIPv4, PortInfo.QueueOf), so
// a stack that computes them predicts the queue exactly.

// retaSize is the number of entries of a port's redirection table, as many
// NICs have (ixgbe's 128).
const retaSize = 128

// queueFor picks the peer's receive queue for a frame by the peer's RSS
// hash, recording the hash on the frame.
func (p *Port) queueFor(m engine.Mbuf) int {
	rx := p.peer
	if len(rx.rxq) == 1 {
		return 0
	}
	h := rx.hash(m)
	m.SetHash(h)
	return rx.info.QueueOf(h)
}

// hash is the Toeplitz hash over the IPv4 source and destination addresses
// and, for TCP and UDP datagrams that are not fragments, the ports; other
// frames hash to 0. A fragment, the first included (MF set), hashes on the
// addresses alone, as a NIC's RSS and Linux's flow dissector do, so that a
// datagram's fragments stay on one queue.
func (p *Port) hash(m engine.Mbuf) uint32 {
	d := m.Data()
	if len(d) < 34 || d[12] != 0x08 || d[13] != 0x00 || d[14]>>4 != 4 {
		return 0
	}
	ihl := int(d[14]&0x0f) * 4
	src, dst := [4]byte(d[26:30]), [4]byte(d[30:34])
	proto := d[23]
	fragment := d[20]&0x3f != 0 || d[21] != 0 // MF, or a fragment offset
	if (proto == 6 || proto == 17) && !fragment && ihl >= 20 && len(d) >= 14+ihl+4 {
		l4 := d[14+ihl:]
		return p.rss.HashIPv4Ports(src, dst, binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:]))
	}
	return p.rss.HashIPv4(src, dst)
}

package wire

import "github.com/pollnet/pollnet/engine"

// Receive side scaling: the receiving port's Toeplitz hash picks the queue a
// frame lands on, through the port's redirection table.

// queueFor picks the peer's receive queue for a frame by its RSS hash,
// recording the hash on the frame.
func (p *Port) queueFor(m engine.Mbuf) int {
	if len(p.peer.rxq) == 1 {
		return 0
	}
	h := p.hash(m)
	m.SetHash(h)
	return int(p.peer.reta[h&127])
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
	var in [12]byte
	copy(in[:8], d[26:34])
	proto := d[23]
	fragment := d[20]&0x3f != 0 || d[21] != 0 // MF, or a fragment offset
	if (proto == 6 || proto == 17) && !fragment && ihl >= 20 && len(d) >= 14+ihl+4 {
		copy(in[8:12], d[14+ihl:14+ihl+4])
		return p.rss.Hash(in[:12])
	}
	return p.rss.Hash(in[:8])
}

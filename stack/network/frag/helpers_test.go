package frag

import (
	"encoding/binary"

	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// datagram builds a valid IPv4 datagram with a counting payload.
func datagram(payload int, id uint16, flags uint8, opts []byte) []byte {
	hl := ipv4.HeaderLen + len(opts)
	b := make([]byte, hl+payload)
	h := ipv4.Header{TotalLen: uint16(hl + payload), ID: id, Flags: flags, TTL: 64, Protocol: ipv4.ProtoUDP,
		Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}}
	if _, err := h.Put(b, opts); err != nil {
		panic(err)
	}
	for i := hl; i < len(b); i++ {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// fragmentBytes cuts a datagram's bytes into a fragment by hand, for tests
// that need fragments Fragment would never make.
func fragmentBytes(d []byte, off, n int, mf bool) []byte {
	hl := int(d[0]&0xf) * 4
	b := make([]byte, hl+n)
	copy(b, d[:hl])
	copy(b[hl:], d[hl+off:hl+off+n])
	binary.BigEndian.PutUint16(b[2:4], uint16(hl+n))
	fo := uint16(off >> 3)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:8], fo)
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:12], ipv4.Checksum(b[:hl], 0))
	return b
}

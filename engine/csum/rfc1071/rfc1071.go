// Package rfc1071 is the Internet checksum done the plain way, byte pairs
// summed one at a time as RFC 1071 first shows it: the reference the wire
// formats' fast checksums are tested against.
package rfc1071

import "encoding/binary"

// Transport is the checksum of a transport segment seg of IP protocol proto
// from src to dst, over the pseudo-header and seg with the two bytes of its
// checksum field at field counted as zero. It returns the complement as
// computed; UDP's rule for a zero result is the caller's.
func Transport(src, dst [4]byte, proto uint8, seg []byte, field int) uint16 {
	var all []byte
	all = append(all, src[:]...)
	all = append(all, dst[:]...)
	all = append(all, 0, proto, byte(len(seg)>>8), byte(len(seg)))
	all = append(all, seg[:field]...)
	all = append(all, 0, 0)
	all = append(all, seg[field+2:]...)
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(binary.BigEndian.Uint16(all[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

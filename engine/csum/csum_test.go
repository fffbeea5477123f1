package csum

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum/rfc1071"
	"github.com/pollnet/pollnet/engine/mbuftest"
)

// ipv4Packet is an IPv4 packet of proto carrying l4 (checksum field zero),
// and the transport checksum summed the plain way (rfc1071).
func ipv4Packet(proto uint8, l4 []byte, field int) ([]byte, uint16) {
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip = append(append(ip, src[:]...), dst[:]...)
	c := rfc1071.Transport(src, dst, proto, l4, field)
	// The sender's part: the pseudo-header sum in the field.
	pkt := append(ip, l4...)
	binary.BigEndian.PutUint16(pkt[20+field:], uint16(PseudoSum(src, dst, proto, uint16(len(l4)))))
	return pkt, c
}

// Finish fills what the sender left, across segments of any length (odd
// ones, a field split between two), for TCP and UDP.
func TestFinishCompletesAChecksumLeftToTheDevice(t *testing.T) {
	pool, cs := mbuftest.Pool(t, 64)
	for _, c := range []struct {
		proto uint8
		field int
	}{{protoTCP, tcpField}, {protoUDP, udpField}} {
		for _, n := range []int{20, 21, 333, 1480} {
			l4 := make([]byte, n)
			for i := range l4 {
				l4[i] = byte(i*13 + n)
			}
			l4[c.field], l4[c.field+1] = 0, 0
			pkt, want := ipv4Packet(c.proto, l4, c.field)
			if c.proto == protoUDP && want == 0 {
				want = 0xffff
			}
			for _, segs := range [][]int{nil, {20 + c.field + 1}, {7, 13, 3}} {
				m := mbuftest.Packet(t, cs, pool, pkt, segs...)
				m.SetFlags(engine.FlagTxL4Csum)
				if err := Finish(m, 0); err != nil {
					t.Fatalf("proto %d, %d bytes, segments %v: %v", c.proto, n, segs, err)
				}
				got := mbuftest.Bytes(m)
				if g := binary.BigEndian.Uint16(got[20+c.field:]); g != want || m.Flags()&engine.FlagTxL4Csum != 0 {
					t.Errorf("proto %d, %d bytes, segments %v: checksum %#04x flags %#x, want %#04x and the flag cleared",
						c.proto, n, segs, g, m.Flags(), want)
				}
				cs.Free(m)
			}
		}
	}
}

func TestFinishRefusesWhatItCannotComplete(t *testing.T) {
	pool, cs := mbuftest.Pool(t, 8)
	pkt, _ := ipv4Packet(1, make([]byte, 40), 2) // ICMP
	m := mbuftest.Packet(t, cs, pool, pkt)
	if err := Finish(m, 0); !errors.Is(err, ErrNotOffloadable) {
		t.Errorf("ICMP: %v", err)
	}
	cs.Free(m)
	pkt, _ = ipv4Packet(protoTCP, make([]byte, 10), 0) // shorter than its field
	m = mbuftest.Packet(t, cs, pool, pkt)
	if err := Finish(m, 0); !errors.Is(err, ErrNotOffloadable) {
		t.Errorf("short TCP: %v", err)
	}
	cs.Free(m)
	pkt, _ = ipv4Packet(protoUDP, make([]byte, 40), udpField)
	m = mbuftest.Packet(t, cs, pool, pkt)
	c, err := cs.Clone(m, pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := Finish(m, 0); !errors.Is(err, engine.ErrShared) {
		t.Errorf("shared buffer: %v", err)
	}
	cs.Free(c)
	if err := Put16(m, len(pkt)-1, 1); !errors.Is(err, engine.ErrShortPacket) {
		t.Errorf("past the end: %v", err)
	}
	cs.Free(m)
}

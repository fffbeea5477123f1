package wire

import (
	"encoding/binary"
	"testing"
)

func TestRSSSpreadsFlowsAndKeepsEachOnOneQueue(t *testing.T) {
	const queues = 4
	h := newHarness(t, Config{Queues: queues})
	queueOf := map[uint16]int{}
	for round := 0; round < 3; round++ {
		for sport := uint16(1000); sport < 1064; sport++ {
			h.send(0, int(sport)%queues, udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, sport, 9, 0))
		}
		for q := 0; q < queues; q++ {
			for _, f := range h.recv(1, q) {
				sport := binary.BigEndian.Uint16(f[34:])
				if prev, ok := queueOf[sport]; ok && prev != q {
					t.Fatalf("flow %d moved from queue %d to %d", sport, prev, q)
				}
				queueOf[sport] = q
			}
		}
	}
	per := make([]int, queues)
	for _, q := range queueOf {
		per[q]++
	}
	for q, n := range per {
		if n < 64/queues/3 {
			t.Fatalf("queue %d got %d of 64 flows: %v", q, n, per)
		}
	}
}

// fragment makes f an IPv4 fragment: more fragments follow if mf, at byte
// offset off of the datagram.
func fragment(f []byte, mf bool, off int) []byte {
	v := uint16(off / 8)
	if mf {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(f[20:], v)
	return f
}

// A datagram's fragments land on one queue: RSS hashes fragments, the first
// included, on their addresses only, as NICs and Linux do, since only the
// first carries the ports.
func TestFragmentsOfADatagramShareAQueue(t *testing.T) {
	const queues = 4
	h := newHarness(t, Config{Queues: queues})
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	for sport := uint16(1000); sport < 1032; sport++ {
		h.send(0, 0, fragment(udpFrame(1400, src, dst, sport, 9, 0), true, 0))
		h.send(0, 0, fragment(udpFrame(200, src, dst, sport, 9, 0), false, 1376))
	}
	used := 0
	for q := 0; q < queues; q++ {
		if n := len(h.recv(1, q)); n > 0 {
			used++
			if n != 64 {
				t.Errorf("queue %d got %d of the 64 fragments", q, n)
			}
		}
	}
	if used != 1 {
		t.Fatalf("fragments of one address pair spread over %d queues", used)
	}
}

// queueOf is the peer queue RSS picks for a frame sent from port 0.
func queueOf(h *harness, frame []byte) int {
	m := h.mbuf(frame)
	defer h.cs.Free(m)
	return h.pair.Ports[0].queueFor(m)
}

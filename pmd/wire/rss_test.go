package wire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/pollnet/pollnet/engine"
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

// A stack predicts the queue a flow lands on from the receiving port's
// PortInfo and the engine's hash: for random flows, a UDP frame is delivered
// on QueueOf(HashIPv4Ports(...)) with that hash, and a fragment or a frame of
// another protocol on QueueOf(HashIPv4(...)).
func TestTheQueueAFlowLandsOnIsPredictedFromPortInfo(t *testing.T) {
	for _, queues := range []int{2, 3, 4} {
		h := newHarness(t, Config{Queues: queues})
		rx := h.pair.Ports[1]
		info := rx.Info()
		if len(info.RETA) != retaSize || !bytes.Equal(info.RSSKey, engine.DefaultRSSKey[:]) {
			t.Fatalf("%d queues: RETA of %d entries, key %x", queues, len(info.RETA), info.RSSKey)
		}
		tz, err := engine.NewToeplitz(info.RSSKey, 12)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(queues)))
		hit := make([]int, queues)
		var pkts [4]engine.Mbuf
		for i := 0; i < 300; i++ {
			var src, dst [4]byte
			binary.BigEndian.PutUint32(src[:], rng.Uint32())
			binary.BigEndian.PutUint32(dst[:], rng.Uint32())
			sport, dport := uint16(rng.Uint32()), uint16(rng.Uint32())
			f := udpFrame(60, src, dst, sport, dport, 0)
			var kind string
			var hash uint32
			switch i % 4 {
			case 0, 1:
				kind, hash = "udp", tz.HashIPv4Ports(src, dst, sport, dport)
			case 2:
				kind, hash = "fragment", tz.HashIPv4(src, dst)
				fragment(f, true, 0)
			case 3:
				kind, hash = "icmp", tz.HashIPv4(src, dst)
				f[23] = 1
			}
			want := info.QueueOf(hash)
			h.send(0, i%queues, f)
			got := -1
			for q := 0; q < queues; q++ {
				n := rx.RxBurst(q, pkts[:])
				if n == 0 {
					continue
				}
				got = q
				if n != 1 || pkts[0].Hash() != hash {
					t.Errorf("%s flow %d: %d frames on queue %d, hash %#x, want one with %#x", kind, i, n, q, pkts[0].Hash(), hash)
				}
				h.cs.FreeBulk(pkts[:n])
			}
			if got != want {
				t.Fatalf("%d queues, %s %v:%d -> %v:%d: delivered on queue %d, predicted %d", queues, kind, src, sport, dst, dport, got, want)
			}
			hit[got]++
		}
		for q, n := range hit {
			if n == 0 {
				t.Errorf("%d queues: no flow landed on queue %d: %v", queues, q, hit)
			}
		}
	}
	// One queue: no RSS to report.
	one := newHarness(t, Config{})
	if info := one.pair.Ports[1].Info(); info.RSSKey != nil || info.RETA != nil || info.QueueOf(0xdeadbeef) != 0 {
		t.Fatalf("a one-queue port reports RSS: key %x, RETA %v", info.RSSKey, info.RETA)
	}
}

package engine

import (
	"encoding/binary"
	"testing"
)

func TestToeplitzVectors(t *testing.T) {
	// Verification values from Microsoft's RSS specification.
	tz, err := NewToeplitz(DefaultRSSKey[:], 12)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		src, dst     [4]byte
		sport, dport uint16
		withPorts    uint32
		addrsOnly    uint32
	}{
		{[4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}, 2794, 1766, 0x51ccc178, 0x323e8fc2},
		{[4]byte{199, 92, 111, 2}, [4]byte{65, 69, 140, 83}, 14230, 4739, 0xc626b0ea, 0xd718262a},
		{[4]byte{24, 19, 198, 95}, [4]byte{12, 22, 207, 184}, 12898, 38024, 0x5c2b394a, 0xd2d0a5de},
	}
	for _, c := range cases {
		var in [12]byte
		copy(in[0:4], c.src[:])
		copy(in[4:8], c.dst[:])
		binary.BigEndian.PutUint16(in[8:], c.sport)
		binary.BigEndian.PutUint16(in[10:], c.dport)
		if h := tz.Hash(in[:]); h != c.withPorts {
			t.Errorf("%v:%d -> %v:%d: hash %#x, want %#x", c.src, c.sport, c.dst, c.dport, h, c.withPorts)
		}
		if h := tz.Hash(in[:8]); h != c.addrsOnly {
			t.Errorf("%v -> %v: hash %#x, want %#x", c.src, c.dst, h, c.addrsOnly)
		}
		if h := tz.HashIPv4Ports(c.src, c.dst, c.sport, c.dport); h != c.withPorts {
			t.Errorf("HashIPv4Ports %v:%d -> %v:%d = %#x, want %#x", c.src, c.sport, c.dst, c.dport, h, c.withPorts)
		}
		if h := tz.HashIPv4(c.src, c.dst); h != c.addrsOnly {
			t.Errorf("HashIPv4 %v -> %v = %#x, want %#x", c.src, c.dst, h, c.addrsOnly)
		}
	}
	if _, err := NewToeplitz(make([]byte, 10), 12); err == nil {
		t.Fatal("a 10-byte key accepted for 12-byte inputs")
	}
}

// QueueOf looks the hash up in the redirection table: by its low bits when
// the table's size is a power of two, modulo the size otherwise, and queue 0
// for a port without RSS.
func TestQueueOfLooksTheHashUpInTheRedirectionTable(t *testing.T) {
	reta := make([]uint16, 128)
	for i := range reta {
		reta[i] = uint16(i % 3)
	}
	info := PortInfo{RETA: reta}
	for _, h := range []uint32{0, 1, 127, 128, 0xdeadbeef, 0xffffffff} {
		if got, want := info.QueueOf(h), int(reta[h%128]); got != want {
			t.Errorf("128 entries: QueueOf(%#x) = %d, want %d", h, got, want)
		}
	}
	odd := PortInfo{RETA: []uint16{2, 0, 1, 1, 0}}
	for _, h := range []uint32{0, 4, 5, 0xdeadbeef} {
		if got, want := odd.QueueOf(h), int(odd.RETA[h%5]); got != want {
			t.Errorf("5 entries: QueueOf(%#x) = %d, want %d", h, got, want)
		}
	}
	if q := (PortInfo{}).QueueOf(0xdeadbeef); q != 0 {
		t.Errorf("no RSS: QueueOf = %d, want 0", q)
	}
}

package wire

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum/rfc1071"
)

// refL4Checksum is the UDP checksum of an Ethernet/IPv4/UDP frame summed the
// plain way (rfc1071), with the field counted as zero.
func refL4Checksum(f []byte) uint16 {
	ip := f[14:34]
	c := rfc1071.Transport([4]byte(ip[12:16]), [4]byte(ip[16:20]), ip[9], f[34:], 6)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// offloadedFrame is a UDP frame whose checksum is left to the port: the
// field holds the pseudo-header sum, folded and not complemented.
func offloadedFrame(n int, fill byte) []byte {
	f := udpFrame(n, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, fill)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	s := uint32(17) + uint32(n-34) // protocol and length
	for i := 26; i < 34; i += 2 {
		s += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(f[40:], uint16(s))
	return f
}

// sendOffloaded sends frames flagged for checksum offload from port 0.
func (h *harness) sendOffloaded(frames ...[]byte) {
	h.t.Helper()
	var ms []engine.Mbuf
	for _, f := range frames {
		m := h.mbuf(f)
		m.SetFlags(engine.FlagTxL4Csum | engine.FlagTxIPCsum)
		m.SetHeaderLens(14, 20, 8)
		ms = append(ms, m)
	}
	if n := h.pair.Ports[0].TxBurst(0, ms); n != len(ms) {
		h.t.Fatalf("TxBurst took %d of %d", n, len(ms))
	}
}

// received is a frame as port 1 got it.
type received struct {
	b          []byte
	flags      uint32
	l2, l3, l4 int
}

func (h *harness) recvMeta() []received {
	var out []received
	var pkts [engine.Burst]engine.Mbuf
	deadline := time.Now().Add(time.Second)
	for len(out) == 0 && time.Now().Before(deadline) {
		for n := h.pair.Ports[1].RxBurst(0, pkts[:]); n > 0; n = h.pair.Ports[1].RxBurst(0, pkts[:]) {
			for _, m := range pkts[:n] {
				b := make([]byte, m.PktLen())
				m.CopyOut(b, 0)
				l2, l3, l4 := m.HeaderLens()
				out = append(out, received{b, m.Flags(), l2, l3, l4})
			}
			h.cs.FreeBulk(pkts[:n])
		}
	}
	return out
}

func TestBothPortsAdvertiseChecksumOffloadOnlyWhenAskedTo(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, Config{ChecksumOffload: on})
		for _, p := range h.pair.Ports {
			if f := p.Info().Features; f.TxChecksum != on || f.RxChecksum != on {
				t.Errorf("offload %v: %s advertises %+v", on, p.Info().Name, f)
			}
		}
	}
}

// With offload on, a frame whose checksum was left to the port crosses
// byte for byte, nothing computed, and lands marked good and still left to
// finish, on every path that does not corrupt.
func TestAnOffloadedChecksumCrossesUnfinishedAndMarkedGood(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		size int
	}{
		{"copy", Config{}, 200},
		{"copy chained", Config{}, 3000},
		{"zero-copy", Config{ZeroCopy: true}, 200},
		{"duplicating", Config{Impair: [2]Impairment{{Duplicate: 1, Seed: 1}}}, 200},
		{"delayed", Config{Impair: [2]Impairment{{Delay: time.Millisecond}}}, 200},
	} {
		c.cfg.ChecksumOffload = true
		h := newHarness(t, c.cfg)
		f := offloadedFrame(c.size, 3)
		h.sendOffloaded(f)
		got := h.recvMeta()
		if len(got) == 0 {
			t.Fatalf("%s: nothing received", c.name)
		}
		want := engine.FlagRxL4CsumGood | engine.FlagTxL4Csum | engine.FlagRxIPCsumGood
		for _, r := range got {
			if !bytes.Equal(r.b, f) {
				t.Errorf("%s: the bytes changed on the way", c.name)
			}
			if r.flags != want || r.l2 != 14 || r.l3 != 20 || r.l4 != 8 {
				t.Errorf("%s: flags %#x lens %d/%d/%d, want %#x and 14/20/8", c.name, r.flags, r.l2, r.l3, r.l4, want)
			}
		}
	}
}

// A frame sent with its checksum done is not marked good: the receiver
// verifies it, as veth leaves a CHECKSUM_NONE packet.
func TestAFrameWithItsChecksumDoneIsNotMarkedGood(t *testing.T) {
	h := newHarness(t, Config{ChecksumOffload: true})
	f := udpFrame(200, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, 1)
	binary.BigEndian.PutUint16(f[40:], refL4Checksum(f))
	h.send(0, 0, f)
	for _, r := range h.recvMeta() {
		if r.flags != 0 {
			t.Errorf("flags %#x, want none", r.flags)
		}
	}
}

// On a lane that may corrupt, every offloaded checksum is finished in
// software before the impairment and nothing is marked good, so the
// receiver's verification sees the corruption.
func TestACorruptingLaneFinishesOffloadedChecksumsInSoftware(t *testing.T) {
	for _, size := range []int{61, 200, 3000} {
		// Corrupt > 0 so small that no frame is flipped: the checksums
		// must come out right.
		h := newHarness(t, Config{ChecksumOffload: true, Impair: [2]Impairment{{Corrupt: 1e-12, Seed: 1}}})
		f := offloadedFrame(size, byte(size))
		h.sendOffloaded(f)
		got := h.recvMeta()
		if len(got) != 1 {
			t.Fatalf("%d bytes: received %d frames", size, len(got))
		}
		r := got[0]
		if r.flags != 0 {
			t.Errorf("%d bytes: flags %#x, want none", size, r.flags)
		}
		if c, want := binary.BigEndian.Uint16(r.b[40:]), refL4Checksum(f); c != want {
			t.Errorf("%d bytes: UDP checksum %#04x, want %#04x", size, c, want)
		}
		if ipOK(r.b[14:34]) != true {
			t.Errorf("%d bytes: the IPv4 header checksum was not filled", size)
		}
		wantBytes := append([]byte(nil), f...)
		copy(wantBytes[14:34], r.b[14:34])
		copy(wantBytes[40:42], r.b[40:42])
		if !bytes.Equal(r.b, wantBytes) {
			t.Errorf("%d bytes: bytes other than the checksums changed", size)
		}
	}
	// Every frame corrupted: none arrives marked good.
	h := newHarness(t, Config{ChecksumOffload: true, Impair: [2]Impairment{{Corrupt: 1, Seed: 2}}})
	var fs [][]byte
	for i := range 20 {
		fs = append(fs, offloadedFrame(300, byte(i)))
	}
	h.sendOffloaded(fs...)
	got := h.recvMeta()
	if len(got) != len(fs) {
		t.Fatalf("received %d of %d", len(got), len(fs))
	}
	bad := 0
	for i, r := range got {
		if r.flags != 0 {
			t.Errorf("corrupted frame %d: flags %#x, want none", i, r.flags)
		}
		if binary.BigEndian.Uint16(r.b[40:]) != refL4Checksum(r.b) {
			bad++
		}
	}
	if bad == 0 {
		t.Errorf("no corrupted frame fails its UDP checksum")
	}
}

// ipOK says whether an IPv4 header's checksum is right.
func ipOK(h []byte) bool {
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

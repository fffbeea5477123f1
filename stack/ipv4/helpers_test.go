package ipv4

import (
	"encoding/binary"
	"testing"

	"github.com/pollnet/pollnet/engine"
)

// newTestPool makes a pool and a cache set, and checks at the end of the
// test that every mbuf came back.
func newTestPool(t testing.TB, size int) (*engine.Pool, *engine.Caches) {
	t.Helper()
	p, err := engine.NewPool(t.Name(), size, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs := new(engine.Caches)
	t.Cleanup(func() {
		cs.Flush()
		if n := p.Available(); n != p.Size() {
			t.Errorf("pool leak: %d of %d mbufs not returned", p.Size()-n, p.Size())
		}
		p.Close()
	})
	return p, cs
}

// mbufOf copies b into a new packet. With segLens, the packet is a chain
// whose segments hold those many bytes (the last takes the rest).
func mbufOf(t testing.TB, cs *engine.Caches, p *engine.Pool, b []byte, segLens ...int) engine.Mbuf {
	t.Helper()
	m, err := cs.Alloc(p)
	if err != nil {
		t.Fatal(err)
	}
	seg := m
	for i, n := range segLens {
		n = min(n, len(b))
		if i > 0 {
			if seg, err = cs.Alloc(p); err != nil {
				t.Fatal(err)
			}
			if err := m.Chain(seg); err != nil {
				t.Fatal(err)
			}
		}
		d, err := m.Append(n)
		if err != nil {
			t.Fatal(err)
		}
		copy(d, b)
		b = b[n:]
	}
	if len(segLens) > 0 && len(b) > 0 {
		s, err := cs.Alloc(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Chain(s)
	}
	if err := cs.AppendBytes(m, p, b); err != nil {
		t.Fatal(err)
	}
	return m
}

// bytesOf copies a whole packet out.
func bytesOf(m engine.Mbuf) []byte {
	b := make([]byte, m.PktLen())
	m.CopyOut(b, 0)
	return b
}

// datagram builds a valid IPv4 datagram with a counting payload.
func datagram(payload int, id uint16, flags uint8, opts []byte) []byte {
	hl := HeaderLen + len(opts)
	b := make([]byte, hl+payload)
	h := Header{TotalLen: uint16(hl + payload), ID: id, Flags: flags, TTL: 64, Protocol: ProtoUDP,
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
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:hl], 0))
	return b
}

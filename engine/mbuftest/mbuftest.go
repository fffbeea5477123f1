// Package mbuftest builds pools and packets for tests of the packages that
// parse and reassemble them.
package mbuftest

import (
	"testing"

	"github.com/pollnet/pollnet/engine"
)

// Pool makes a pool and a cache set, and checks at the end of the
// test that every mbuf came back.
func Pool(t testing.TB, size int) (*engine.Pool, *engine.Caches) {
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

// Packet copies b into a new packet. With segLens, the packet is a chain
// whose segments hold those many bytes (the last takes the rest).
func Packet(t testing.TB, cs *engine.Caches, p *engine.Pool, b []byte, segLens ...int) engine.Mbuf {
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

// Bytes copies a whole packet out.
func Bytes(m engine.Mbuf) []byte {
	b := make([]byte, m.PktLen())
	m.CopyOut(b, 0)
	return b
}

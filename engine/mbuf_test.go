package engine

import (
	"errors"
	"testing"
)

func TestHeadroomTailroom(t *testing.T) {
	p := newTestPool(t, 4, 1)
	var cs Caches
	defer cs.Flush()
	m, _ := cs.Alloc(p)
	defer cs.Free(m)
	b, err := m.Append(100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = byte(i)
	}
	h, err := m.Prepend(14)
	if err != nil {
		t.Fatal(err)
	}
	copy(h, "headerheader!!")
	if m.Len() != 114 || m.PktLen() != 114 || m.Headroom() != Headroom-14 {
		t.Fatalf("after prepend: len %d pktlen %d headroom %d", m.Len(), m.PktLen(), m.Headroom())
	}
	if _, err := m.Prepend(Headroom); !errors.Is(err, ErrNoHeadroom) {
		t.Fatalf("prepend past headroom: %v", err)
	}
	if err := m.Adj(14); err != nil || m.Data()[0] != 0 || m.Len() != 100 {
		t.Fatalf("adj: %v, first byte %d len %d", err, m.Data()[0], m.Len())
	}
	if err := m.Trim(10); err != nil || m.Len() != 90 || m.Data()[89] != 89 {
		t.Fatalf("trim: %v len %d", err, m.Len())
	}
	if err := m.Trim(91); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("trim past data: %v", err)
	}
	if err := m.Adj(91); !errors.Is(err, ErrShortPacket) {
		t.Fatalf("adj past data: %v", err)
	}
	if _, err := m.Append(m.Tailroom() + 1); !errors.Is(err, ErrNoTailroom) {
		t.Fatalf("append past tailroom: %v", err)
	}
}

package engine

import (
	"bytes"
	"errors"
	"testing"
)

func TestClonesThatAppendDoNotOverwriteEachOther(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	orig, _ := cs.Alloc(p)
	d, _ := orig.Append(100)
	copy(d, bytes.Repeat([]byte{1}, 100))
	c1, _ := cs.Clone(orig, p)
	c2, _ := cs.Clone(orig, p)
	a, errA := c1.Append(4)
	if errA == nil {
		copy(a, "AAAA")
	}
	b, errB := c2.Append(4)
	if errB == nil {
		copy(b, "BBBB")
	}
	if errA == nil && errB == nil && string(c1.Data()[100:]) != "AAAA" {
		t.Fatalf("a clone's append overwrote the other's: %q", c1.Data()[100:])
	}
	for name, m := range map[string]Mbuf{"clone": c1, "original of clones": orig} {
		if _, err := m.Append(4); !errors.Is(err, ErrShared) {
			t.Errorf("Append on a %s: %v, want ErrShared", name, err)
		}
		if _, err := m.Prepend(4); !errors.Is(err, ErrShared) {
			t.Errorf("Prepend on a %s: %v, want ErrShared", name, err)
		}
		if err := m.SetLen(200); !errors.Is(err, ErrShared) {
			t.Errorf("SetLen on a %s: %v, want ErrShared", name, err)
		}
		if m.Tailroom() != 0 || m.Headroom() != 0 {
			t.Errorf("%s: headroom %d tailroom %d, want 0 and 0", name, m.Headroom(), m.Tailroom())
		}
		if m.Len() != 100 {
			t.Errorf("%s: a refused write changed the length to %d", name, m.Len())
		}
	}
	cs.Free(c1)
	cs.Free(c2)
	// The last holder owns its buffer again.
	if !orig.Writable() || orig.Tailroom() != DataRoom-100 || orig.Headroom() != Headroom {
		t.Fatalf("the original is not writable once its clones are gone")
	}
	if _, err := orig.Append(4); err != nil {
		t.Fatal(err)
	}
	cs.Free(orig)
}

func TestACloneThatOutlivesItsOriginalIsStillNotWritable(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	orig, _ := cs.Alloc(p)
	orig.Append(100)
	c, _ := cs.Clone(orig, p)
	c.Trim(50)
	cs.Free(orig) // c is now the buffer's only holder
	if c.Writable() {
		t.Fatal("a clone claims to be writable")
	}
	if _, err := c.Append(10); !errors.Is(err, ErrShared) {
		t.Fatalf("Append on the last clone: %v, want ErrShared", err)
	}
	cs.Free(c)
}

func TestAReferencedPacketIsNotWritten(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	m := fillChain(t, &cs, p, DataRoom+10)
	Ref(m) // a retransmit queue's reference: the headers are shared too
	if _, err := m.Append(1); !errors.Is(err, ErrShared) {
		t.Fatalf("Append on a referenced packet: %v", err)
	}
	if _, err := m.Prepend(1); !errors.Is(err, ErrShared) {
		t.Fatalf("Prepend on a referenced packet: %v", err)
	}
	if m.PktLen() != DataRoom+10 || m.Segs() != 2 || m.Tailroom() != 0 || m.Headroom() != 0 {
		t.Fatalf("refused writes changed the packet: %d bytes in %d segments", m.PktLen(), m.Segs())
	}
	cs.Free(m)
	cs.Free(m)
}

func TestAppendBytesToACloneChainsANewSegment(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	orig, _ := cs.Alloc(p)
	d, _ := orig.Append(10)
	copy(d, "0123456789")
	c, _ := cs.Clone(orig, p)
	if err := cs.AppendBytes(c, p, []byte("tail")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, c.PktLen())
	c.CopyOut(got, 0)
	if string(got) != "0123456789tail" || c.Segs() != 2 {
		t.Fatalf("clone reads %q in %d segments", got, c.Segs())
	}
	if orig.Len() != 10 || string(orig.Data()) != "0123456789" {
		t.Fatalf("appending to a clone changed the original: %q", orig.Data())
	}
	cs.Free(c)
	cs.Free(orig)
}

package afxdp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// sharedRing is a ring's shared part in ordinary memory, standing in for
// the kernel's mapping so both sides can be played by the test.
type sharedRing struct {
	prod, cons, flags uint32
	descs             []uint64
}

func newShared(size int, start uint32) *sharedRing {
	return &sharedRing{prod: start, cons: start, descs: make([]uint64, size)}
}

func (s *sharedRing) producer() ring[uint64] {
	return newRing(&s.prod, &s.cons, &s.flags, s.descs, true)
}

func (s *sharedRing) consumer() ring[uint64] {
	return newRing(&s.prod, &s.cons, &s.flags, s.descs, false)
}

func TestAnEmptyRingHasEverySlotFreeAndNothingToRead(t *testing.T) {
	s := newShared(8, 0)
	p, c := s.producer(), s.consumer()
	if got := p.free(100); got != 8 {
		t.Errorf("free on an empty ring of 8 = %d, want 8", got)
	}
	if got := c.avail(100); got != 0 {
		t.Errorf("avail on an empty ring = %d, want 0", got)
	}
}

func TestAFullRingRefusesTheProducerUntilTheConsumerReleases(t *testing.T) {
	s := newShared(4, 0)
	p, c := s.producer(), s.consumer()
	for i := uint32(0); i < 4; i++ {
		*p.slot(i) = uint64(100 + i)
	}
	p.submit(4)
	if got := p.free(1); got != 0 {
		t.Fatalf("free on a full ring = %d, want 0", got)
	}
	if got := c.avail(4); got != 4 {
		t.Fatalf("avail on a full ring = %d, want 4", got)
	}
	if v := *c.slot(0); v != 100 {
		t.Errorf("first entry %d, want 100", v)
	}
	c.release(1)
	if got := p.free(4); got != 1 {
		t.Errorf("free after one release = %d, want 1", got)
	}
	if got := c.avail(4); got != 3 {
		t.Errorf("avail after one release = %d, want 3", got)
	}
}

// The indices are free-running: the count of entries must stay right when
// the producer's index has wrapped past 2^32 and the consumer's has not.
func TestIndicesWrapAroundAt2To32(t *testing.T) {
	s := newShared(8, 0xffff_fffa) // six steps from the wrap
	p, c := s.producer(), s.consumer()
	next := uint64(0)
	read := uint64(0)
	for round := 0; round < 10; round++ {
		n := p.free(5)
		for i := uint32(0); i < n; i++ {
			*p.slot(i) = next
			next++
		}
		p.submit(n)
		got := c.avail(8)
		if got != n {
			t.Fatalf("round %d (prod %#x): avail %d, want %d", round, s.prod, got, n)
		}
		for i := uint32(0); i < got; i++ {
			if v := *c.slot(i); v != read {
				t.Fatalf("round %d: entry %d, want %d", round, v, read)
			}
			read++
		}
		c.release(got)
	}
	if s.prod != 44 { // 2^32 - 6 + 50
		t.Errorf("producer index %#x after 50 entries, want 44", s.prod)
	}
	// Full across the wrap: the producer at 2^32+2, the consumer at 2^32-6.
	s = newShared(8, 0xffff_fffa)
	p, c = s.producer(), s.consumer()
	p.submit(p.free(8))
	if s.prod != 2 {
		t.Fatalf("producer index %#x after filling across the wrap, want 2", s.prod)
	}
	if got := p.free(1); got != 0 {
		t.Errorf("free on a ring full across the wrap = %d, want 0", got)
	}
	if got := c.avail(9); got != 8 {
		t.Errorf("avail on a ring full across the wrap = %d, want 8", got)
	}
}

func TestTheOtherSidesIndexIsReloadedOnlyWhenTheCacheFallsShort(t *testing.T) {
	s := newShared(8, 0)
	c := s.consumer()
	s.prod = 3 // the kernel produced three
	if got := c.avail(2); got != 2 {
		t.Fatalf("avail(2) = %d, want 2", got)
	}
	c.release(2)
	s.prod = 5 // two more: the cache still shows one, enough for avail(1)
	if got := c.avail(1); got != 1 {
		t.Fatalf("avail(1) = %d, want 1", got)
	}
	if c.other != 3 {
		t.Errorf("cached producer %d, want 3: reloaded without need", c.other)
	}
	if got := c.avail(8); got != 3 {
		t.Errorf("avail(8) = %d, want 3 after reload", got)
	}
}

func TestABrokenPeerIndexClaimsNothing(t *testing.T) {
	s := newShared(8, 0)
	c := s.consumer()
	s.prod = 1000 // more entries than the ring has slots
	if got := c.avail(32); got != 0 {
		t.Errorf("avail with producer 1000 on a ring of 8 = %d, want 0", got)
	}
	s = newShared(8, 100)
	p := s.producer()
	s.cons = 200 // the consumer ahead of the producer
	if got := p.free(32); got != 0 {
		t.Errorf("free with the consumer ahead of the producer = %d, want 0", got)
	}
}

func TestPendingAndNeedWakeupReadTheKernelsView(t *testing.T) {
	s := newShared(8, 0)
	p := s.producer()
	p.submit(p.free(3))
	if got := p.pending(); got != 3 {
		t.Errorf("pending = %d, want 3", got)
	}
	s.cons = 2
	if got := p.pending(); got != 1 {
		t.Errorf("pending after the kernel took two = %d, want 1", got)
	}
	if p.needWakeup() {
		t.Error("needWakeup with flags 0")
	}
	s.flags = unix.XDP_RING_NEED_WAKEUP
	if !p.needWakeup() {
		t.Error("needWakeup false with XDP_RING_NEED_WAKEUP set")
	}
}

func TestDescriptorRingsCarryAddressAndLength(t *testing.T) {
	var prod, cons, flags uint32
	descs := make([]unix.XDPDesc, 4)
	p := newRing(&prod, &cons, &flags, descs, true)
	c := newRing(&prod, &cons, &flags, descs, false)
	*p.slot(0) = unix.XDPDesc{Addr: 4096 + 256, Len: 60}
	p.submit(1)
	if c.avail(4) != 1 {
		t.Fatal("descriptor not visible")
	}
	if d := *c.slot(0); d.Addr != 4096+256 || d.Len != 60 {
		t.Errorf("descriptor %+v", d)
	}
}

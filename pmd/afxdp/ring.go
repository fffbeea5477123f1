package afxdp

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// desc is what a ring carries: a UMEM address (fill and completion rings)
// or a frame descriptor, address and length (rx and tx rings).
type desc interface {
	uint64 | unix.XDPDesc
}

// ring is one single-producer single-consumer ring that an AF_XDP socket
// shares with the kernel, seen from our side (xsk_queue in the kernel,
// xsk_ring_prod and xsk_ring_cons in libxdp). We produce into the fill and tx
// rings and consume from the rx and completion rings.
//
// The indices are free-running uint32s: an index is never reduced, only its
// slot is (index & mask), so the number of entries is prod - cons in uint32
// arithmetic, which is right across the wrap at 2^32 as long as the ring
// holds at most 2^31 entries (the kernel caps rings far below that).
//
// Ordering is the whole contract, so every access to the shared indices is
// atomic, never a plain load or store:
//
//   - A producer writes descriptors, then stores its producer index. The
//     store must be a release, so the kernel never sees the index move past
//     a slot whose descriptor is not yet written. Go's atomic store is
//     sequentially consistent, which is at least a release.
//   - A consumer loads the producer index, then reads the descriptors below
//     it. The load must be an acquire, or the reads could see slots older
//     than the index. Go's atomic load is at least an acquire.
//   - A consumer stores its consumer index after it has read the slots it
//     gives back (a release), and a producer loads that index before it
//     writes those slots again (an acquire), so the kernel never overwrites
//     a descriptor we are still reading, nor we one it is.
//
// The other side's index is cached (other) and reloaded only when the cache
// says there is not enough room or data, so a burst costs at most one
// acquire-load and one release-store, as in the kernel's own xskq code.
//
// A ring is driven by one goroutine; the fields other than the mapped
// indices belong to it.
type ring[T desc] struct {
	producer *uint32 // mapped: the producer's index
	consumer *uint32 // mapped: the consumer's index
	flags    *uint32 // mapped: XDP_RING_NEED_WAKEUP, set by the kernel
	descs    []T     // mapped: size slots
	mask     uint32
	size     uint32
	local    uint32 // our own index: producer on a produce ring, consumer on a consume ring
	other    uint32 // the last value loaded of the other side's index
}

// newRing views mapped (or, in tests, ordinary) memory as a ring. size is a
// power of two and len(descs) == size. It starts from the indices as found,
// as a socket's rings start at zero.
func newRing[T desc](producer, consumer, flags *uint32, descs []T, produce bool) ring[T] {
	r := ring[T]{producer: producer, consumer: consumer, flags: flags, descs: descs,
		size: uint32(len(descs)), mask: uint32(len(descs)) - 1}
	p, c := atomic.LoadUint32(producer), atomic.LoadUint32(consumer)
	if produce {
		r.local, r.other = p, c
	} else {
		r.local, r.other = c, p
	}
	return r
}

// free is how many slots, up to n, a producer may fill now. It reloads the
// consumer's index (acquire) only when the cached one leaves fewer than n.
func (r *ring[T]) free(n uint32) uint32 {
	f := r.size - (r.local - r.other)
	if f < n {
		r.other = atomic.LoadUint32(r.consumer)
		f = r.size - (r.local - r.other)
		if f > r.size { // an index from a broken peer: claim nothing
			f = 0
		}
	}
	return min(f, n)
}

// slot is the i-th slot past our index: the next to fill on a produce ring,
// the next to read on a consume ring.
func (r *ring[T]) slot(i uint32) *T { return &r.descs[(r.local+i)&r.mask] }

// submit publishes the n slots just filled (release).
func (r *ring[T]) submit(n uint32) {
	r.local += n
	atomic.StoreUint32(r.producer, r.local)
}

// avail is how many entries, up to n, a consumer may read now. It reloads
// the producer's index (acquire) only when the cached one shows fewer than n.
func (r *ring[T]) avail(n uint32) uint32 {
	a := r.other - r.local
	if a < n {
		r.other = atomic.LoadUint32(r.producer)
		a = r.other - r.local
		if a > r.size { // an index from a broken peer: read nothing
			a = 0
		}
	}
	return min(a, n)
}

// release gives back the n entries just read (release).
func (r *ring[T]) release(n uint32) {
	r.local += n
	atomic.StoreUint32(r.consumer, r.local)
}

// pending is how many entries a produce ring holds that the kernel has not
// consumed yet, by the consumer index it publishes now.
func (r *ring[T]) pending() uint32 {
	r.other = atomic.LoadUint32(r.consumer)
	return r.local - r.other
}

// published is how many entries the producer has published that the
// consumer has not taken, read from the two mapped indices alone: unlike
// pending it writes nothing of ours, so a goroutine other than the ring's
// driver may ask.
func (r *ring[T]) published() uint32 {
	return atomic.LoadUint32(r.producer) - atomic.LoadUint32(r.consumer)
}

// needWakeup reports whether the kernel asks to be kicked (a system call)
// before it looks at this ring again: XDP_RING_NEED_WAKEUP in the ring's
// flags, which it sets and clears.
func (r *ring[T]) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

package ring

import "sync/atomic"

// SPSC is a bounded single-producer, single-consumer ring.
//
// Exactly one goroutine at a time may call the producer methods (Enqueue*)
// and exactly one the consumer methods (Dequeue*, Peek); Len, Free and Cap
// may be called from anywhere.
//
// Positions are free-running 64-bit counters (they never wrap in practice);
// a slot is the position masked by size-1. The producer publishes with a
// release store of tail after writing the slots, and the consumer frees
// slots with a release store of head after reading them; each side reads the
// other's index only when its cached copy says the burst would not fit, so a
// burst touches the other side's cache line at most once.
type SPSC[T any] struct {
	_ pad

	// Read-only after construction; shared by both sides without contention.
	slots []T
	mask  uint64
	size  uint64

	_ pad

	// Producer's line: tail is written here and only read by the consumer.
	tail      atomic.Uint64 // next position the producer will fill
	headCache uint64        // producer's last view of head

	_ pad

	// Consumer's line.
	head      atomic.Uint64 // next position the consumer will take
	tailCache uint64        // consumer's last view of tail

	_ pad
}

// NewSPSC returns an empty ring with size slots. Size must be a power of two
// between 2 and MaxSize; all size slots are usable.
func NewSPSC[T any](size int) (*SPSC[T], error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	return &SPSC[T]{
		slots: make([]T, size),
		mask:  uint64(size - 1),
		size:  uint64(size),
	}, nil
}

// Cap returns the number of slots.
func (r *SPSC[T]) Cap() int { return int(r.size) }

// Len returns the number of values in the ring. It is exact when called by
// the producer or consumer with the other side idle, and otherwise a
// snapshot that may already be stale.
func (r *SPSC[T]) Len() int {
	// head first: tail only grows, so tail read later is >= that head.
	head := r.head.Load()
	tail := r.tail.Load()
	return int(min(tail-head, r.size))
}

// Free returns the number of empty slots, with the same caveats as Len.
func (r *SPSC[T]) Free() int { return r.Cap() - r.Len() }

// room returns how many of n values fit after tail, reloading head only if
// the cached copy says fewer than n fit.
func (r *SPSC[T]) room(tail, n uint64) uint64 {
	free := r.size - (tail - r.headCache)
	if free < n {
		r.headCache = r.head.Load()
		free = r.size - (tail - r.headCache)
	}
	return min(free, n)
}

// put copies vals into the slots starting at position tail and publishes
// them.
func (r *SPSC[T]) put(tail uint64, vals []T) {
	i := tail & r.mask
	if n := copy(r.slots[i:], vals); n < len(vals) {
		copy(r.slots, vals[n:])
	}
	release(&r.tail, tail+uint64(len(vals)))
}

// EnqueueBurst appends as many of vals as fit and returns how many it
// appended (0 if the ring is full).
func (r *SPSC[T]) EnqueueBurst(vals []T) int {
	tail := r.tail.Load()
	n := r.room(tail, uint64(len(vals)))
	if n == 0 {
		return 0
	}
	r.put(tail, vals[:n])
	return int(n)
}

// EnqueueBulk appends all of vals, or nothing if they do not all fit.
func (r *SPSC[T]) EnqueueBulk(vals []T) bool {
	tail := r.tail.Load()
	n := uint64(len(vals))
	if r.room(tail, n) != n {
		return false
	}
	if n > 0 {
		r.put(tail, vals)
	}
	return true
}

// Enqueue appends v and reports whether there was room.
func (r *SPSC[T]) Enqueue(v T) bool {
	tail := r.tail.Load()
	if r.room(tail, 1) == 0 {
		return false
	}
	r.slots[tail&r.mask] = v
	release(&r.tail, tail+1)
	return true
}

// avail returns how many of n values can be taken from head, reloading tail
// only if the cached copy says fewer than n are there.
func (r *SPSC[T]) avail(head, n uint64) uint64 {
	have := r.tailCache - head
	if have < n {
		r.tailCache = r.tail.Load()
		have = r.tailCache - head
	}
	return min(have, n)
}

// take copies len(out) values starting at position head into out and frees
// their slots.
func (r *SPSC[T]) take(head uint64, out []T) {
	i := head & r.mask
	if n := copy(out, r.slots[i:]); n < len(out) {
		copy(out[n:], r.slots)
	}
	release(&r.head, head+uint64(len(out)))
}

// DequeueBurst moves up to len(out) values into out and returns how many.
func (r *SPSC[T]) DequeueBurst(out []T) int {
	head := r.head.Load()
	n := r.avail(head, uint64(len(out)))
	if n == 0 {
		return 0
	}
	r.take(head, out[:n])
	return int(n)
}

// DequeueBulk fills all of out, or takes nothing if fewer than len(out)
// values are in the ring.
func (r *SPSC[T]) DequeueBulk(out []T) bool {
	head := r.head.Load()
	n := uint64(len(out))
	if r.avail(head, n) != n {
		return false
	}
	if n > 0 {
		r.take(head, out)
	}
	return true
}

// Dequeue removes and returns the oldest value; ok is false if the ring is
// empty.
func (r *SPSC[T]) Dequeue() (v T, ok bool) {
	head := r.head.Load()
	if r.avail(head, 1) == 0 {
		return v, false
	}
	v = r.slots[head&r.mask]
	release(&r.head, head+1)
	return v, true
}

// Peek returns the oldest value without removing it; ok is false if the ring
// is empty. Consumer side only: the producer may overwrite a slot as soon as
// the consumer has moved past it, so only the consumer can peek safely.
func (r *SPSC[T]) Peek() (v T, ok bool) {
	head := r.head.Load()
	if r.avail(head, 1) == 0 {
		return v, false
	}
	return r.slots[head&r.mask], true
}

package ring

import "sync/atomic"

// MPMC is a bounded multi-producer, multi-consumer ring. Any goroutine may
// call any method.
//
// Why per-slot sequence numbers and not DPDK's head/tail pairs: goroutines
// can be preempted at any instruction. In a head/tail ring, producers claim
// space by CAS on a shared head and must then advance the shared tail in
// claim order, so one producer descheduled between the two stalls every
// other producer (and starves consumers) until it runs again. Here, as in
// Dmitry Vyukov's bounded MPMC queue, each slot says by its own sequence
// number whether it is free for a given lap or holds that lap's value. A
// producer claims slots with one CAS on the enqueue position and publishes
// each slot by storing its sequence; if it is preempted in between, later
// producers claim the slots after it undisturbed, and consumers that reach
// its unpublished slots just see the ring as ending there. Nobody ever spins
// on another goroutine's progress; the only retry is a lost CAS, which means
// someone else made progress.
//
// Bursts claim a run of consecutive slots with a single CAS, so a burst of k
// costs one CAS plus k sequence loads and k sequence stores.
type MPMC[T any] struct {
	_ pad

	// Read-only after construction.
	slots []slot[T]
	mask  uint64
	size  uint64

	_ pad

	enq atomic.Uint64 // next position a producer will claim

	_ pad

	deq atomic.Uint64 // next position a consumer will claim

	_ pad
}

// slot holds one value and the sequence number that says what state the slot
// is in. For the position p that maps to this slot on the current lap:
//
//	seq == p           free: a producer may claim p
//	seq == p+1         full: holds the value for p, a consumer may claim p
//	seq == p+size      consumed: free for position p+size (the next lap)
//
// A claimed slot keeps its old sequence until the claimer stores the new one,
// which is what makes it look full to producers and empty to consumers.
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

// NewMPMC returns an empty ring with size slots. Size must be a power of two
// between 2 and MaxSize; all size slots are usable.
func NewMPMC[T any](size int) (*MPMC[T], error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	r := &MPMC[T]{
		slots: make([]slot[T], size),
		mask:  uint64(size - 1),
		size:  uint64(size),
	}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r, nil
}

// Cap returns the number of slots.
func (r *MPMC[T]) Cap() int { return int(r.size) }

// Len returns the number of claimed-for-enqueue but not yet
// claimed-for-dequeue positions: an approximate count of values in the ring
// that includes values still being written or read.
func (r *MPMC[T]) Len() int {
	// deq first: deq never passes enq, and enq only grows.
	deq := r.deq.Load()
	enq := r.enq.Load()
	return int(min(enq-deq, r.size))
}

// Free returns Cap minus Len.
func (r *MPMC[T]) Free() int { return r.Cap() - r.Len() }

// claimEnq reserves up to n consecutive positions for a producer (exactly n,
// or none, when all is set) and returns the first position and the count.
//
// It checks that slots pos..pos+k-1 are free for this lap and then moves the
// enqueue position from pos to pos+k by CAS. The checks still hold after a
// successful CAS: a free slot only stops being free when a producer that
// claimed its position stores a new sequence, and claiming any position at
// or after pos needs the enqueue position to move off pos, which would have
// failed our CAS. Positions are 64-bit and never reused, so the position
// cannot leave pos and come back (no ABA).
func (r *MPMC[T]) claimEnq(n uint64, all bool) (pos, k uint64) {
	if n == 0 || (all && n > r.size) {
		return 0, 0
	}
	slots, mask := r.slots, r.mask
retry:
	for {
		pos = r.enq.Load()
		for k = 0; k < n; k++ {
			d := int64(slots[(pos+k)&mask].seq.Load() - (pos + k))
			if d > 0 {
				// Already claimed and written for pos+k: pos is stale.
				continue retry
			}
			if d < 0 {
				// Still holds the previous lap's value (or a consumer is
				// reading it): the ring is full from here on.
				break
			}
		}
		if k == 0 || (all && k < n) {
			return 0, 0
		}
		if r.enq.CompareAndSwap(pos, pos+k) {
			return pos, k
		}
	}
}

// publish writes vals into the slots claimed at pos and marks each full.
func (r *MPMC[T]) publish(pos uint64, vals []T) {
	slots, mask := r.slots, r.mask
	for i, v := range vals {
		p := pos + uint64(i)
		s := &slots[p&mask]
		s.val = v
		release(&s.seq, p+1)
	}
}

// claimDeq is claimEnq for consumers: it reserves up to n consecutive full
// positions. The same argument applies: a full slot only stops being full
// when the consumer that claimed its position releases it, and that claim
// needs the dequeue position to move off pos.
func (r *MPMC[T]) claimDeq(n uint64, all bool) (pos, k uint64) {
	if n == 0 || (all && n > r.size) {
		return 0, 0
	}
	slots, mask := r.slots, r.mask
retry:
	for {
		pos = r.deq.Load()
		for k = 0; k < n; k++ {
			d := int64(slots[(pos+k)&mask].seq.Load() - (pos + k + 1))
			if d > 0 {
				// Already consumed (maybe refilled): pos is stale.
				continue retry
			}
			if d < 0 {
				// Not written yet: empty, or a producer that claimed it
				// has not published. Either way the ring ends here.
				break
			}
		}
		if k == 0 || (all && k < n) {
			return 0, 0
		}
		if r.deq.CompareAndSwap(pos, pos+k) {
			return pos, k
		}
	}
}

// release copies the values claimed at pos into out and frees each slot for
// the next lap.
func (r *MPMC[T]) release(pos uint64, out []T) {
	slots, mask, size := r.slots, r.mask, r.size
	for i := range out {
		p := pos + uint64(i)
		s := &slots[p&mask]
		out[i] = s.val
		release(&s.seq, p+size)
	}
}

// EnqueueBurst appends as many of vals as fit and returns how many.
func (r *MPMC[T]) EnqueueBurst(vals []T) int {
	pos, k := r.claimEnq(uint64(len(vals)), false)
	r.publish(pos, vals[:k])
	return int(k)
}

// EnqueueBulk appends all of vals, or nothing if they do not all fit.
func (r *MPMC[T]) EnqueueBulk(vals []T) bool {
	if len(vals) == 0 {
		return true
	}
	pos, k := r.claimEnq(uint64(len(vals)), true)
	if k == 0 {
		return false
	}
	r.publish(pos, vals)
	return true
}

// Enqueue appends v and reports whether there was room.
func (r *MPMC[T]) Enqueue(v T) bool {
	pos, k := r.claimEnq(1, true)
	if k == 0 {
		return false
	}
	s := &r.slots[pos&r.mask]
	s.val = v
	release(&s.seq, pos+1)
	return true
}

// DequeueBurst moves up to len(out) values into out and returns how many.
// Values come out in the order their positions were claimed.
func (r *MPMC[T]) DequeueBurst(out []T) int {
	pos, k := r.claimDeq(uint64(len(out)), false)
	r.release(pos, out[:k])
	return int(k)
}

// DequeueBulk fills all of out, or takes nothing if fewer than len(out)
// values are ready.
func (r *MPMC[T]) DequeueBulk(out []T) bool {
	if len(out) == 0 {
		return true
	}
	pos, k := r.claimDeq(uint64(len(out)), true)
	if k == 0 {
		return false
	}
	r.release(pos, out)
	return true
}

// Dequeue removes and returns the oldest ready value; ok is false if none is
// ready.
func (r *MPMC[T]) Dequeue() (v T, ok bool) {
	pos, k := r.claimDeq(1, true)
	if k == 0 {
		return v, false
	}
	s := &r.slots[pos&r.mask]
	v = s.val
	release(&s.seq, pos+r.size)
	return v, true
}

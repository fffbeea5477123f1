package pktgen

// ReorderWindow is how many sequence numbers below the highest one a Sink
// remembers individually. Within it, a repeated sequence number counts as a
// duplicate and a missing one that turns up counts as reordered. Further
// back the Sink cannot tell, so such arrivals count as reordered and also as
// TooLate, and a duplicate among them is mistaken for a late arrival.
const ReorderWindow = 4096

const windowWords = ReorderWindow / 64

// Sink checks one stream of stamped frames: it counts packets and bytes,
// tracks the sequence numbers for loss, duplicates and reordering, and
// records one-way latency. Sequence numbers are one stream per Sink
// starting at 0, as one Template stamping seq 0, 1, 2, ... produces; a
// receiver of several generator streams keeps one Sink per stream.
//
// A Sink is owned by one goroutine (the receiving worker) and is not safe
// for concurrent use; other goroutines read it through snapshots the owner
// hands over. Its memory is fixed (a 512-byte window and a Histogram), and
// Observe allocates nothing. The zero value is ready to use.
type Sink struct {
	received  uint64
	bytes     uint64
	malformed uint64
	dups      uint64
	reordered uint64
	tooLate   uint64
	unique    uint64
	highest   uint64
	started   bool
	// window has bit seq%ReorderWindow set for each sequence number in
	// (highest-ReorderWindow, highest] that has arrived.
	window  [windowWords]uint64
	latency Histogram
}

// SinkStats is a snapshot of a Sink's counters.
type SinkStats struct {
	Received   uint64 // well-formed frames observed, duplicates included
	Bytes      uint64 // their bytes, as passed to Observe
	Malformed  uint64 // frames ObserveFrame could not parse; not in Received
	Unique     uint64 // distinct sequence numbers received, as far as the window can tell
	Duplicates uint64 // sequence numbers seen again within the window
	Reordered  uint64 // arrivals below the highest sequence number seen, duplicates excluded
	TooLate    uint64 // the part of Reordered older than the window
	Lost       uint64 // Highest+1 - Unique: sent before the highest but never seen
	Highest    uint64 // the highest sequence number seen; 0 before the first
}

// ObserveFrame parses frame and observes its stamp, its length and the
// latency now-ts. A frame Parse rejects counts as malformed, and
// ObserveFrame returns false.
func (s *Sink) ObserveFrame(frame []byte, now int64) bool {
	return s.ObserveHead(frame, len(frame), now)
}

// ObserveHead is ObserveFrame for a frame held in several buffers: head is
// the first, frameLen the length of the whole frame (see ParseHead).
func (s *Sink) ObserveHead(head []byte, frameLen int, now int64) bool {
	seq, ts, ok := ParseHead(head, frameLen)
	if !ok {
		s.malformed++
		return false
	}
	s.Observe(seq, ts, now, frameLen)
	return true
}

// Observe accounts for one received frame of length bytes, stamped with seq
// and ts, arriving at now; ts and now are nanoseconds on the same clock.
func (s *Sink) Observe(seq uint64, ts, now int64, length int) {
	s.received++
	s.bytes += uint64(length)
	s.latency.Record(now - ts)

	switch {
	case !s.started || seq > s.highest:
		var from uint64 // first sequence number whose bit is stale
		if s.started {
			from = s.highest + 1
		}
		if d := seq - from; d >= ReorderWindow {
			s.window = [windowWords]uint64{}
		} else if d > 0 {
			s.clear(from, d)
		}
		s.started = true
		s.highest = seq
		s.set(seq)
		s.unique++
	case s.highest-seq >= ReorderWindow:
		s.reordered++
		s.tooLate++
		s.unique++
	case s.has(seq):
		s.dups++
	default:
		s.set(seq)
		s.reordered++
		s.unique++
	}
}

func (s *Sink) set(seq uint64) {
	i := seq % ReorderWindow
	s.window[i/64] |= 1 << (i % 64)
}

func (s *Sink) has(seq uint64) bool {
	i := seq % ReorderWindow
	return s.window[i/64]&(1<<(i%64)) != 0
}

// clear clears the bits of the n sequence numbers from from on, n below
// ReorderWindow: they left the window when the highest moved past them and
// now stand for sequence numbers not yet seen.
func (s *Sink) clear(from, n uint64) {
	for n > 0 {
		i := from % ReorderWindow
		bit := i % 64
		k := min(64-bit, n)
		mask := ^uint64(0)
		if k < 64 {
			mask = (1<<k - 1) << bit
		}
		s.window[i/64] &^= mask
		from += k
		n -= k
	}
}

// Stats returns a snapshot of the counters.
func (s *Sink) Stats() SinkStats {
	st := SinkStats{
		Received:   s.received,
		Bytes:      s.bytes,
		Malformed:  s.malformed,
		Unique:     s.unique,
		Duplicates: s.dups,
		Reordered:  s.reordered,
		TooLate:    s.tooLate,
		Highest:    s.highest,
	}
	if s.started && s.highest+1 > s.unique {
		st.Lost = s.highest + 1 - s.unique
	}
	return st
}

// Latency returns the Sink's one-way latency histogram. It belongs to the
// Sink's goroutine like the rest of the Sink; copy or Merge it to report.
func (s *Sink) Latency() *Histogram { return &s.latency }

// Reset forgets everything observed, to start a new stream.
func (s *Sink) Reset() { *s = Sink{} }

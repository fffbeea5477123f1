package pktgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram geometry: log-linear buckets in the manner of HdrHistogram.
// Values below 64 ns have a bucket each; above, every power of two is split
// into 32 linear sub-buckets, so a bucket is at most 1/32 of its lower bound
// wide. The top bucket ends at 2^36 ns (about 68.7 s); larger values are
// counted in it.
const (
	subBits    = 5
	subBuckets = 1 << subBits // 32
	maxExp     = 35           // values < 2^(maxExp+1) ns are bucketed exactly
	numBuckets = (maxExp-subBits+1)*subBuckets + subBuckets
)

// Histogram records nanosecond values, such as latencies, in fixed
// log-linear buckets: Record allocates nothing and takes a few nanoseconds,
// and the whole histogram is a flat 8 KiB array that can be reset, merged
// and copied.
//
// Percentile answers with the middle of the bucket that holds the requested
// rank, clamped to the exact minimum and maximum, so it is within 1/64
// (about 1.6%) relative of the exact nearest-rank percentile, and exact below
// 64 ns. Min, Max, Mean and Count are exact. Values above about 68.7 s share
// the top bucket; negative values are recorded as 0.
//
// The zero value is an empty histogram. It is not safe for concurrent use:
// give each goroutine its own and Merge them.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    uint64
	notMin uint64 // ^min, so that the zero value stands for "no minimum yet"
	max    uint64
}

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1))
	if e > maxExp {
		return numBuckets - 1
	}
	return (e-subBits+1)*subBuckets + int(v>>(e-subBits)&(subBuckets-1))
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < 2*subBuckets {
		return uint64(i), 1
	}
	shift := i/subBuckets - 1 // = e - subBits
	return uint64(subBuckets+i%subBuckets) << shift, 1 << shift
}

// Record adds one value in nanoseconds.
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	v := uint64(ns)
	h.counts[bucketOf(v)&(numBuckets-1)]++ // the mask only drops the bounds check
	h.notMin = max(h.notMin, ^v)
	h.max = max(h.max, v)
	h.count++
	h.sum += v
}

// Merge adds every value recorded in other to h.
func (h *Histogram) Merge(other *Histogram) {
	if other.count == 0 {
		return
	}
	for i, c := range other.counts {
		h.counts[i] += c
	}
	h.notMin = max(h.notMin, other.notMin)
	h.max = max(h.max, other.max)
	h.count += other.count
	h.sum += other.sum
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest value recorded, or 0 if none.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min()) }

func (h *Histogram) min() uint64 {
	if h.count == 0 {
		return 0
	}
	return ^h.notMin
}

// Max returns the largest value recorded, or 0 if none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean of the values recorded, or 0 if none.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Percentile returns the p-th percentile, p in 0..100 (99 for p99), by the
// nearest-rank definition: the smallest recorded value with at least p% of
// values at or below it. p outside 0..100 is clamped; an empty histogram
// answers 0. It walks all buckets: for reports, not for the packet path.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if !(p > 0) { // also NaN
		return time.Duration(h.min())
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.count)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, w := bucketRange(i)
		v := lo + (w-1)/2
		return time.Duration(min(max(v, h.min()), h.max))
	}
	return time.Duration(h.max) // not reached: the counts add up to count
}

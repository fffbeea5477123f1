package pktgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted values.
func exactPercentile(sorted []int64, p float64) int64 {
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose range holds it, buckets are
	// contiguous and increasing, and no bucket is wider than 1/32 of its
	// lower bound (above the exact range).
	var prevEnd uint64
	for i := 0; i < numBuckets; i++ {
		lo, w := bucketRange(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		if lo >= 64 && w*32 > lo {
			t.Fatalf("bucket %d: width %d over 1/32 of %d", i, w, lo)
		}
		for _, v := range []uint64{lo, lo + w/2, lo + w - 1} {
			if b := bucketOf(v); b != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, b, i)
			}
		}
		prevEnd = lo + w
	}
	if prevEnd != 1<<36 {
		t.Fatalf("top bucket ends at %d, want 2^36", prevEnd)
	}
	if bucketOf(math.MaxUint64) != numBuckets-1 || bucketOf(1<<36) != numBuckets-1 {
		t.Fatal("huge values not clamped into the top bucket")
	}
}

func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gens := map[string]func() int64{
		"uniform small": func() int64 { return rng.Int64N(100) },
		"uniform 1ms":   func() int64 { return rng.Int64N(1e6) },
		"log-uniform":   func() int64 { return int64(math.Exp(rng.Float64() * math.Log(1e10))) },
		"bimodal": func() int64 {
			if rng.IntN(100) < 95 {
				return 2000 + rng.Int64N(500)
			}
			return 3e6 + rng.Int64N(1e6)
		},
	}
	for name, gen := range gens {
		var h Histogram
		vals := make([]int64, 20000)
		var sum int64
		for i := range vals {
			vals[i] = gen()
			sum += vals[i]
			h.Record(vals[i])
		}
		slices.Sort(vals)
		if h.Count() != uint64(len(vals)) || h.Min() != time.Duration(vals[0]) ||
			h.Max() != time.Duration(vals[len(vals)-1]) || h.Mean() != time.Duration(sum/int64(len(vals))) {
			t.Fatalf("%s: count %d min %v max %v mean %v", name, h.Count(), h.Min(), h.Max(), h.Mean())
		}
		for _, p := range []float64{0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100} {
			want := exactPercentile(vals, p)
			got := int64(h.Percentile(p))
			diff := math.Abs(float64(got - want))
			// Within 1/64 relative, exact for small values (diff < 1).
			if diff > float64(want)/64 {
				t.Errorf("%s p%v: got %d, exact %d (%.2f%% off)", name, p, got, want, 100*diff/float64(want))
			}
		}
	}
}

func TestHistogramMergeReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var a, b, all Histogram
	var empty Histogram
	a.Merge(&empty)
	if a.Count() != 0 || a.Min() != 0 {
		t.Fatal("merging an empty histogram changed an empty one")
	}
	for i := 0; i < 5000; i++ {
		v := rng.Int64N(1e8)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merge differs from recording everything in one histogram")
	}
	var c Histogram
	c.Merge(&all)
	if c != all {
		t.Fatal("merge into empty differs")
	}
	a.Reset()
	if a != (Histogram{}) || a.Percentile(50) != 0 || a.Mean() != 0 {
		t.Fatal("Reset left state behind")
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	h.Record(-5) // clock skew: recorded as 0
	h.Record(100 * int64(time.Second))
	if h.Min() != 0 || h.Max() != 100*time.Second {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
	if h.Percentile(100) != 100*time.Second || h.Percentile(0) != 0 || h.Percentile(-1) != 0 ||
		h.Percentile(math.NaN()) != 0 || h.Percentile(50) != 0 || h.Percentile(101) != 100*time.Second {
		t.Fatal("edge percentiles wrong")
	}
	var one Histogram
	one.Record(12345)
	for _, p := range []float64{0, 1, 50, 99, 100} {
		if one.Percentile(p) != 12345 {
			t.Fatalf("single value p%v = %v", p, one.Percentile(p))
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	// Latencies spread over several powers of two, precomputed so the
	// benchmark measures Record, not the random generator.
	vals := make([]int64, 4096)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range vals {
		vals[i] = int64(math.Exp(rng.Float64() * math.Log(1e7)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Record(vals[i&4095])
		i++
	}
}

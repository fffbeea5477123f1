package runcmp

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// DefaultResamples is the number of bootstrap resamples behind each interval.
const DefaultResamples = 10000

// bootstrapSeed is the fixed first half of every row's random seed; the
// second half is a hash of the row's key, so a row's interval depends on its
// own samples only, not on the other rows or their order.
const bootstrapSeed = 0x706f6c6c6e6574 // "pollnet"

// RatioCI is a bootstrap percentile interval, at confidence level (0.95 for
// 95%), for the ratio of medians median(b)/median(a): each of resamples
// rounds draws len(a) runs from a and len(b) from b with replacement and
// takes the ratio of their medians; the interval runs from the (1-level)/2
// to the (1+level)/2 quantile of those ratios. The draws come from a PCG
// generator seeded with seed, so the same samples always give the same
// interval. ok is false when there is no interval: fewer than two runs on a
// side, or a median of a that is zero in every resample.
func RatioCI(a, b []float64, level float64, resamples int, seed uint64) (lo, hi float64, ok bool) {
	if len(a) < 2 || len(b) < 2 || resamples <= 0 {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(bootstrapSeed, seed))
	ra := make([]float64, len(a))
	rb := make([]float64, len(b))
	ratios := make([]float64, 0, resamples)
	for range resamples {
		ma := resampleMedian(rng, a, ra)
		mb := resampleMedian(rng, b, rb)
		if ma == 0 {
			continue
		}
		ratios = append(ratios, mb/ma)
	}
	if len(ratios) == 0 {
		return 0, 0, false
	}
	slices.Sort(ratios)
	tail := (1 - level) / 2
	return quantile(ratios, tail), quantile(ratios, 1-tail), true
}

// resampleMedian draws len(from) values from from with replacement into
// scratch and returns their median.
func resampleMedian(rng *rand.Rand, from, scratch []float64) float64 {
	for i := range scratch {
		scratch[i] = from[rng.IntN(len(from))]
	}
	return median(scratch)
}

// median sorts v in place and returns its median.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// quantile is the q-quantile of sorted, interpolating linearly between the
// two nearest order statistics (Hyndman and Fan's type 7, R's default).
func quantile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// keySeed turns a row's key into the second half of its generator's seed.
func keySeed(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

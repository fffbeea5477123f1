package pktgen

import (
	"math"
	"math/rand/v2"
	"testing"
)

// pace drives p for span nanoseconds of a simulated clock starting at t0,
// advancing by step, and returns the packets allowed and the largest grant.
func pace(p *Pacer, t0, span int64, step func() int64) (total, most int) {
	for now := t0; now <= t0+span; now += step() {
		n := p.Allow(now)
		total += n
		most = max(most, n)
	}
	return total, most
}

func TestPacerRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		name    string
		span    int64
		maxStep int64
		step    func() int64
	}{
		// Every nanosecond, over 2 ms: a second of these would be 10^9
		// calls, too slow for a unit test under the race detector.
		{"1ns ticks", 2e6, 1, func() int64 { return 1 }},
		{"random 1-2us", 1e9, 2000, func() int64 { return 1 + rng.Int64N(2000) }},
		{"coarse 100us", 1e9, 100_000, func() int64 { return 100_000 }},
		{"jittery 0-50us", 1e9, 50_000, func() int64 { return rng.Int64N(50_000) }},
	} {
		for _, pps := range []float64{1e4, 1e6, 14.88e6, 2.5e7} {
			for _, burst := range []int{1, 32, 4096} {
				if float64(burst) < pps*float64(tc.maxStep)/1e9 {
					continue // polled too seldom for this burst to carry the rate
				}
				// A large clock origin, as a monotonic clock has.
				p := NewPacer(pps, burst)
				total, most := pace(p, 1<<50, tc.span, tc.step)
				if most > burst {
					t.Errorf("%s pps %g burst %d: granted %d at once", tc.name, pps, burst, most)
				}
				// The bucket starts full: the first burst comes on top. A
				// count is whole packets, so allow one for rounding.
				want := pps * float64(tc.span) / 1e9
				if d := math.Abs(float64(total-burst) - want); d > max(want*0.001, 1) {
					t.Errorf("%s pps %g burst %d: %d packets, want %.0f+%d (%.3f%% off)",
						tc.name, pps, burst, total, want, burst, 100*d/want)
				}
			}
		}
	}
}

func TestPacerUnlimitedAndEdges(t *testing.T) {
	for _, pps := range []float64{0, -1, math.Inf(1), math.NaN()} {
		p := NewPacer(pps, 32)
		for i := int64(0); i < 10; i++ {
			if n := p.Allow(i); n != 32 {
				t.Fatalf("pps %v: Allow = %d, want 32", pps, n)
			}
		}
	}
	p := NewPacer(1e6, 0) // burst below 1 is 1
	if n := p.Allow(0); n != 1 {
		t.Fatalf("first Allow = %d, want 1", n)
	}
	if n := p.Allow(0); n != 0 {
		t.Fatalf("second Allow at the same instant = %d, want 0", n)
	}
	// Time going backwards earns nothing, and the pacer recovers.
	if n := p.Allow(-1e9); n != 0 {
		t.Fatalf("Allow after the clock went back = %d", n)
	}
	if n := p.Allow(1000); n != 1 {
		t.Fatalf("Allow 1 us later = %d, want 1", n)
	}
	// A long idle spell fills the bucket no further than the burst.
	q := NewPacer(1e3, 8)
	q.Allow(0)
	if n := q.Allow(1e12); n != 8 {
		t.Fatalf("after idling: %d, want 8", n)
	}
}

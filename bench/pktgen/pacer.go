package pktgen

import "math"

// Pacer holds a generator to a fixed packet rate with a token bucket: tokens
// accrue at pps per second up to burst, and each packet sent takes one. The
// bucket starts full, so the first call may send a whole burst. The clock is
// the caller's, in nanoseconds, so the pacer costs no clock reads of its own
// and can be driven by a simulated clock in tests.
//
// A Pacer is not safe for concurrent use: each generator goroutine owns one.
type Pacer struct {
	perNs  float64 // tokens per nanosecond; 0 means unlimited
	burst  int
	tokens float64
	last   int64
	primed bool
}

// NewPacer returns a pacer for pps packets per second in bursts of at most
// burst packets. A rate of 0 (or a negative or non-finite one) means
// unlimited; a burst below 1 is taken as 1.
func NewPacer(pps float64, burst int) *Pacer {
	burst = max(burst, 1)
	p := &Pacer{burst: burst}
	if pps > 0 && !math.IsInf(pps, 1) {
		p.perNs = pps / 1e9
	}
	return p
}

// Allow returns how many packets may be sent at nowNanos, 0..burst, and
// takes them from the bucket: the caller is expected to send that many.
// Time that goes backwards earns nothing.
func (p *Pacer) Allow(nowNanos int64) int {
	if p.perNs == 0 {
		return p.burst
	}
	b := float64(p.burst)
	switch {
	case !p.primed:
		p.primed = true
		p.tokens = b
		p.last = nowNanos
	case nowNanos > p.last:
		p.tokens += float64(nowNanos-p.last) * p.perNs
		p.last = nowNanos
		if p.tokens >= b+1 {
			p.tokens = b + (p.tokens - math.Floor(p.tokens))
		}
	}
	n := int(p.tokens)
	p.tokens -= float64(n)
	return n
}

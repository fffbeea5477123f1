// Package rtt estimates a TCP connection's round-trip time and derives its
// retransmission timeout, by RFC 6298 (Linux's tcp_rtt_estimator and
// tcp_set_rto). All times are nanoseconds, as on the shard's timer wheel.
//
// Read first: RFC 6298 sections 2 (the estimator), 3 (Karn's algorithm) and
// 5 (managing the timer, backoff); RFC 7323 section 4.1 (RTT samples from
// timestamps).
//
// Karn's algorithm is the caller's contract: give Sample no measurement
// taken from a segment that was retransmitted, since its ACK may answer
// either transmission (RFC 6298 section 3), unless the segment's timestamp
// echo says which transmission the ACK answers (RFC 7323 section 4.1). Until
// a valid sample comes, the backed-off RTO stays in force.
package rtt

import "fmt"

// Defaults, in nanoseconds.
const (
	// InitialRTO is the RTO before any sample (RFC 6298 2.1; TCP_TIMEOUT_INIT).
	InitialRTO int64 = 1e9
	// FallbackRTO is the RTO data starts with after a SYN timed out and the
	// handshake gave no sample (RFC 6298 5.7; TCP_TIMEOUT_FALLBACK).
	FallbackRTO int64 = 3e9
	// DefaultMinRTO is Linux's TCP_RTO_MIN. RFC 6298 2.4 asks for 1 s;
	// like Linux (and most stacks) we take 200 ms, which loses less time to
	// a lost tail on fast paths.
	DefaultMinRTO int64 = 200e6
	// DefaultMaxRTO is Linux's TCP_RTO_MAX; RFC 6298 2.5 allows any
	// maximum of at least 60 s.
	DefaultMaxRTO int64 = 120e9
	// DefaultGranularity is the clock granularity G: the tick of the
	// shard's timer wheel.
	DefaultGranularity int64 = 1e6
)

// Config bounds an estimator. A zero field takes its default.
type Config struct {
	MinRTO      int64 // ns; DefaultMinRTO if 0
	MaxRTO      int64 // ns; DefaultMaxRTO if 0
	Granularity int64 // ns, the clock granularity G; DefaultGranularity if 0
}

// Estimator is one connection's RTT state, embedded in the connection and
// owned by its shard. Call Init before use.
type Estimator struct {
	srtt     int64 // smoothed RTT; 0 with no sample yet
	rttvar   int64 // RTT variation
	base     int64 // the RTO the last sample gave, within [min, max]
	min, max int64
	g        int64
	backoffs uint8 // timeouts since the last sample, while RTO < max
	sampled  bool
}

// Init resets e to the state before any sample, bounded by c.
func (e *Estimator) Init(c Config) error {
	if c.MinRTO == 0 {
		c.MinRTO = DefaultMinRTO
	}
	if c.MaxRTO == 0 {
		c.MaxRTO = DefaultMaxRTO
	}
	if c.Granularity == 0 {
		c.Granularity = DefaultGranularity
	}
	if c.MinRTO < 0 || c.Granularity < 0 || c.MaxRTO < c.MinRTO {
		return fmt.Errorf("rtt: config min RTO %d ns, max RTO %d ns, granularity %d ns: want 0 < min <= max and granularity > 0",
			c.MinRTO, c.MaxRTO, c.Granularity)
	}
	*e = Estimator{min: c.MinRTO, max: c.MaxRTO, g: c.Granularity}
	e.base = e.clamp(InitialRTO)
	return nil
}

// Sample takes one RTT measurement r (ns) and recomputes the RTO, ending any
// backoff. A negative r (no measurement, or a clock that went backwards) is
// ignored. The first sample sets SRTT = R, RTTVAR = R/2 (RFC 6298 2.2);
// later ones smooth with alpha = 1/8 and beta = 1/4, RTTVAR from the old
// SRTT (2.3); then RTO = SRTT + max(G, 4*RTTVAR), kept within [min, max]
// (2.4, 2.5). Linux instead floors the variance term at TCP_RTO_MIN, which
// gives srtt + 200 ms where we give max(srtt + 4*rttvar, 200 ms).
func (e *Estimator) Sample(r int64) {
	if r < 0 {
		return
	}
	if !e.sampled {
		e.srtt, e.rttvar, e.sampled = r, r/2, true
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.base = e.clamp(e.srtt + max(e.g, 4*e.rttvar))
	e.backoffs = 0
}

// Backoff doubles the RTO after the retransmission timer expired (RFC 6298
// 5.5), up to the maximum, where it stays.
func (e *Estimator) Backoff() {
	if e.RTO() < e.max {
		e.backoffs++
	}
}

// AfterSYNTimeout is called as data transmission begins on a connection
// whose SYN (or SYN-ACK) timed out: with no sample from the handshake, the
// RTO restarts at 3 s (RFC 6298 5.7), as Linux's tcp_init_transfer does.
// A sample from the handshake (timestamps) is kept, where the RFC would
// still raise the RTO.
func (e *Estimator) AfterSYNTimeout() {
	if !e.sampled {
		e.base = e.clamp(max(e.base, FallbackRTO))
		e.backoffs = 0
	}
}

// RTO is the retransmission timeout to arm now (ns): the last computed RTO
// doubled once per backoff, at most the maximum.
func (e *Estimator) RTO() int64 {
	rto := e.base
	for i := uint8(0); i < e.backoffs; i++ {
		rto *= 2
		if rto >= e.max {
			return e.max
		}
	}
	return rto
}

// Backoffs is the number of timeouts since the last sample that doubled the
// RTO (Linux's icsk_backoff).
func (e *Estimator) Backoffs() int { return int(e.backoffs) }

// SRTT is the smoothed RTT (ns), 0 before the first sample.
func (e *Estimator) SRTT() int64 { return e.srtt }

// RTTVar is the RTT variation (ns), 0 before the first sample.
func (e *Estimator) RTTVar() int64 { return e.rttvar }

// HasSample reports whether any sample has been taken.
func (e *Estimator) HasSample() bool { return e.sampled }

func (e *Estimator) clamp(rto int64) int64 { return min(max(rto, e.min), e.max) }

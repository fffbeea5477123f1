// Package challenge rate-limits TCP challenge ACKs (RFC 5961 section 7), as
// Linux's tcp_send_challenge_ack does: a connection answers a suspicious
// RST, SYN or ACK with a challenge ACK at most once per InvalidRateLimit,
// and, optionally, the whole stack sends at most a per-second budget of
// them.
//
// Read first: RFC 5961 sections 3 to 5 (when to challenge) and 7 (the
// limit: "An implementation SHOULD include an ACK throttling mechanism");
// CVE-2016-5696 (Cao et al., "Off-Path TCP Exploits: Global Rate Limit
// Considered Dangerous", USENIX Security 2016).
//
// The global budget is a side channel: with a fixed limit of N per second an
// off-path attacker spends it on its own connection, provokes one possible
// challenge for the victim's connection, and counts how many of its own
// challenges come back to learn whether the victim's guess hit. Linux 4.7
// answered by drawing each second's budget at random; since Linux 6.0 the
// budget lives per network namespace and is disabled by default
// (tcp_challenge_ack_limit = INT_MAX), the per-socket limit alone bounding
// the traffic, and when enabled each second's budget is drawn uniformly
// from [ceil(limit/2), limit + ceil(limit/2) - 1]. This package does the
// same: a nil *Global in Allow is Linux's default, and a Global draws its
// budget in that range from SipHash of the second under the stack's secret
// key, so the counts an attacker sees in one second say nothing about the
// next.
package challenge

import (
	"fmt"
	"sync/atomic"

	"github.com/pollnet/pollnet/stack/siphash"
)

// InvalidRateLimit is the least time between two challenge ACKs of one
// connection, in nanoseconds (Linux's tcp_invalid_ratelimit, 500 ms). Linux
// spends the same allowance on duplicate ACKs to out-of-window segments
// (tcp_oow_rate_limited); the connection code may share a PerSocket so.
const InvalidRateLimit int64 = 500e6

// DefaultLimit is the per-second limit Linux had by default before it
// disabled the global budget (tcp_challenge_ack_limit, 1000 since 4.7).
const DefaultLimit = 1000

// MaxLimit bounds Init's limit so a budget (at most 3/2 of it) fits the
// packed state.
const MaxLimit = 1 << 20

const (
	remBits = 22 // the remaining budget, < 2^22 since limit <= MaxLimit
	remMask = 1<<remBits - 1
	second  = int64(1e9)
)

// Counters are one shard's challenge-ACK statistics, named after Linux's
// TcpExt counters. The shard owns them; they are plain fields.
type Counters struct {
	ChallengeACK        uint64 // the number of challenge ACKs allowed (TCPChallengeACK)
	ACKSkippedChallenge uint64 // the number refused by the per-socket limit (TCPACKSkippedChallenge); Linux counts no refusal by the global budget, nor does this
}

// PerSocket is one connection's challenge-ACK limit, embedded in the
// connection and owned by its shard. The zero value allows the first.
type PerSocket struct {
	last int64 // when the last one was allowed; meaningful if sent
	sent bool
}

// Allow reports whether the connection may send a challenge ACK at now (ns)
// and, if so, records it: one per InvalidRateLimit. A clock that went
// backwards allows it, as in Linux's __tcp_oow_rate_limited.
func (p *PerSocket) Allow(now int64) bool {
	if p.sent {
		if d := now - p.last; d >= 0 && d < InvalidRateLimit {
			return false
		}
	}
	p.last, p.sent = now, true
	return true
}

// Global is the stack's per-second challenge-ACK budget, shared by every
// shard: Allow takes no lock, only compare-and-swaps on one word.
//
// The word packs the second the budget belongs to, plus one (so that the
// zero word belongs to no second), above the budget left in it. A
// compare-and-swap that moves to a later second installs that second's
// fresh budget less the one being spent; one that stays in the second
// takes one from what is left, and none is taken from zero. Every spend is
// thus one successful swap from a word holding at least one, so no second
// spends more than its budget however many shards race. A caller whose
// clock reads an earlier second than the word's spends from the word's
// second: shards whose clocks straddle a second boundary cannot flip the
// word back and forth to refill it.
type Global struct {
	state atomic.Uint64
	limit uint64
	half  uint64
	key   siphash.Key
}

// Init sets g's limit per second (1..MaxLimit) and the key its budgets are
// drawn under; call it before g is shared.
func (g *Global) Init(limitPerSecond int, key siphash.Key) error {
	if limitPerSecond < 1 || limitPerSecond > MaxLimit {
		return fmt.Errorf("challenge: limit %d per second out of range 1..%d", limitPerSecond, MaxLimit)
	}
	g.limit = uint64(limitPerSecond)
	g.half = (g.limit + 1) / 2
	g.key = key
	g.state.Store(0)
	return nil
}

// Budget returns the number of challenge ACKs second s (now / 1e9) may
// send: uniform in [ceil(limit/2), limit + ceil(limit/2) - 1] and
// unpredictable without the key.
func (g *Global) Budget(s int64) int {
	return int(g.half + g.key.Hash2(siphash.TagChallenge, uint64(s))%g.limit)
}

// Allow reports whether the stack may send one more challenge ACK in the
// second holding now (ns since the stack's clock origin; a negative time
// counts as second 0), and if so spends it. Safe for concurrent use.
func (g *Global) Allow(now int64) bool {
	s := max(now, 0) / second
	tag := uint64(s) + 1 // < 2^34 for centuries, far below 2^(64-remBits)
	for {
		old := g.state.Load()
		if tag > old>>remBits {
			next := tag<<remBits | uint64(g.Budget(s)-1)
			if g.state.CompareAndSwap(old, next) {
				return true
			}
			continue
		}
		if old&remMask == 0 {
			return false
		}
		if g.state.CompareAndSwap(old, old-1) {
			return true
		}
	}
}

// Allow is the decision of Linux's tcp_send_challenge_ack: the connection's
// own limit first (its refusals counted), then the stack's budget, if g is
// not nil. True means send the challenge ACK now; it is counted.
func Allow(p *PerSocket, g *Global, c *Counters, now int64) bool {
	if !p.Allow(now) {
		c.ACKSkippedChallenge++
		return false
	}
	if g != nil && !g.Allow(now) {
		return false
	}
	c.ChallengeACK++
	return true
}

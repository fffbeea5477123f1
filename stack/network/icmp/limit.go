// Package icmp holds the ICMP layer's shared state: the output rate
// limiter and the mapping of received errors to socket errors.
package icmp

import (
	"encoding/binary"
	"sync"

	header "github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/siphash"
)

// ICMP output rate limits, Linux's defaults.
const (
	MsgsPerSec   = 1000       // icmp_msgs_per_sec: the whole stack's refill
	MsgsBurst    = 50         // icmp_msgs_burst: the whole stack's bucket
	HostInterval = int64(1e9) // icmp_ratelimit (1000 ms): one error per destination per interval
	HostBurst    = 6          // XRLIM_BURST_FACTOR: intervals a destination may save up
	// icmpGlobalStep is the least time between two refills of the global
	// bucket (HZ/50), so a stream of errors cannot earn credit by the
	// nanosecond.
	icmpGlobalStep = int64(20e6)
	// icmpHostSlots is the size of the per-destination table, a power of
	// two: it never grows, whatever the number of sources a peer spoofs.
	icmpHostSlots = 1024
)

// icmpRateMask is icmp_ratemask's default: the types whose errors are
// limited (destination unreachable, source quench, time exceeded,
// parameter problem). Echo replies are not.
const icmpRateMask = 1<<header.TypeDestUnreachable | 1<<header.TypeSourceQuench |
	1<<header.TypeTimeExceeded | 1<<header.TypeParameterProblem

// Limiter decides whether an ICMP message may be sent now: a token
// bucket for the whole stack (icmp_global_allow) and one per destination
// (inet_peer_xrlim_allow, the inet_peer entry's rate_tokens). Linux orders
// them so: the global bucket must have credit, then the destination must;
// only then is global credit spent, a random 0, 1 or 2 tokens (one on
// average), so a peer cannot learn from the global budget how many errors
// others provoked (the SADDNS side channel, CVE-2020-25705).
//
// Destinations live in a fixed table of icmpHostSlots entries, two-way set
// associative by a keyed hash: a new destination takes an empty way or
// evicts the one idle longest and starts with a full bucket, as a new
// inet_peer does. A flood of spoofed sources thus costs no memory; it can
// only evict other destinations, each then getting a fresh burst (Linux's
// inet_peer garbage collection loses them under pressure too), and the
// global bucket still caps what is sent. Every shard of a stack shares one
// limiter, as Linux's budget is global: a mutex guards it, taken only on
// the way to sending an ICMP error.
type Limiter struct {
	mu  sync.Mutex
	key siphash.Key
	rnd uint64 // draws from the key so far
	// now is the clock, engine.Nanotime; a test may stop it.
	now func() int64

	credit int   // global tokens; may go below zero by the random spend
	stamp  int64 // when credit was last refilled
	hosts  [icmpHostSlots]hostBucket
}

// hostBucket is one destination's bucket: tokens are nanoseconds of credit,
// one interval per message, at most HostBurst intervals.
type hostBucket struct {
	addr   [4]byte
	used   bool
	tokens int64
	last   int64
}

// Verdict is allow's verdict.
type Verdict uint8

const (
	Send          Verdict = iota
	LimitedGlobal         // no global credit (OutRateLimitGlobal)
	LimitedHost           // the destination's bucket is empty (OutRateLimitHost)
)

func (l *Limiter) Init(key siphash.Key, now func() int64) {
	l.key, l.now = key, now
	l.credit, l.stamp = MsgsBurst, now()
}

// rateLimited reports whether icmp_ratemask covers a message: fragmentation
// needed never is, so path MTU discovery is not starved.
func rateLimited(typ, code uint8) bool {
	if typ == header.TypeDestUnreachable && code == header.CodeFragNeeded {
		return false
	}
	return typ < 32 && icmpRateMask&(1<<typ) != 0
}

// allow decides for a message of typ and code to dst. local says dst is one
// of our own addresses: like loopback in Linux, it has no per-destination
// limit, only the global one.
func (l *Limiter) Allow(typ, code uint8, dst [4]byte, local bool) Verdict {
	if !rateLimited(typ, code) {
		return Send
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.globalAllow(now) {
		return LimitedGlobal
	}
	if !local && !l.hostAllow(dst, now) {
		return LimitedHost
	}
	l.credit -= int(l.randBelow(3))
	return Send
}

// globalAllow reports whether the global bucket has credit, refilling it
// at MsgsPerSec when it is empty and a refill step has passed.
func (l *Limiter) globalAllow(now int64) bool {
	if l.credit > 0 {
		return true
	}
	delta := min(now-l.stamp, int64(1e9))
	if delta < icmpGlobalStep {
		return false
	}
	incr := int(MsgsPerSec * delta / 1e9)
	l.stamp = now
	l.credit = min(l.credit+incr, MsgsBurst)
	return l.credit > 0
}

// hostAllow takes one interval of credit from dst's bucket, if it has it.
func (l *Limiter) hostAllow(dst [4]byte, now int64) bool {
	e := l.host(dst, now)
	e.tokens = min(e.tokens+now-e.last, HostBurst*HostInterval)
	e.last = now
	if e.tokens < HostInterval {
		return false
	}
	e.tokens -= HostInterval
	return true
}

// host finds dst's entry, or makes one in place of the entry idle longest
// among the two its hash allows.
func (l *Limiter) host(dst [4]byte, now int64) *hostBucket {
	h := l.key.Hash2(uint64(binary.BigEndian.Uint32(dst[:])), siphash.TagICMPHost)
	i := h & (icmpHostSlots - 1) &^ 1
	a, b := &l.hosts[i], &l.hosts[i+1]
	switch {
	case a.used && a.addr == dst:
		return a
	case b.used && b.addr == dst:
		return b
	}
	e := a
	if a.used && (!b.used || b.last < a.last) {
		e = b
	}
	*e = hostBucket{addr: dst, used: true, tokens: HostBurst * HostInterval, last: now}
	return e
}

// randBelow returns a number in [0, n), drawn from the key and a counter.
func (l *Limiter) randBelow(n uint32) uint32 {
	l.rnd++
	return uint32((l.key.Hash2(siphash.TagICMPRandom, l.rnd) >> 32) * uint64(n) >> 32)
}

// SetClock makes the limiter read now, starting a refill period there: for
// tests that stop time.
func (l *Limiter) SetClock(now func() int64) {
	l.mu.Lock()
	l.now, l.stamp = now, now()
	l.mu.Unlock()
}

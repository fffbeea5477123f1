package icmp

import (
	"testing"

	header "github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/siphash"
)

func newTestLimiter(now *int64) *Limiter {
	l := new(Limiter)
	l.Init(siphash.Key{K0: 1, K1: 2}, func() int64 { return *now })
	return l
}

// TestAHostGetsABurstOfSixThenOneErrorASecond is inet_peer_xrlim_allow with
// icmp_ratelimit=1000 ms.
func TestAHostGetsABurstOfSixThenOneErrorASecond(t *testing.T) {
	now := int64(1e12)
	l := newTestLimiter(&now)
	l.credit = 1 << 30 // keep the global bucket out of the way
	host := [4]byte{198, 18, 0, 1}
	for i := 0; i < HostBurst; i++ {
		if v := l.Allow(header.TypeDestUnreachable, header.CodePortUnreachable, host, false); v != Send {
			t.Fatalf("error %d of the burst: %v", i, v)
		}
	}
	if v := l.Allow(header.TypeTimeExceeded, 0, host, false); v != LimitedHost {
		t.Fatalf("after the burst: %v", v)
	}
	now += HostInterval - 1
	if v := l.Allow(header.TypeDestUnreachable, 3, host, false); v != LimitedHost {
		t.Fatalf("just under a second later: %v", v)
	}
	now++
	if v := l.Allow(header.TypeDestUnreachable, 3, host, false); v != Send {
		t.Fatalf("a second later: %v", v)
	}
	// Our own addresses, fragmentation needed and echo replies are exempt.
	for _, c := range []struct {
		typ, code uint8
		local     bool
	}{
		{header.TypeDestUnreachable, header.CodePortUnreachable, true},
		{header.TypeDestUnreachable, header.CodeFragNeeded, false},
		{header.TypeEchoReply, 0, false},
	} {
		if v := l.Allow(c.typ, c.code, host, c.local); v != Send {
			t.Fatalf("type %d code %d local %v: %v", c.typ, c.code, c.local, v)
		}
	}
	// Another host has a bucket of its own.
	if v := l.Allow(header.TypeDestUnreachable, 3, [4]byte{198, 18, 0, 9}, false); v != Send {
		t.Fatalf("another host: %v", v)
	}
}

// TestTheGlobalBucketHoldsFiftyAndRefillsAtAThousandASecond is
// icmp_global_allow with icmp_msgs_burst=50 and icmp_msgs_per_sec=1000,
// whose spend is random but one token on average.
func TestTheGlobalBucketHoldsFiftyAndRefillsAtAThousandASecond(t *testing.T) {
	now := int64(1e12)
	l := newTestLimiter(&now)
	sent := 0
	for i := 0; i < 1000; i++ {
		if l.Allow(header.TypeDestUnreachable, 3, [4]byte{10, 0, byte(i >> 8), byte(i)}, false) == Send {
			sent++
		}
	}
	if sent < MsgsBurst/2 || sent > 2*MsgsBurst {
		t.Fatalf("%d sent from a full bucket of %d", sent, MsgsBurst)
	}
	now += icmpGlobalStep - 1
	if v := l.Allow(header.TypeDestUnreachable, 3, [4]byte{10, 1, 0, 0}, false); v != LimitedGlobal {
		t.Fatalf("before a refill step: %v", v)
	}
	now += 1e9 // a second: at most a full bucket again
	sent = 0
	for i := 0; i < 1000; i++ {
		if l.Allow(header.TypeDestUnreachable, 3, [4]byte{10, 2, byte(i >> 8), byte(i)}, false) == Send {
			sent++
		}
	}
	if sent < MsgsBurst/2-1 || sent > 2*MsgsBurst+1 {
		t.Fatalf("%d sent after a second's refill", sent)
	}
}

// TestSpoofedSourcesCannotGrowTheHostTable: a hundred thousand sources take
// no allocation; the table keeps its fixed slots, each holding one of the
// two destinations its hash allows.
func TestSpoofedSourcesCannotGrowTheHostTable(t *testing.T) {
	now := int64(1e12)
	l := newTestLimiter(&now)
	l.credit = 1 << 30
	i := 0
	allocs := testing.AllocsPerRun(100000, func() {
		i++
		now += 1000
		l.Allow(header.TypeDestUnreachable, 3, [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per error", allocs)
	}
	used := 0
	for i, h := range l.hosts {
		if !h.used {
			continue
		}
		used++
		if e := l.host(h.addr, now); e != &l.hosts[i] {
			t.Fatalf("%v sits in slot %d, outside its set", h.addr, i)
		}
	}
	if used != icmpHostSlots {
		t.Fatalf("%d of %d slots used after a flood", used, icmpHostSlots)
	}
}

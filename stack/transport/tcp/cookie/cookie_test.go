package cookie

import (
	"math/rand/v2"
	"testing"

	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

var (
	key   = siphash.Key{K0: 0x243f6a8885a308d3, K1: 0x13198a2e03707344}
	src   = [4]byte{192, 0, 2, 1}
	dst   = [4]byte{198, 51, 100, 7}
	sport = uint16(80)
	dport = uint16(49152)
	isn   = seq.Value(0x9abcdef0)
	t0    = int64(1_000_000) * Tick // a tick boundary far from 0
)

func TestEveryTableMSSRoundTrips(t *testing.T) {
	for _, mss := range mssTable {
		for _, now := range []int64{t0, t0 + Tick/2, t0 + Tick - 1} {
			c := Make(key, src, dst, sport, dport, isn, mss, now)
			got, ok := Check(key, src, dst, sport, dport, isn, c, now)
			if !ok || got != mss {
				t.Errorf("MSS %d at %d: Check gave %d, %v", mss, now, got, ok)
			}
		}
	}
}

func TestAnMSSIsRoundedDownToTheTable(t *testing.T) {
	cases := []struct{ in, want int }{
		{0, 536}, {100, 536}, {536, 536}, {1299, 536}, {1300, 1300},
		{1439, 1300}, {1440, 1440}, {1459, 1440}, {1460, 1460}, {9000, 1460},
	}
	for _, c := range cases {
		ck := Make(key, src, dst, sport, dport, isn, c.in, t0)
		if got, ok := Check(key, src, dst, sport, dport, isn, ck, t0); !ok || got != c.want {
			t.Errorf("MSS %d: got %d, %v; want %d", c.in, got, ok, c.want)
		}
	}
}

func TestACookieLivesForTheCurrentAndTheNextTickOnly(t *testing.T) {
	made := t0 + Tick/3
	c := Make(key, src, dst, sport, dport, isn, 1460, made)
	for _, tc := range []struct {
		now  int64
		want bool
	}{
		{t0, true},
		{t0 + Tick - 1, true},
		{t0 + Tick, true},          // the previous counter value is still accepted
		{t0 + 2*Tick - 1, true},    // the last nanosecond of its life
		{t0 + 2*Tick, false},       // MaxAge ticks on: expired
		{t0 + 100*Tick, false},     // long expired
		{t0 + 256*Tick, false},     // the 8 counter bits wrap, the MAC does not
		{t0 + 257*Tick, false},     // likewise one tick later
		{t0 - 1, false},            // made in the future
		{t0 - 255*Tick, false},     // far in the past seen from the cookie
		{t0 + 256*Tick + 1, false}, // wraps to age 0 with another counter
		{t0 + 2*Tick + Tick/2, false},
	} {
		if _, ok := Check(key, src, dst, sport, dport, isn, c, tc.now); ok != tc.want {
			t.Errorf("checked %d ns after it was made: ok %v, want %v", tc.now-made, ok, tc.want)
		}
	}
}

func TestACookieWorksAcrossNegativeAndZeroTimes(t *testing.T) {
	for _, now := range []int64{-Tick - 1, -1, 0, 1} {
		c := Make(key, src, dst, sport, dport, isn, 1440, now)
		if mss, ok := Check(key, src, dst, sport, dport, isn, c, now+Tick); !ok || mss != 1440 {
			t.Errorf("made at %d, checked a tick later: %d, %v", now, mss, ok)
		}
		if _, ok := Check(key, src, dst, sport, dport, isn, c, now+2*Tick+1); ok {
			t.Errorf("made at %d: valid after two ticks and a nanosecond", now)
		}
	}
}

func TestAnySingleBitChangeOfTupleISNOrCookieFails(t *testing.T) {
	for _, mss := range mssTable {
		c := Make(key, src, dst, sport, dport, isn, mss, t0)
		fail := func(what string, bit int, s, d [4]byte, sp, dp uint16, i, ck seq.Value) {
			if _, ok := Check(key, s, d, sp, dp, i, ck, t0); ok {
				t.Errorf("MSS %d: flipping bit %d of the %s still passes", mss, bit, what)
			}
		}
		for bit := 0; bit < 32; bit++ {
			s, d := src, dst
			s[bit/8] ^= 1 << (bit % 8)
			d[bit/8] ^= 1 << (bit % 8)
			fail("source address", bit, s, dst, sport, dport, isn, c)
			fail("destination address", bit, src, d, sport, dport, isn, c)
			fail("client ISN", bit, src, dst, sport, dport, isn^1<<bit, c)
			fail("cookie", bit, src, dst, sport, dport, isn, c^1<<bit)
		}
		for bit := 0; bit < 16; bit++ {
			fail("source port", bit, src, dst, sport^1<<bit, dport, isn, c)
			fail("destination port", bit, src, dst, sport, dport^1<<bit, isn, c)
		}
	}
}

func TestAnotherKeyRejectsTheCookie(t *testing.T) {
	c := Make(key, src, dst, sport, dport, isn, 1460, t0)
	other := siphash.Key{K0: key.K0 ^ 1, K1: key.K1}
	if _, ok := Check(other, src, dst, sport, dport, isn, c, t0); ok {
		t.Fatal("a cookie made under one key passes under another")
	}
}

// A forger who knows the tuple and the client's ISN but not the key guesses
// cookies. By construction a random cookie passes with probability
// MaxAge/2^8 (its hidden counter byte is current or previous) times 2^-22
// (its MAC matches): 2^-29, so 1e6 guesses succeed 0.0019
// times on average. Three or more successes would happen with probability
// about 1e-9 if the construction holds.
func TestABruteForceForgerAlmostNeverSucceeds(t *testing.T) {
	const tries = 1_000_000
	r := rand.New(rand.NewPCG(1, 2))
	wins := 0
	for range tries {
		if _, ok := Check(key, src, dst, sport, dport, isn, seq.Value(r.Uint32()), t0); ok {
			wins++
		}
	}
	if wins > 2 {
		t.Fatalf("%d of %d random cookies passed; expected about %.4f", wins, tries, tries*MaxAge/float64(1<<30))
	}
}

// Cookies made for many ISNs within one tick must not share their top byte,
// or the counter would show through the mask.
func TestTheCounterDoesNotShowInTheCookie(t *testing.T) {
	var seen [256]bool
	n := 0
	for i := range 4096 {
		c := Make(key, src, dst, sport, dport, seq.Value(i), 1460, t0)
		if !seen[c>>24] {
			seen[c>>24] = true
			n++
		}
	}
	if n < 200 {
		t.Fatalf("4096 cookies in one tick took only %d distinct top bytes", n)
	}
}

func TestMakeAndCheckAllocateNothing(t *testing.T) {
	var sink int
	n := testing.AllocsPerRun(1000, func() {
		c := Make(key, src, dst, sport, dport, isn, 1440, t0)
		mss, _ := Check(key, src, dst, sport, dport, isn, c, t0+Tick)
		sink += mss
	})
	if n != 0 {
		t.Fatalf("%v allocations per Make and Check", n)
	}
	_ = sink
}

func BenchmarkMakeAndCheck(b *testing.B) {
	for i := range b.N {
		c := Make(key, src, dst, sport, dport, isn+seq.Value(i), 1440, t0)
		Check(key, src, dst, sport, dport, isn+seq.Value(i), c, t0)
	}
}

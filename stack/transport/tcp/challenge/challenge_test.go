package challenge

import (
	"sync"
	"testing"

	"github.com/pollnet/pollnet/stack/siphash"
)

const (
	ms = int64(1e6)
	s  = int64(1e9)
)

var key = siphash.Key{K0: 0xa4093822299f31d0, K1: 0x082efa98ec4e6c89}

func newGlobal(t testing.TB, limit int) *Global {
	t.Helper()
	var g Global
	if err := g.Init(limit, key); err != nil {
		t.Fatal(err)
	}
	return &g
}

func TestASocketSendsOneChallengePerHalfSecond(t *testing.T) {
	var p PerSocket
	steps := []struct {
		now  int64
		want bool
	}{
		{0, true}, // the zero value allows the first, even at time 0
		{1, false},
		{499 * ms, false},
		{500 * ms, true},
		{700 * ms, false},
		{999*ms + 999999, false},
		{1000 * ms, true},
		{900 * ms, true}, // the clock went back: allowed, as in Linux
		{1399 * ms, false},
		{10 * s, true},
	}
	for _, st := range steps {
		if got := p.Allow(st.now); got != st.want {
			t.Fatalf("at %d ns: %v, want %v", st.now, got, st.want)
		}
	}
}

func TestInitRefusesALimitOutOfRange(t *testing.T) {
	var g Global
	for _, l := range []int{0, -1, MaxLimit + 1} {
		if err := g.Init(l, key); err == nil {
			t.Errorf("limit %d accepted", l)
		}
	}
}

func TestTheBudgetIsSpentWithinASecondAndRefilledTheNext(t *testing.T) {
	g := newGlobal(t, 100)
	for sec := int64(3); sec < 8; sec++ {
		b := g.Budget(sec)
		n := 0
		for i := range 1000 {
			if g.Allow(sec*s + int64(i)*ms) {
				n++
			}
		}
		if n != b {
			t.Fatalf("second %d: %d allowed, budget %d", sec, n, b)
		}
		if b < 50 || b > 149 {
			t.Fatalf("second %d: budget %d outside [50, 149]", sec, b)
		}
	}
}

func TestAnEarlierSecondSpendsFromTheLaterOnesBudget(t *testing.T) {
	g := newGlobal(t, 10)
	b := g.Budget(5)
	n := 0
	for i := range 100 {
		now := 5*s + int64(i)
		if i%2 == 1 {
			now = 5*s - 1 // a shard whose clock still reads second 4
		}
		if g.Allow(now) {
			n++
		}
	}
	if n != b {
		t.Fatalf("alternating seconds 4 and 5 allowed %d, budget %d", n, b)
	}
}

// Budgets are drawn uniformly from [limit/2, 3*limit/2): over many seconds
// they cover the range, average near the limit, and consecutive ones are
// uncorrelated, so counting one second's challenges predicts nothing.
func TestTheBudgetVariesUnpredictablyBetweenSeconds(t *testing.T) {
	const limit, seconds = 1000, 4000
	g := newGlobal(t, limit)
	lo, hi, sum := limit*2, 0, 0.0
	var xs [seconds]float64
	for i := range xs {
		b := g.Budget(int64(i))
		lo, hi, sum = min(lo, b), max(hi, b), sum+float64(b)
		xs[i] = float64(b)
	}
	if lo < 500 || hi > 1499 || lo > 520 || hi < 1480 {
		t.Fatalf("budgets span [%d, %d], want about [500, 1499]", lo, hi)
	}
	mean := sum / seconds
	if mean < 980 || mean > 1020 {
		t.Fatalf("mean budget %.1f, want about 1000", mean)
	}
	// Lag-1 correlation: about 0 ± 1/sqrt(4000) = 0.016 for independent draws.
	var num, den float64
	for i := range xs {
		d := xs[i] - mean
		den += d * d
		if i > 0 {
			num += d * (xs[i-1] - mean)
		}
	}
	if r := num / den; r > 0.08 || r < -0.08 {
		t.Fatalf("consecutive budgets correlate: r = %.3f", r)
	}
	// Another key draws other budgets.
	var h Global
	h.Init(limit, siphash.Key{K0: key.K0 + 1, K1: key.K1})
	same := 0
	for i := range 100 {
		if h.Budget(int64(i)) == g.Budget(int64(i)) {
			same++
		}
	}
	if same > 3 {
		t.Fatalf("%d of 100 budgets equal under another key", same)
	}
}

func TestFourGoroutinesNeverExceedTheBudget(t *testing.T) {
	g := newGlobal(t, 200)
	for g.Allow(1 * s) { // spend second 1, which the first round straddles into
	}
	for sec := int64(2); sec <= 4; sec++ {
		var wg sync.WaitGroup
		var got [4]int
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 500 {
					// A third of each goroutine's calls straddle the boundary
					// into the previous second.
					now := sec*s + int64(i)
					if i%3 == 0 {
						now = sec*s - 1
					}
					if g.Allow(now) {
						got[w]++
					}
				}
			}()
		}
		wg.Wait()
		if n := got[0] + got[1] + got[2] + got[3]; n != g.Budget(sec) {
			t.Fatalf("second %d: %d allowed by 4 goroutines, budget %d", sec, n, g.Budget(sec))
		}
	}
}

func TestAllowChecksTheSocketThenTheStackAndCounts(t *testing.T) {
	g := newGlobal(t, 1) // a budget of exactly 1 per second
	var a, b PerSocket
	var c Counters
	if !Allow(&a, g, &c, 10*s) {
		t.Fatal("the first challenge refused")
	}
	if Allow(&a, g, &c, 10*s+1) { // per-socket refusal, counted
		t.Fatal("a second challenge within 500 ms allowed")
	}
	if Allow(&b, g, &c, 10*s+2) { // the stack's budget is spent: not counted
		t.Fatal("another socket's challenge allowed beyond the budget")
	}
	if !Allow(&b, g, &c, 11*s) {
		t.Fatal("refused after the refill")
	}
	if !Allow(&a, nil, &c, 11*s+600*ms) {
		t.Fatal("refused with no global budget")
	}
	if c.ChallengeACK != 3 || c.ACKSkippedChallenge != 1 {
		t.Fatalf("counters %+v, want 3 sent, 1 skipped", c)
	}
}

func TestAllowAllocatesNothing(t *testing.T) {
	g := newGlobal(t, DefaultLimit)
	var p PerSocket
	var c Counters
	now := int64(0)
	n := testing.AllocsPerRun(1000, func() {
		now += 300 * ms
		Allow(&p, g, &c, now)
	})
	if n != 0 {
		t.Fatalf("%v allocations per Allow", n)
	}
}

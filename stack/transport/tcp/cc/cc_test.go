package cc

import (
	"math"
	"strings"
	"testing"
)

const mss = 1000

// sender drives a controller as a cwnd-limited connection does: each round
// trip, a full window of MSS-sized segments, each acknowledged alone, the
// ACKs spread evenly over the RTT.
type sender struct {
	c   Controller
	now int64 // ns
	rtt int64 // ns
}

func (s *sender) round() {
	n := s.c.Cwnd() / mss
	step := s.rtt / int64(max(n, 1))
	for i := 0; i < n; i++ {
		s.now += step
		s.c.OnAck(mss, s.rtt, s.now)
	}
}

func newController(t *testing.T, name string) Controller {
	t.Helper()
	c, err := New(name, mss)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewKnowsRenoAndCubicAndRefusesOthersByName(t *testing.T) {
	for _, name := range []string{"reno", "cubic"} {
		c := newController(t, name)
		if c.Name() != name || c.Cwnd() != 10*mss || !c.InSlowStart() || c.Ssthresh() != InfiniteSsthresh {
			t.Errorf("%s: name %q cwnd %d ssthresh %d", name, c.Name(), c.Cwnd(), c.Ssthresh())
		}
	}
	_, err := New("bbr", mss)
	if err == nil || !strings.Contains(err.Error(), "cubic, reno") || !strings.HasPrefix(err.Error(), "cc: ") {
		t.Fatalf("New(bbr) = %v, want an error listing cubic, reno", err)
	}
	if _, err := New("reno", 0); err == nil {
		t.Fatal("an MSS of 0 was accepted")
	}
}

func TestRenoSlowStartDoublesPerRTTAndSwitchesAtSsthresh(t *testing.T) {
	s := &sender{c: newController(t, "reno"), rtt: 10e6}
	for _, want := range []int{20, 40, 80} {
		s.round()
		if s.c.Cwnd() != want*mss {
			t.Fatalf("slow start gave %d segments, want %d", s.c.Cwnd()/mss, want)
		}
	}
	s.c.OnTimeout(64 * mss) // ssthresh 32 segments, cwnd 1
	if s.c.Cwnd() != mss || s.c.Ssthresh() != 32*mss {
		t.Fatalf("timeout: cwnd %d ssthresh %d, want 1 and 32 segments", s.c.Cwnd(), s.c.Ssthresh())
	}
	for _, want := range []int{2, 4, 8, 16, 32, 33, 34} {
		s.round()
		if s.c.Cwnd() != want*mss {
			t.Fatalf("after a timeout got %d segments, want %d", s.c.Cwnd()/mss, want)
		}
	}
	if s.c.InSlowStart() {
		t.Fatal("still in slow start above ssthresh")
	}
}

func TestRenoSlowStartGrowsAtMostTwoSegmentsPerACK(t *testing.T) {
	c := newController(t, "reno")
	c.OnAck(8*mss, 0, 0) // a stretch ACK of 8 segments: L = 2*SMSS
	if c.Cwnd() != 12*mss {
		t.Fatalf("cwnd %d after a stretch ACK, want 12 segments", c.Cwnd()/mss)
	}
}

func TestRenoCongestionAvoidanceAddsOneMSSPerRTTWhateverTheACKSize(t *testing.T) {
	c := newController(t, "reno")
	c.OnLoss(40 * mss) // ssthresh = cwnd = 20 segments
	c.OnRecoveryExit()
	if c.Cwnd() != 20*mss || c.InSlowStart() {
		t.Fatalf("cwnd %d ssthresh %d", c.Cwnd(), c.Ssthresh())
	}
	s := &sender{c: c, rtt: 1e6}
	for want := 21; want <= 30; want++ {
		s.round()
		if c.Cwnd() != want*mss {
			t.Fatalf("congestion avoidance gave %d segments, want %d", c.Cwnd()/mss, want)
		}
	}
	// Delayed ACKs of two segments count the same bytes.
	for i := 0; i < 15; i++ {
		c.OnAck(2*mss, 0, 0)
	}
	if c.Cwnd() != 31*mss {
		t.Fatalf("a window acknowledged by delayed ACKs gave %d segments, want 31", c.Cwnd()/mss)
	}
}

func TestRenoLossHalvesTheFlightOnceAndTimeoutCollapsesToOneMSS(t *testing.T) {
	c := newController(t, "reno")
	c.OnLoss(10 * mss)
	if c.Cwnd() != 5*mss || c.Ssthresh() != 5*mss {
		t.Fatalf("loss: cwnd %d ssthresh %d, want 5 segments", c.Cwnd()/mss, c.Ssthresh()/mss)
	}
	c.OnLoss(5 * mss) // the same recovery: no second cut
	c.OnAck(mss, 0, 0)
	if c.Cwnd() != 5*mss {
		t.Fatalf("cwnd %d during recovery, want 5 segments unchanged", c.Cwnd()/mss)
	}
	c.OnRecoveryExit()
	c.OnLoss(3 * mss) // a small flight: ssthresh at least 2 segments
	if c.Ssthresh() != 2*mss {
		t.Fatalf("ssthresh %d, want the 2 segment floor", c.Ssthresh()/mss)
	}
	c.OnTimeout(8 * mss)
	if c.Cwnd() != mss || c.Ssthresh() != 4*mss {
		t.Fatalf("timeout: cwnd %d ssthresh %d, want 1 and 4 segments", c.Cwnd(), c.Ssthresh())
	}
}

// kOf is RFC 9438's eq. 2, computed apart from the package.
func kOf(wmax, cwndEpoch float64) float64 { return math.Cbrt((wmax - cwndEpoch) / 0.4) }

func wCubic(t, k, wmax float64) float64 { return 0.4*math.Pow(t-k, 3) + wmax }

// grow runs slow start to 1280 segments and takes a loss there.
func cubicAfterLoss(t *testing.T, rtt int64) *sender {
	s := &sender{c: newController(t, "cubic"), rtt: rtt}
	for s.c.Cwnd() < 1280*mss {
		s.round()
	}
	s.c.OnLoss(s.c.Cwnd())
	s.c.OnRecoveryExit()
	return s
}

func TestCubicFollowsTheCubicWindowAfterALoss(t *testing.T) {
	s := cubicAfterLoss(t, 100e6)
	const wmax = 1280.0
	if s.c.Cwnd() != int(0.7*wmax)*mss || s.c.Ssthresh() != int(0.7*wmax)*mss {
		t.Fatalf("after a loss at %v segments cwnd %d, ssthresh %d; want 0.7*W_max = 896",
			wmax, s.c.Cwnd()/mss, s.c.Ssthresh()/mss)
	}
	k := kOf(wmax, 0.7*wmax) // cbrt(960) = 9.87 s
	start := s.now
	check := func(at float64) {
		for float64(s.now-start)/1e9 < at {
			s.round()
		}
		tt := float64(s.now-start) / 1e9
		want := wCubic(tt, k, wmax)
		got := float64(s.c.Cwnd()) / mss
		if math.Abs(got-want) > 0.005*want {
			t.Errorf("at t = %.2f s cwnd %.1f segments, W_cubic %.1f", tt, got, want)
		}
	}
	for _, at := range []float64{1, 3, 5, 8, k, 11, 12} {
		check(at)
	}
	// At t = K the window is back at W_max.
	if s.c.Cwnd() < int(wmax)*mss {
		t.Errorf("cwnd %d segments past K, below W_max %v", s.c.Cwnd()/mss, wmax)
	}
}

func TestCubicIsRenoFriendlyOnShortRTTs(t *testing.T) {
	// A 1 ms RTT at 80 segments: W_cubic barely moves within 100 ms (K is
	// 3.9 s) while Reno gains a segment each millisecond.
	s := &sender{c: newController(t, "cubic"), rtt: 1e6}
	for s.c.Cwnd() < 80*mss {
		s.round()
	}
	s.c.OnLoss(s.c.Cwnd())
	s.c.OnRecoveryExit()
	start := s.now
	k := kOf(80, 56)
	for i := 0; i < 20; i++ {
		s.round()
	}
	// W_est grows by alpha_cubic = 3*0.3/1.7 segments per RTT below cwnd_prior.
	west := 56 + 20*3*0.3/1.7
	if got := float64(s.c.Cwnd()) / mss; math.Abs(got-west) > 1 {
		t.Fatalf("after 20 RTTs cwnd %.1f segments, want W_est %.1f", got, west)
	}
	for i := 0; i < 80; i++ {
		s.round()
	}
	tt := float64(s.now-start) / 1e9
	if got, wc := float64(s.c.Cwnd())/mss, wCubic(tt, k, 80); got < 100 || wc > 60 {
		t.Fatalf("after 100 RTTs cwnd %.1f segments, W_cubic %.1f: want Reno's growth to dominate", got, wc)
	}
}

func TestCubicFastConvergenceLowersWMaxOnAnEarlierLoss(t *testing.T) {
	s := cubicAfterLoss(t, 100e6)
	start := s.now
	for s.now-start < 1e9 {
		s.round()
	}
	c := s.c.(*Cubic)
	w2 := float64(s.c.Cwnd()) / mss // below 1280
	if w2 >= 1280 {
		t.Fatalf("cwnd %.1f segments reached the old W_max within 1 s", w2)
	}
	s.c.OnLoss(s.c.Cwnd())
	s.c.OnRecoveryExit()
	if want := w2 * 1.7 / 2; math.Abs(c.wmax-want) > 0.01 {
		t.Fatalf("W_max %.2f after a loss at %.2f below the last W_max, want %.2f", c.wmax, w2, want)
	}
	// The new curve reaches the lowered W_max at its own K.
	wmax := w2 * 1.7 / 2
	k := kOf(wmax, float64(s.c.Cwnd())/mss)
	start = s.now
	for float64(s.now-start)/1e9 < k {
		s.round()
	}
	if got := float64(s.c.Cwnd()) / mss; math.Abs(got-wmax) > 0.01*wmax {
		t.Fatalf("at t = K = %.2f s cwnd %.1f segments, want W_max %.1f", k, got, wmax)
	}
}

func TestCubicTimeoutCollapsesToOneMSSAndRestartsAtThePlateau(t *testing.T) {
	s := cubicAfterLoss(t, 100e6)
	flight := s.c.Cwnd()
	s.c.OnTimeout(flight)
	if s.c.Cwnd() != mss || s.c.Ssthresh() != int(float64(flight)*0.7) {
		t.Fatalf("timeout: cwnd %d ssthresh %d", s.c.Cwnd(), s.c.Ssthresh())
	}
	for s.c.InSlowStart() {
		s.round()
	}
	c := s.c.(*Cubic)
	s.round()
	if c.k != 0 || math.Abs(c.wmax-float64(c.ssthresh)/mss) > 1 {
		t.Fatalf("after an RTO the stage began with K %.2f, W_max %.1f; want 0 and the window", c.k, c.wmax)
	}
}

func TestOnAckAllocatesNothing(t *testing.T) {
	for _, name := range Available() {
		s := &sender{c: newController(t, name), rtt: 10e6}
		s.c.OnLoss(40 * mss)
		s.c.OnRecoveryExit()
		allocs := testing.AllocsPerRun(1000, func() {
			s.now += 1e5
			s.c.OnAck(mss, s.rtt, s.now)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per ACK, want 0", name, allocs)
		}
	}
}

// TestCubicReducesTheWindowNotAnApplicationLimitedFlight: a sender that had
// only a tenth of its window in flight at the loss keeps 0.7 of its window
// (RFC 9438 4.6), not 0.7 of the flight.
func TestCubicReducesTheWindowNotAnApplicationLimitedFlight(t *testing.T) {
	s := &sender{c: newController(t, "cubic"), rtt: 10e6}
	for s.c.Cwnd() < 100*mss {
		s.round()
	}
	cwnd := s.c.Cwnd()
	s.c.OnLoss(cwnd / 10)
	if want := int(float64(cwnd) * 0.7); s.c.Ssthresh() != want || s.c.Cwnd() != want {
		t.Fatalf("after a loss at cwnd %d with a tenth in flight: ssthresh %d cwnd %d, want %d", cwnd, s.c.Ssthresh(), s.c.Cwnd(), want)
	}
}

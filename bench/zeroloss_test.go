package bench

import (
	"math"
	"testing"
)

// device is a fake device under test for the search: it forwards every
// frame up to capacity packets per second and loses lossAbove of the excess
// share beyond it, behind a generator that offers at most top.
type device struct {
	capacity, top float64
	calls         int
	rates         []float64
}

func (d *device) trial(rate float64) (trial, error) {
	d.calls++
	d.rates = append(d.rates, rate)
	offered := rate
	if rate == 0 || rate > d.top {
		offered = d.top
	}
	t := trial{Rate: rate, Offered: offered, Received: math.Min(offered, d.capacity)}
	if offered > d.capacity {
		t.Loss = (offered - d.capacity) / offered
	}
	return t, nil
}

var testSearch = searchConfig{MaxLoss: 1e-5, Resolution: 0.02, MaxTrials: 30}

// The search converges within the resolution, never reports a rate that
// lost more than the bound, and finds more for a faster device.
func TestZeroLossSearchConvergesWithinResolution(t *testing.T) {
	const top = 10e6
	prev := 0.0
	for capacity := 0.05e6; capacity < top; capacity *= 1.13 {
		d := &device{capacity: capacity, top: top}
		s, err := searchZeroLoss(testSearch, d.trial)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Rate()
		if !s.Converged || s.Best < 0 {
			t.Fatalf("capacity %.0f: did not converge in %d trials (lo %.0f hi %.0f)", capacity, len(s.Trials), s.Lo, s.Hi)
		}
		if got > capacity || got < capacity/(1+testSearch.Resolution) {
			t.Fatalf("capacity %.0f: found %.0f, want within 2%% below it", capacity, got)
		}
		if l := s.Trials[s.Best].Loss; l > testSearch.MaxLoss {
			t.Fatalf("capacity %.0f: the reported trial lost %v", capacity, l)
		}
		if got < prev {
			t.Fatalf("capacity %.0f: found %.0f, less than %.0f for a slower device", capacity, got, prev)
		}
		prev = got
		if d.rates[0] != 0 || len(s.Trials) != d.calls || d.calls > 3 {
			t.Fatalf("capacity %.0f: trials at %v: a device that forwards what it got through at the top needs 3", capacity, d.rates)
		}
	}
}

// A device whose zero-loss rate is below what it gets through when
// saturated (it drops bursts before it runs out of time): the search
// bisects, and converges within the resolution in typicalTrials or so.
func TestZeroLossSearchBisectsBelowTheSaturatedRate(t *testing.T) {
	for _, share := range []float64{0.3, 0.5, 0.7, 0.85, 0.95} {
		const capacity, top = 2e6, 3e6
		run := func(rate float64) (trial, error) {
			off := rate
			if rate == 0 {
				off = top
			}
			tr := trial{Rate: rate, Offered: off, Received: math.Min(off, capacity)}
			if off > share*capacity {
				tr.Loss = 1e-3
				tr.Received = off * (1 - tr.Loss)
			}
			return tr, nil
		}
		s, err := searchZeroLoss(testSearch, run)
		if err != nil {
			t.Fatal(err)
		}
		want := share * capacity
		if got := s.Rate(); !s.Converged || got > want || got < want/1.02 {
			t.Fatalf("zero-loss at %.0f: found %.0f in %d trials (converged %v)", want, got, len(s.Trials), s.Converged)
		}
		if len(s.Trials) > DefaultMaxTrials {
			t.Fatalf("zero-loss at %.0f: %d trials, more than the default limit %d", want, len(s.Trials), DefaultMaxTrials)
		}
	}
}

// A device that loses a little: a trial passes up to the loss bound and
// fails above it.
func TestZeroLossSearchRespectsTheLossBound(t *testing.T) {
	// Loss grows with the rate: 1e-6 per Mpps. The bound 1e-5 is met up to
	// 10 Mpps.
	run := func(rate float64) (trial, error) {
		if rate == 0 {
			rate = 40e6
		}
		return trial{Rate: rate, Offered: rate, Received: rate, Loss: rate / 1e6 * 1e-6}, nil
	}
	s, err := searchZeroLoss(testSearch, run)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Rate(); got > 10e6 || got < 10e6/1.02 {
		t.Fatalf("found %.0f, want within 2%% below 10e6", got)
	}
	for _, tr := range s.Trials {
		if passed := tr.passes(testSearch); passed != (tr.Loss <= 1e-5) {
			t.Fatalf("trial at %.0f with loss %v: passes %v", tr.Rate, tr.Loss, passed)
		}
	}
}

// When the top rate loses nothing, the generator is the limit: one trial.
func TestZeroLossSearchStopsWhenTheTopRatePasses(t *testing.T) {
	d := &device{capacity: 20e6, top: 5e6}
	s, err := searchZeroLoss(testSearch, d.trial)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Trials) != 1 || !s.HarnessLimit || s.Rate() != 5e6 {
		t.Fatalf("%d trials, harness limit %v, rate %.0f", len(s.Trials), s.HarnessLimit, s.Rate())
	}
}

// A generator that cannot offer what a trial asks and loses nothing ends
// the search at what it offered; one that loses at a shortfall lowers the
// bracket to what it offered, not to what was asked.
func TestZeroLossSearchFollowsTheRateOffered(t *testing.T) {
	// The top trial bursts harder than any paced one and loses; paced, the
	// generator reaches 3 Mpps at most, and the device keeps up with it.
	run := func(rate float64) (trial, error) {
		if rate == 0 {
			return trial{Offered: 4e6, Received: 3.9e6, Loss: 0.025}, nil
		}
		off := math.Min(rate, 3e6)
		return trial{Rate: rate, Offered: off, Received: off}, nil
	}
	s, err := searchZeroLoss(testSearch, run)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HarnessLimit || s.Rate() != 3e6 || len(s.Trials) != 2 {
		t.Fatalf("harness limit %v, rate %.0f after %d trials", s.HarnessLimit, s.Rate(), len(s.Trials))
	}
}

// Out of trials, the search says it did not converge and reports the best
// rate that passed.
func TestZeroLossSearchStopsAtTheTrialLimit(t *testing.T) {
	// Loses a little above 1 Mpps, but gets 2 Mpps through when saturated.
	run := func(rate float64) (trial, error) {
		if rate == 0 {
			return trial{Offered: 10e6, Received: 2e6, Loss: 0.8}, nil
		}
		tr := trial{Rate: rate, Offered: rate, Received: rate}
		if rate > 1e6 {
			tr.Loss = 1e-3
		}
		return tr, nil
	}
	c := testSearch
	c.MaxTrials = 4
	s, err := searchZeroLoss(c, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Trials) != 4 || s.Converged || s.Rate() > 1e6 || s.Rate() <= 0 {
		t.Fatalf("%d trials, converged %v, rate %.0f", len(s.Trials), s.Converged, s.Rate())
	}
}

func TestRunOrderInterleavesThePaths(t *testing.T) {
	got := runOrder([]int{64, 1518}, []Mode{ModePMD, ModeNAPI}, 3)
	want := []slot{
		{64, ModePMD, 0}, {64, ModeNAPI, 0}, {64, ModePMD, 1}, {64, ModeNAPI, 1}, {64, ModePMD, 2}, {64, ModeNAPI, 2},
		{1518, ModePMD, 0}, {1518, ModeNAPI, 0}, {1518, ModePMD, 1}, {1518, ModeNAPI, 1}, {1518, ModePMD, 2}, {1518, ModeNAPI, 2},
	}
	if len(got) != len(want) {
		t.Fatalf("%d runs, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("run %d is %+v, want %+v (order %v)", i, got[i], want[i], got)
		}
	}
	if one := runOrder([]int{64}, []Mode{ModeNAPI}, 1); len(one) != 1 || one[0] != (slot{64, ModeNAPI, 0}) {
		t.Fatalf("one run: %v", one)
	}
}

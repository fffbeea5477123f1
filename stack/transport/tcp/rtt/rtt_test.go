package rtt

import (
	"strings"
	"testing"
)

const (
	ms = int64(1e6)
	s  = int64(1e9)
)

func newEstimator(t *testing.T, c Config) *Estimator {
	t.Helper()
	var e Estimator
	if err := e.Init(c); err != nil {
		t.Fatal(err)
	}
	return &e
}

func TestTheRTOIsOneSecondBeforeAnySample(t *testing.T) {
	e := newEstimator(t, Config{})
	if e.RTO() != 1*s || e.HasSample() || e.SRTT() != 0 {
		t.Fatalf("RTO %d, sampled %v, SRTT %d; want 1 s, no sample", e.RTO(), e.HasSample(), e.SRTT())
	}
}

func TestSamplesFollowRFC6298ByHand(t *testing.T) {
	e := newEstimator(t, Config{})
	steps := []struct {
		r, srtt, rttvar, rto int64
	}{
		// 2.2: SRTT = 100, RTTVAR = 50, RTO = 100 + max(1, 200) = 300.
		{100 * ms, 100 * ms, 50 * ms, 300 * ms},
		// 2.3: RTTVAR = 3/4*50 + 1/4*|100-140| = 47.5;
		// SRTT = 7/8*100 + 1/8*140 = 105; RTO = 105 + 190 = 295.
		{140 * ms, 105 * ms, 47500000, 295 * ms},
		// RTTVAR = 3/4*47.5 + 1/4*|105-65| = 45.625;
		// SRTT = 7/8*105 + 1/8*65 = 100; RTO = 100 + 182.5 = 282.5.
		{65 * ms, 100 * ms, 45625000, 282500000},
	}
	for i, st := range steps {
		e.Sample(st.r)
		if e.SRTT() != st.srtt || e.RTTVar() != st.rttvar || e.RTO() != st.rto {
			t.Fatalf("after sample %d (%d ns): SRTT %d RTTVAR %d RTO %d, want %d %d %d",
				i+1, st.r, e.SRTT(), e.RTTVar(), e.RTO(), st.srtt, st.rttvar, st.rto)
		}
	}
}

func TestTheRTOIsNeverBelowTheMinimum(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Sample(1 * ms) // 1 + max(1, 2) = 3 ms, raised to 200 ms
	if e.RTO() != DefaultMinRTO {
		t.Fatalf("RTO %d after a 1 ms sample, want the 200 ms minimum", e.RTO())
	}
	low := newEstimator(t, Config{MinRTO: 1 * ms})
	low.Sample(10 * ms) // 10 + max(1, 20) = 30 ms
	if low.RTO() != 30*ms {
		t.Fatalf("RTO %d with a 1 ms minimum, want 30 ms", low.RTO())
	}
}

func TestTheGranularityBoundsTheVarianceTerm(t *testing.T) {
	e := newEstimator(t, Config{MinRTO: 1, Granularity: 10 * ms})
	e.Sample(2 * ms) // SRTT 2, RTTVAR 1: 2 + max(10, 4) = 12 ms
	if e.RTO() != 12*ms {
		t.Fatalf("RTO %d, want SRTT + G = 12 ms", e.RTO())
	}
	// Steady samples shrink RTTVAR toward 0; G keeps RTO above SRTT.
	for i := 0; i < 100; i++ {
		e.Sample(2 * ms)
	}
	if e.RTTVar() != 0 || e.RTO() != 12*ms {
		t.Fatalf("after steady samples RTTVAR %d, RTO %d; want 0 and 12 ms", e.RTTVar(), e.RTO())
	}
}

func TestTheRTOIsNeverAboveTheMaximum(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Sample(100 * s) // 100 + 200 s, lowered to 120 s
	if e.RTO() != DefaultMaxRTO {
		t.Fatalf("RTO %d after a 100 s sample, want 120 s", e.RTO())
	}
	e.Backoff()
	if e.RTO() != DefaultMaxRTO || e.Backoffs() != 0 {
		t.Fatalf("backing off at the maximum gave RTO %d, %d backoffs", e.RTO(), e.Backoffs())
	}
}

func TestBackoffDoublesUpToTheMaximumAndASampleEndsIt(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Sample(100 * ms) // RTO 300 ms
	want := 300 * ms
	for i := 1; i <= 20; i++ {
		e.Backoff()
		want = min(2*want, DefaultMaxRTO)
		if e.RTO() != want {
			t.Fatalf("after %d backoffs RTO %d, want %d", i, e.RTO(), want)
		}
	}
	// 300 ms * 2^9 = 153.6 s: the ninth doubling reached the cap, later
	// ones were not counted.
	if e.Backoffs() != 9 {
		t.Fatalf("%d backoffs counted, want 9 (the cap reached on the ninth)", e.Backoffs())
	}
	// Karn: no sample, the backed-off RTO stays; a valid sample ends it.
	if e.RTO() != DefaultMaxRTO {
		t.Fatal("the backed-off RTO did not stay without a sample")
	}
	e.Sample(100 * ms)
	if e.Backoffs() != 0 || e.RTO() >= 300*ms {
		t.Fatalf("after a new sample: %d backoffs, RTO %d; want 0 and below 300 ms", e.Backoffs(), e.RTO())
	}
}

func TestBackoffBeforeAnySampleStartsFromOneSecond(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Backoff()
	e.Backoff()
	if e.RTO() != 4*s {
		t.Fatalf("two SYN timeouts gave RTO %d, want 4 s", e.RTO())
	}
}

func TestDataAfterALostSYNStartsAtThreeSeconds(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Backoff() // the SYN timed out; the handshake then completed unsampled
	e.AfterSYNTimeout()
	if e.RTO() != FallbackRTO || e.Backoffs() != 0 {
		t.Fatalf("RTO %d, %d backoffs; want 3 s and none", e.RTO(), e.Backoffs())
	}
	sampled := newEstimator(t, Config{})
	sampled.Sample(100 * ms) // a timestamp sample from the handshake
	sampled.AfterSYNTimeout()
	if sampled.RTO() != 300*ms {
		t.Fatalf("a handshake sample was overridden: RTO %d, want 300 ms", sampled.RTO())
	}
}

func TestANegativeSampleIsIgnored(t *testing.T) {
	e := newEstimator(t, Config{})
	e.Sample(-1)
	if e.HasSample() || e.RTO() != InitialRTO {
		t.Fatal("a negative sample was taken")
	}
}

func TestABadConfigIsRefused(t *testing.T) {
	for _, c := range []Config{
		{MinRTO: 2 * s, MaxRTO: 1 * s},
		{MinRTO: -1},
		{Granularity: -1},
		{MaxRTO: 100 * ms}, // below the default minimum
	} {
		var e Estimator
		err := e.Init(c)
		if err == nil || !strings.HasPrefix(err.Error(), "rtt: ") {
			t.Errorf("Init(%+v) = %v, want an rtt: error", c, err)
		}
	}
}

func TestSamplingAndBackoffAllocateNothing(t *testing.T) {
	e := newEstimator(t, Config{})
	r := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		r += 37 * ms
		e.Sample(r % (500 * ms))
		e.Backoff()
		_ = e.RTO()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per sample, want 0", allocs)
	}
}

package sack

import (
	"testing"

	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

const ms = int64(1e6)

func TestRACKMarksAnEarlierSegmentLostOnlyOnceTheReorderingWindowHasPassed(t *testing.T) {
	s := new(Scoreboard)
	s.Init(mss, 0)
	for k := int64(0); k < 3; k++ {
		s.Sent(seqAt(k), seqAt(k+1), k*ms, false) // at 0, 1, 2 ms
	}
	const minRTT, srtt = 40 * ms, 45 * ms
	s.SACK([]Block{{seqAt(2), seqAt(3)}}, 42*ms) // RACK.rtt = 40 ms
	if w := s.ReorderWindow(minRTT, srtt); w != 10*ms {
		t.Fatalf("ReorderWindow = %d, want min_RTT/4 = %d", w, 10*ms)
	}
	// Segment 1 is due at 0+40+10 = 50 ms, segment 2 at 51 ms.
	lost, timer := s.DetectLoss(42*ms, minRTT, srtt)
	if lost != 0 || timer != 9*ms {
		t.Fatalf("DetectLoss at 42 ms = %d lost, timer %d; want 0 and %d", lost, timer, 9*ms)
	}
	if lost, timer = s.DetectLoss(50*ms-1, minRTT, srtt); lost != 0 || s.IsLost(0) {
		t.Fatalf("segment 1 lost a nanosecond before its reordering window passed")
	}
	lost, timer = s.DetectLoss(50*ms, minRTT, srtt)
	if lost != mss || !s.IsLost(0) || s.IsLost(seqAt(1)) || timer != 1*ms {
		t.Fatalf("DetectLoss at 50 ms = %d lost (1: %v, 2: %v), timer %d; want segment 1 only and 1 ms",
			lost, s.IsLost(0), s.IsLost(seqAt(1)), timer)
	}
	if lost, _ = s.DetectLoss(51*ms, minRTT, srtt); lost != mss || !s.IsLost(seqAt(1)) {
		t.Fatalf("segment 2 not lost at 51 ms")
	}
	if s.Stats.RACKLost != 2 {
		t.Fatalf("RACK marks = %d, want 2", s.Stats.RACKLost)
	}
	if !s.ShouldEnterRecovery() {
		t.Fatal("RACK's losses do not call for recovery")
	}
	check(t, s)
}

func TestRACKFindsALostRetransmissionAndItIsSentAgain(t *testing.T) {
	s := new(Scoreboard)
	s.Init(mss, 0)
	s.Sent(seqAt(0), seqAt(1), 0, false)
	s.Sent(seqAt(1), seqAt(2), 1*ms, false)
	s.Timeout(false)
	s.Sent(seqAt(0), seqAt(1), 300*ms, true) // the retransmission, itself lost
	s.Sent(seqAt(2), seqAt(3), 301*ms, false)
	s.SACK([]Block{{seqAt(2), seqAt(3)}}, 341*ms)
	if lost, _ := s.DetectLoss(400*ms, 40*ms, 40*ms); lost != mss {
		t.Fatalf("DetectLoss marked %d octets lost, want the retransmission's %d", lost, mss)
	}
	if s.Stats.LostRetransmit != 1 {
		t.Fatalf("TCPLostRetransmit = %d, want 1", s.Stats.LostRetransmit)
	}
	if start, _, kind := s.NextSeg(false); kind != Retransmit || start != 0 {
		t.Fatalf("NextSeg = %v at %d, want segment 1 again", kind, start)
	}
	check(t, s)
}

func TestAQuickACKOfARetransmissionIsTakenForTheOriginal(t *testing.T) {
	s := new(Scoreboard)
	s.Init(mss, 0)
	s.Sent(seqAt(0), seqAt(1), 0, false)
	s.Sent(seqAt(1), seqAt(2), 0, false)
	s.DetectLoss(0, 40*ms, 40*ms) // tells RACK the min RTT
	s.Sent(seqAt(1), seqAt(2), 30*ms, true)
	s.SACK([]Block{{seqAt(1), seqAt(2)}}, 35*ms) // 5 ms after the resend
	if s.rack.valid {
		t.Fatal("an ACK 5 ms after a retransmission, with a 40 ms min RTT, updated RACK")
	}
}

func TestTheReorderingWindowGrowsOnDSACKOncePerRoundAndDecays(t *testing.T) {
	s := board(t, 0, 4)
	const minRTT, srtt = 40 * ms, 100 * ms
	dsack := []Block{{seqAt(0), seqAt(1)}, {seqAt(0), seqAt(2)}}
	s.SACK(dsack, 1)
	if w := s.ReorderWindow(minRTT, srtt); w != 20*ms {
		t.Fatalf("after a D-SACK ReorderWindow = %d, want %d", w, 20*ms)
	}
	s.SACK(dsack, 2)
	if w := s.ReorderWindow(minRTT, srtt); w != 20*ms {
		t.Fatalf("a second D-SACK in the round grew the window to %d", w)
	}
	s.Ack(seqAt(4), 3) // the round ends
	s.Sent(seqAt(4), seqAt(5), 4, false)
	for i := 0; i < 10; i++ {
		s.SACK([]Block{{seqAt(3), seqAt(4)}}, 5)
		s.Ack(s.Nxt(), 6)
		s.Sent(s.Nxt(), s.Nxt().Add(mss), 7, false)
	}
	if w := s.ReorderWindow(minRTT, srtt); w != srtt {
		t.Fatalf("ReorderWindow = %d after many D-SACKs, want it capped at SRTT %d", w, srtt)
	}
	if s.rack.mult != 12 {
		t.Fatalf("multiplier %d after 12 rounds with D-SACKs", s.rack.mult)
	}
	for i := 0; i < reoWndPersist; i++ {
		s.Sent(s.Nxt(), s.Nxt().Add(mss), 8, false)
		s.EnterRecovery()
		s.Ack(s.Nxt(), 9)
	}
	if w := s.ReorderWindow(minRTT, srtt); w != minRTT/4 {
		t.Fatalf("after %d recoveries without a D-SACK ReorderWindow = %d, want %d", reoWndPersist, w, minRTT/4)
	}
}

func TestProbeTimeoutIsTwiceSRTTPlusTheAckDelayForALoneSegment(t *testing.T) {
	for _, c := range []struct {
		srtt          int64
		flight        int
		rtoLeft, want int64
	}{
		{50 * ms, 10 * mss, 0, 100 * ms},
		{50 * ms, mss, 0, 100*ms + MaxAckDelay},
		{50 * ms, 10 * mss, 80 * ms, 80 * ms}, // the RTO comes first
		{0, mss, 0, 1000 * ms},                // no RTT sample yet
		{0, mss, 300 * ms, 300 * ms},
	} {
		if got := ProbeTimeout(c.srtt, c.flight, mss, c.rtoLeft); got != c.want {
			t.Errorf("ProbeTimeout(%d, %d, %d, %d) = %d, want %d", c.srtt, c.flight, mss, c.rtoLeft, got, c.want)
		}
	}
}

// seqAt is the first octet of segment k (from 0) of a board based at 0.
func seqAt(k int64) seq.Value { return seq.Value(k * mss) }

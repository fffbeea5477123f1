package sack

import (
	"errors"
	"math/rand"
	"testing"

	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

const mss = 1000

// board returns a scoreboard whose segments 1..n of mss octets each start
// at base, segment k sent at time k ms.
func board(t *testing.T, base seq.Value, n int) *Scoreboard {
	t.Helper()
	s := new(Scoreboard)
	s.Init(mss, base)
	for k := 1; k <= n; k++ {
		if err := s.Sent(segStart(base, k), segStart(base, k+1), int64(k)*1e6, false); err != nil {
			t.Fatalf("Sent(segment %d): %v", k, err)
		}
	}
	check(t, s)
	return s
}

// segStart is the first octet of segment k (from 1).
func segStart(base seq.Value, k int) seq.Value { return base.Add(seq.Size((k - 1) * mss)) }

// sackOf is one block covering segments from..to.
func sackOf(base seq.Value, from, to int) Block {
	return Block{segStart(base, from), segStart(base, to+1)}
}

// check verifies the board's invariants against a recount: records are in
// order, contiguous over [una, nxt), and the aggregates match.
func check(t *testing.T, s *Scoreboard) {
	t.Helper()
	var sacked, lost, rexmit uint64
	var segs int
	at := s.una
	for i := s.head; i < s.tail; i++ {
		r := &s.segs[i]
		if r.start != at || !r.start.LessThan(r.end) {
			t.Fatalf("record %d is [%d, %d), want it to start at %d and be non-empty", i, r.start, r.end, at)
		}
		at = r.end
		switch {
		case r.flags&fSACKed != 0:
			sacked += r.len()
			segs++
		default:
			if r.flags&fLost != 0 {
				lost += r.len()
			}
			if r.flags&fRetrans != 0 {
				rexmit += r.len()
			}
		}
	}
	if at != s.nxt {
		t.Fatalf("records end at %d, snd.nxt is %d", at, s.nxt)
	}
	if sacked != s.sackedBytes || segs != s.sackedSegs || lost != s.lostBytes || rexmit != s.retransBytes {
		t.Fatalf("aggregates sacked %d/%d lost %d rexmit %d, recount %d/%d %d %d",
			s.sackedBytes, s.sackedSegs, s.lostBytes, s.retransBytes, sacked, segs, lost, rexmit)
	}
	if p := s.Pipe(); p > 2*uint64(s.nxt.Sub(s.una)) {
		t.Fatalf("Pipe() = %d with only %d octets outstanding", p, s.nxt.Sub(s.una))
	}
}

func testRFC6675Example(t *testing.T, base seq.Value) {
	s := board(t, base, 10)
	s.Ack(segStart(base, 2), 11e6) // segment 1
	s.Ack(segStart(base, 3), 12e6) // segment 2; segment 3 is lost
	for k := 4; k <= 6; k++ {
		if n, dsack := s.SACK([]Block{sackOf(base, 4, k)}, int64(10+k)*1e6); n != mss || dsack {
			t.Fatalf("SACK of segments 4..%d newly SACKed %d octets (D-SACK %v), want %d", k, n, dsack, mss)
		}
		check(t, s)
		if got, want := s.IsLost(segStart(base, 3)), k == 6; got != want {
			t.Fatalf("after SACKs up to segment %d IsLost(3) = %v, want %v", k, got, want)
		}
		if s.DupAcks() != k-3 {
			t.Fatalf("DupAcks = %d after %d SACKs, want %d", s.DupAcks(), k-3, k-3)
		}
	}
	if s.IsLost(segStart(base, 4)) || s.IsLost(segStart(base, 7)) {
		t.Fatal("a SACKed segment or one above the SACKs is deemed lost")
	}
	// Outstanding 3..10 (8 segments), 3 SACKed, 1 lost: 4 in the pipe.
	if p := s.Pipe(); p != 4*mss {
		t.Fatalf("Pipe() = %d, want %d", p, 4*mss)
	}
	if !s.ShouldEnterRecovery() {
		t.Fatal("recovery is not due after three SACKed segments above a hole")
	}
	s.EnterRecovery()
	if !s.InRecovery() || s.RecoveryPoint() != segStart(base, 11) || s.Stats.SackRecovery != 1 {
		t.Fatalf("EnterRecovery: in %v, RecoveryPoint %d, TCPSackRecovery %d", s.InRecovery(), s.RecoveryPoint(), s.Stats.SackRecovery)
	}
	start, end, kind := s.NextSeg(true)
	if kind != Retransmit || start != segStart(base, 3) || end != segStart(base, 4) {
		t.Fatalf("NextSeg = [%d, %d) %v, want segment 3 retransmitted", start, end, kind)
	}
	if err := s.Sent(start, end, 20e6, true); err != nil {
		t.Fatal(err)
	}
	check(t, s)
	if p := s.Pipe(); p != 5*mss {
		t.Fatalf("Pipe() after retransmitting 3 = %d, want %d", p, 5*mss)
	}
	if s.HighRxt() != segStart(base, 4) {
		t.Fatalf("HighRxt = %d, want %d", s.HighRxt(), segStart(base, 4))
	}
	start, end, kind = s.NextSeg(true)
	if kind != NewData || start != segStart(base, 11) || end != segStart(base, 12) {
		t.Fatalf("NextSeg = [%d, %d) %v, want new data at segment 11", start, end, kind)
	}
	if _, _, kind = s.NextSeg(false); kind != Nothing {
		t.Fatalf("NextSeg without new data = %v before the first retransmission is acked, want Nothing", kind)
	}
	// The retransmission arrives: cumulative ACK to the end of 6.
	if res := s.Ack(segStart(base, 7), 30e6); res.Acked != 4*mss || res.ExitedRecovery || res.Reneging {
		t.Fatalf("Ack to 7 = %+v", res)
	}
	check(t, s)
	start, _, kind = s.NextSeg(false)
	if kind != Rescue || start != segStart(base, 10) {
		t.Fatalf("NextSeg without new data = %v at %d, want the rescue of segment 10", kind, start)
	}
	if r, ok := s.RescueRxt(); !ok || r != s.RecoveryPoint() {
		t.Fatalf("RescueRxt = %d %v, want RecoveryPoint", r, ok)
	}
	if _, _, kind = s.NextSeg(false); kind != Nothing {
		t.Fatalf("a second rescue in one recovery: %v", kind)
	}
	if res := s.Ack(segStart(base, 11), 40e6); !res.ExitedRecovery || s.InRecovery() {
		t.Fatalf("the ACK of RecoveryPoint did not end recovery: %+v", res)
	}
	if s.Segments() != 0 || s.Pipe() != 0 {
		t.Fatalf("%d records and pipe %d after everything is acked", s.Segments(), s.Pipe())
	}
}

func TestTheRFC6675ExampleLosesTheThirdSegmentAndRecovers(t *testing.T) {
	testRFC6675Example(t, 1000)
}

func TestSequenceNumbersWrapAcross2To32(t *testing.T) {
	testRFC6675Example(t, seq.Value(1<<32-3500)) // wraps inside segment 4
}

func TestMoreThanTwoSMSSOfSACKedOctetsDeclareAHoleLost(t *testing.T) {
	s := new(Scoreboard)
	s.Init(mss, 0)
	s.Sent(0, 1000, 1, false)
	s.Sent(1000, 2100, 2, false)
	s.Sent(2100, 3200, 3, false)
	s.SACK([]Block{{1000, 2100}}, 4)
	if s.IsLost(0) {
		t.Fatal("1100 SACKed octets declare a hole lost")
	}
	s.SACK([]Block{{1000, 3200}}, 5)
	if !s.IsLost(0) {
		t.Fatal("2200 SACKed octets (> 2*SMSS) in two segments do not declare the hole lost")
	}
	check(t, s)
}

func TestSACKBlocksOutsideTheWindowAreDiscarded(t *testing.T) {
	s := board(t, 5000, 5)
	s.Ack(6000, 1)
	bad := []Block{
		{11000, 12000}, // beyond snd.nxt
		{9000, 11000},  // straddles snd.nxt
		{8000, 7000},   // reversed
		{7000, 7000},   // empty
		{5500, 7000},   // straddles snd.una, not first so not a D-SACK
	}
	if n, dsack := s.SACK(bad[:4], 2); n != 0 || dsack {
		t.Fatalf("invalid blocks SACKed %d octets (D-SACK %v)", n, dsack)
	}
	if n, _ := s.SACK(append([]Block{{7000, 8000}}, bad[4]), 3); n != mss {
		t.Fatalf("a valid block beside an invalid one SACKed %d octets, want %d", n, mss)
	}
	five := []Block{{8000, 9000}, {8000, 9000}, {8000, 9000}, {8000, 9000}, {9000, 10000}}
	s.SACK(five, 4)
	if s.SACKedBytes() != 2*mss {
		t.Fatalf("SACKedBytes = %d, want %d (the fifth block discarded)", s.SACKedBytes(), 2*mss)
	}
	if s.Stats.SACKDiscard != 6 {
		t.Fatalf("TCPSACKDiscard = %d, want 6", s.Stats.SACKDiscard)
	}
	check(t, s)
}

func TestADSACKBelowUnaOrInsideTheSecondBlockIsReported(t *testing.T) {
	s := board(t, 0, 6)
	s.Ack(2000, 1)
	if _, dsack := s.SACK([]Block{{0, 1000}}, 2); !dsack {
		t.Fatal("a block below snd.una is not a D-SACK")
	}
	if _, dsack := s.SACK([]Block{{3000, 4000}, {3000, 5000}}, 3); !dsack {
		t.Fatal("a first block inside the second is not a D-SACK")
	}
	if s.SACKedBytes() != 2*mss {
		t.Fatalf("the block beside the D-SACK SACKed %d octets, want %d", s.SACKedBytes(), 2*mss)
	}
	if _, dsack := s.SACK([]Block{{5000, 6000}, {3000, 5000}}, 4); dsack {
		t.Fatal("an ordinary first block is taken for a D-SACK")
	}
	if s.Stats.DSACKRecv != 2 {
		t.Fatalf("TCPDSACKRecv = %d, want 2", s.Stats.DSACKRecv)
	}
	check(t, s)
}

func TestRenegedSACKsAreSuspectedOnceAndClearedOnTimeout(t *testing.T) {
	s := board(t, 0, 6)
	s.SACK([]Block{{3000, 6000}}, 1)
	// The peer acknowledges up to segment 4, which it SACKed, but not 4.
	if res := s.Ack(3000, 2); !res.Reneging {
		t.Fatal("an ACK stopping at a SACKed segment is not suspected as reneging")
	}
	if res := s.Ack(3000, 3); !res.Reneging {
		t.Fatal("a second such ACK is not reported")
	}
	if s.Stats.SACKReneging != 1 {
		t.Fatalf("TCPSACKReneging = %d, want 1 per episode", s.Stats.SACKReneging)
	}
	if !s.Reneging() {
		t.Fatal("Reneging() is false with the SACKed segment 4 at snd.una")
	}
	s.Timeout(true)
	check(t, s)
	if s.SACKedBytes() != 0 || !s.IsLost(3000) || !s.IsLost(5000) {
		t.Fatalf("after Timeout(true): %d SACKed octets, IsLost(4) %v", s.SACKedBytes(), s.IsLost(3000))
	}
	if start, _, kind := s.NextSeg(false); kind != Retransmit || start != 3000 {
		t.Fatalf("NextSeg after the timeout = %v at %d, want the retransmission of segment 4", kind, start)
	}
	if s.Pipe() != 0 {
		t.Fatalf("Pipe() = %d after a timeout, want 0", s.Pipe())
	}
	if s.ShouldEnterRecovery() {
		t.Fatal("recovery may begin before snd.una passes the timeout's RecoveryPoint")
	}
}

func TestATimeoutKeepsSACKMarksUnlessAsked(t *testing.T) {
	s := board(t, 0, 4)
	s.SACK([]Block{{1000, 2000}}, 1)
	if s.Reneging() {
		t.Fatal("Reneging() with an unSACKed segment at snd.una")
	}
	s.Timeout(false)
	check(t, s)
	if s.SACKedBytes() != mss || s.IsLost(1000) || !s.IsLost(0) || !s.IsLost(2000) {
		t.Fatalf("Timeout(false): SACKed %d, lost 1:%v 2:%v 3:%v", s.SACKedBytes(), s.IsLost(0), s.IsLost(1000), s.IsLost(2000))
	}
}

func TestARetransmissionCutDifferentlySplitsTheRecords(t *testing.T) {
	s := board(t, 0, 3)
	if err := s.Sent(500, 1500, 10, true); err != nil {
		t.Fatal(err)
	}
	check(t, s)
	if s.Segments() != 5 || s.Pipe() != 3*mss+1000 {
		t.Fatalf("%d records, pipe %d; want 5 and %d", s.Segments(), s.Pipe(), 3*mss+1000)
	}
	for _, c := range []struct {
		start, end seq.Value
		retx       bool
		err        error
	}{
		{3000, 4000, true, ErrNotOutstanding},
		{100, 100, false, ErrRange},
		{4000, 5000, false, ErrNotNext},
		{0, 1 << 31, true, ErrRange},
	} {
		if err := s.Sent(c.start, c.end, 11, c.retx); !errors.Is(err, c.err) {
			t.Errorf("Sent(%d, %d, %v) = %v, want %v", c.start, c.end, c.retx, err, c.err)
		}
	}
	check(t, s)
}

func TestALyingPeerKeepsTheScoreboardBoundedAndConsistent(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	s := new(Scoreboard)
	base := seq.Value(1<<32 - 50*mss) // wrap too
	s.Init(mss, base)
	now := int64(0)
	blocks := make([]Block, 0, 8)
	sent := 0
	for round := 0; round < 20000; round++ {
		now += 10000
		for s.Segments() < 64 {
			s.Sent(s.Nxt(), s.Nxt().Add(mss), now, false)
			sent++
		}
		blocks = blocks[:0]
		for i := rng.Intn(8); i > 0; i-- {
			// Anything near the window: overlapping, reversed, beyond
			// snd.nxt, below snd.una, unaligned.
			a := s.Una().Add(seq.Size(rng.Intn(80*mss))) - 8*mss
			b := a.Add(seq.Size(rng.Intn(20*mss))) - seq.Value(rng.Intn(3*mss))
			blocks = append(blocks, Block{a, b})
		}
		s.SACK(blocks, now)
		switch rng.Intn(4) {
		case 0:
			s.Ack(s.Una().Add(seq.Size(rng.Intn(10*mss))), now)
		case 1:
			if start, end, kind := s.NextSeg(false); kind == Retransmit || kind == Rescue {
				s.Sent(start, end, now, true)
			}
		case 2:
			s.DetectLoss(now, 50000, 100000)
			if s.ShouldEnterRecovery() {
				s.EnterRecovery()
			}
		case 3:
			if rng.Intn(50) == 0 {
				s.Timeout(rng.Intn(2) == 0)
			}
		}
		check(t, s)
		if n := s.Segments(); n > 2*64 || len(s.segs) > 1024 {
			t.Fatalf("round %d: %d records in a slice of %d", round, n, len(s.segs))
		}
	}
	if s.Stats.SACKDiscard == 0 || s.Stats.DSACKRecv == 0 {
		t.Fatalf("the lies were not noticed: %+v", s.Stats)
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	s := new(Scoreboard)
	s.Init(mss, 0)
	now := int64(0)
	blocks := make([]Block, 2)
	step := func() {
		now += 1e5
		for s.Segments() < 40 {
			s.Sent(s.Nxt(), s.Nxt().Add(mss), now, false)
		}
		una := s.Una()
		blocks[0] = Block{una.Add(2 * mss), una.Add(6 * mss)}
		blocks[1] = Block{una.Add(8 * mss), una.Add(9 * mss)}
		s.SACK(blocks, now)
		_ = s.IsLost(una)
		s.DetectLoss(now, 2e6, 4e6)
		if s.ShouldEnterRecovery() {
			s.EnterRecovery()
		}
		if start, end, kind := s.NextSeg(false); kind == Retransmit {
			s.Sent(start, end, now, true)
		}
		s.Ack(una.Add(9*mss), now)
	}
	for i := 0; i < 100; i++ {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per ACK round, want 0", n)
	}
}

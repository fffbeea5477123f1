package pktgen

import (
	"testing"
	"time"
)

func observeAll(s *Sink, seqs ...uint64) {
	for _, q := range seqs {
		s.Observe(q, 0, 1000, 60)
	}
}

func TestSinkAccounting(t *testing.T) {
	seqRange := func(from, to uint64) []uint64 {
		var r []uint64
		for q := from; q < to; q++ {
			r = append(r, q)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		seqs []uint64
		want SinkStats
	}{
		{"empty", nil, SinkStats{}},
		{"in order", seqRange(0, 10),
			SinkStats{Received: 10, Unique: 10, Highest: 9}},
		{"gap", []uint64{0, 1, 2, 5, 6},
			SinkStats{Received: 5, Unique: 5, Lost: 2, Highest: 6}},
		{"lost at start", []uint64{3, 4},
			SinkStats{Received: 2, Unique: 2, Lost: 3, Highest: 4}},
		{"duplicate", []uint64{0, 1, 1, 2, 0},
			SinkStats{Received: 5, Unique: 3, Duplicates: 2, Highest: 2}},
		{"late arrival", []uint64{0, 1, 3, 4, 2},
			SinkStats{Received: 5, Unique: 5, Reordered: 1, Highest: 4}},
		{"late then duplicate", []uint64{0, 2, 1, 1},
			SinkStats{Received: 4, Unique: 3, Reordered: 1, Duplicates: 1, Highest: 2}},
		{"late beyond window", append(seqRange(1, ReorderWindow+10), 0),
			SinkStats{Received: ReorderWindow + 10, Unique: ReorderWindow + 10, Reordered: 1, TooLate: 1, Highest: ReorderWindow + 9}},
		{"edge of window", append(seqRange(1, ReorderWindow), 0, 0),
			SinkStats{Received: ReorderWindow + 1, Unique: ReorderWindow, Reordered: 1, Duplicates: 1, Highest: ReorderWindow - 1}},
		{"jump beyond window then late inside", []uint64{0, 10000, 9999, 9999, 5000},
			SinkStats{Received: 5, Unique: 4, Reordered: 2, TooLate: 1, Duplicates: 1, Lost: 9997, Highest: 10000}},
	} {
		var s Sink
		observeAll(&s, tc.seqs...)
		tc.want.Bytes = 60 * tc.want.Received
		if got := s.Stats(); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

// TestSinkWindowSlides checks that bits left over from sequence numbers
// that slid out of the window are cleared: after a gap, the missing numbers
// arriving late must count as reordered, not as duplicates.
func TestSinkWindowSlides(t *testing.T) {
	for _, gap := range []uint64{2, 63, 64, 65, 100, 1000, ReorderWindow - 1, ReorderWindow, ReorderWindow + 1} {
		var s Sink
		// Fill the whole window, twice round.
		var q uint64
		for ; q < 2*ReorderWindow; q++ {
			s.Observe(q, 0, 0, 60)
		}
		// Skip gap-1 numbers, then let the ones still in the window arrive.
		next := q + gap
		s.Observe(next, 0, 0, 60)
		late := 0
		for m := q; m < next; m++ {
			s.Observe(m, 0, 0, 60)
			late++
		}
		st := s.Stats()
		if st.Duplicates != 0 || st.Reordered != uint64(late) || st.Lost != 0 {
			t.Errorf("gap %d: %+v", gap, st)
		}
		wantTooLate := uint64(0)
		if gap > ReorderWindow-1 {
			wantTooLate = gap - (ReorderWindow - 1)
		}
		if st.TooLate != wantTooLate {
			t.Errorf("gap %d: TooLate %d, want %d", gap, st.TooLate, wantTooLate)
		}
	}
}

func TestSinkMalformedAndLatency(t *testing.T) {
	tm := mustTemplate(t, DefaultFlowConfig(128))
	var s Sink
	buf := make([]byte, 128)
	for q := uint64(0); q < 100; q++ {
		tm.Fill(buf, q, 1000)
		if !s.ObserveFrame(buf, 1000+int64(q)*10) {
			t.Fatal("ObserveFrame rejected a good frame")
		}
	}
	if s.ObserveFrame(buf[:40], 0) || s.ObserveFrame([]byte("garbage"), 0) {
		t.Fatal("ObserveFrame accepted a bad frame")
	}
	st := s.Stats()
	if st.Received != 100 || st.Bytes != 12800 || st.Malformed != 2 || st.Lost != 0 || st.Highest != 99 {
		t.Fatalf("stats %+v", st)
	}
	h := s.Latency()
	if h.Count() != 100 || h.Min() != 0 || h.Max() != 990*time.Nanosecond || h.Mean() != 495*time.Nanosecond {
		t.Fatalf("latency count %d min %v max %v mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
	s.Reset()
	if s.Stats() != (SinkStats{}) || s.Latency().Count() != 0 {
		t.Fatal("Reset left state behind")
	}
}

package engine_test

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
)

// TestRearmRaceStrandsNothing lands frames in small, irregular bursts so that
// many land just as the softirq finds the ring empty and re-arms. If a frame
// could land between "the poll found nothing" and "the interrupt is armed"
// without raising it, it would sit on the ring with the interrupt masked
// and the count below would never be reached.
func TestRearmRaceStrandsNothing(t *testing.T) {
	total := 100_000
	if testing.Short() || engine.RaceEnabled {
		total = 20_000
	}
	for _, zc := range []bool{false, true} {
		pr, err := wire.NewPair(wire.Config{RingSize: 256, ZeroCopy: zc})
		if err != nil {
			t.Fatal(err)
		}
		src, _ := engine.NewPool("race-src", 2048, 64)
		w, _ := engine.NewWorker(engine.AnyCore)
		s, err := engine.NewSoftirq(w, engine.SoftirqConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var got atomic.Int64
		_, err = s.Add(engine.NAPIConfig{Port: pr.Ports[1], Queue: 0, Handler: func(w *engine.Worker, _ engine.QueueRef, pkts []engine.Mbuf) {
			got.Add(int64(len(pkts)))
			w.Caches.FreeBulk(pkts)
		}})
		if err != nil {
			t.Fatal(err)
		}
		runErr := make(chan error, 1)
		if err := w.Start(func(w *engine.Worker) { runErr <- s.Run() }); err != nil {
			t.Fatal(err)
		}
		var cs engine.Caches
		rng := rand.New(rand.NewPCG(1, 2))
		var burst [8]engine.Mbuf
		sent := 0
		for sent < total {
			// Wait for the previous burst to be handled, then land the
			// next one at once: it lands while the softirq is finishing
			// the poll that found the ring empty, in the re-arm window.
			// A burst stranded on a masked queue is never handled.
			waitUntil := time.Now().Add(2 * time.Second)
			for got.Load() < int64(sent) {
				if time.Now().After(waitUntil) {
					t.Fatalf("zero-copy %v: %d frames sent, %d handled after 2s: frames stranded on a masked queue",
						zc, sent, got.Load())
				}
				runtime.Gosched()
			}
			k := 1 + rng.IntN(len(burst))
			k = min(k, total-sent)
			if cs.AllocBulk(src, burst[:k]) != nil {
				runtime.Gosched() // all in flight: let the softirq catch up
				continue
			}
			for _, m := range burst[:k] {
				m.Append(60)
			}
			pr.Ports[0].TxBurst(0, burst[:k])
			pr.Ports[0].ReapTx(0)
			sent += k
			switch rng.IntN(8) {
			case 0:
				runtime.Gosched()
			case 1:
				for i := rng.IntN(2000); i > 0; i-- { // spin a little
				}
			}
		}
		// Frames dropped on a full ring are counted; everything else must
		// be received.
		deadline := time.Now().Add(10 * time.Second)
		want := func() int64 {
			return int64(total) - int64(pr.Ports[1].RxStats(0).Drops[engine.DropRingFull])
		}
		for got.Load() < want() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got.Load() != want() {
			t.Fatalf("zero-copy %v: received %d of %d frames: frames stranded on a masked queue (%d waiting, armed %v)",
				zc, got.Load(), want(), pr.Ports[1].Pending(), pr.Ports[1].RxStats(0).Interrupts)
		}
		w.Stop()
		if err := <-runErr; err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		t.Logf("zero-copy %v: %d frames, %d interrupts, %d wake-ups, %d polls, %d raised at re-arm",
			zc, got.Load(), pr.Ports[1].RxStats(0).Interrupts, st.Wakeups, st.Polls, pr.Ports[1].ArmRaised(0))
		if got.Load() != int64(total) || st.Processed != uint64(got.Load()) || st.Wakeups == 0 {
			t.Fatalf("softnet stats %+v", st)
		}
		cs.Flush()
		for _, p := range pr.Ports {
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

package engine

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine/ring"
)

// loopPort is a one-queue port whose transmit ring is its own receive ring,
// with room for a fixed number of frames: enough to drive the poll loop.
type loopPort struct {
	r       *ring.SPSC[Mbuf]
	rx, tx  atomic.Uint64
	dropped atomic.Uint64
}

func newLoopPort(t testing.TB, size int) *loopPort {
	r, err := ring.NewSPSC[Mbuf](size)
	if err != nil {
		t.Fatal(err)
	}
	return &loopPort{r: r}
}

func (p *loopPort) Info() PortInfo {
	return PortInfo{Name: "loop", Driver: "test", RxQueues: 1, TxQueues: 1, RxRingSize: p.r.Cap(), TxRingSize: p.r.Cap()}
}
func (p *loopPort) RxBurst(q int, pkts []Mbuf) int {
	n := p.r.DequeueBurst(pkts)
	p.rx.Add(uint64(n))
	return n
}
func (p *loopPort) TxBurst(q int, pkts []Mbuf) int {
	n := p.r.EnqueueBurst(pkts)
	p.tx.Add(uint64(n))
	return n
}
func (p *loopPort) SetTxCaches(int, *Caches)   {}
func (p *loopPort) RxStats(int) QueueStats     { return QueueStats{Packets: p.rx.Load()} }
func (p *loopPort) TxStats(int) QueueStats     { return QueueStats{Packets: p.tx.Load()} }
func (p *loopPort) SetRxInterrupt(int, func()) {}
func (p *loopPort) ArmRx(int)                  {}
func (p *loopPort) DisarmRx(int)               {}
func (p *loopPort) Close() error               { return nil }

func TestBadCoreIsRefused(t *testing.T) {
	cores, err := Cores()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{-2, 4096, cores[len(cores)-1] + 1} {
		_, err := NewWorker(c)
		if err == nil {
			t.Fatalf("core %d accepted", c)
		}
		if !strings.Contains(err.Error(), FormatCores(cores)) {
			t.Fatalf("error %q does not name the usable cores %s", err, FormatCores(cores))
		}
	}
}

func TestFormatCores(t *testing.T) {
	if s := FormatCores([]int{3, 0, 1, 2, 6, 8, 9}); s != "0-3,6,8-9" {
		t.Fatalf("FormatCores = %q", s)
	}
}

func TestWorkerIsPinned(t *testing.T) {
	cores, _ := Cores()
	for _, c := range cores {
		w, err := NewWorker(c)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []int, 1)
		if err := w.Start(func(w *Worker) {
			cs, _ := PinnedCores()
			got <- cs
		}); err != nil {
			t.Fatal(err)
		}
		if cs := <-got; len(cs) != 1 || cs[0] != c {
			t.Fatalf("worker for core %d runs on cores %v", c, cs)
		}
		if w.Core() != c {
			t.Fatalf("Core() = %d, want %d", w.Core(), c)
		}
		w.Stop()
	}
}

func TestPollRunsToCompletionAndCounts(t *testing.T) {
	pool := newTestPool(t, 1024, 32)
	port := newLoopPort(t, 1024)
	var cs Caches
	const total = 1000
	for i := 0; i < total; i++ {
		m, _ := cs.Alloc(pool)
		b, _ := m.Append(8)
		b[0] = byte(i)
		port.TxBurst(0, []Mbuf{m})
	}
	cs.Flush()
	var seen atomic.Int64
	w, err := NewWorker(AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	timerRuns := 0
	tickRuns := 0
	err = w.Start(func(w *Worker) {
		w.Every(int64(time.Millisecond), func(int64) { timerRuns++ })
		w.Poll(PollConfig{
			Rx: []QueueRef{{Port: port, Queue: 0}},
			Handler: func(w *Worker, from QueueRef, pkts []Mbuf) {
				seen.Add(int64(len(pkts)))
				w.Caches.FreeBulk(pkts)
			},
			Tick: func(*Worker, int) { tickRuns++ },
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for seen.Load() < total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	w.Stop()
	s := w.Stats()
	if seen.Load() != total || s.Packets != total {
		t.Fatalf("handled %d, counted %d, want %d", seen.Load(), s.Packets, total)
	}
	// 1000 frames in bursts of 32: 31 full bursts and one of 8.
	if s.BurstHist[Burst] != 31 || s.BurstHist[8] != 1 {
		t.Fatalf("burst histogram: full %d, of 8 %d", s.BurstHist[Burst], s.BurstHist[8])
	}
	if s.EmptyPolls == 0 || s.EmptyPolls != s.BurstHist[0] || s.Polls != s.Rounds {
		t.Fatalf("polls %d rounds %d empty %d hist0 %d", s.Polls, s.Rounds, s.EmptyPolls, s.BurstHist[0])
	}
	if timerRuns == 0 || uint64(timerRuns) != s.Timers || uint64(tickRuns) != s.Rounds {
		t.Fatalf("timer ran %d (counted %d), tick %d of %d rounds", timerRuns, s.Timers, tickRuns, s.Rounds)
	}
	if pool.Available() != pool.Size() {
		t.Fatalf("pool has %d of %d back after the worker stopped", pool.Available(), pool.Size())
	}
}

func TestTxBufferDropsWhatThePortRefuses(t *testing.T) {
	pool := newTestPool(t, 256, 32)
	port := newLoopPort(t, 64)
	w, _ := NewWorker(AnyCore)
	done := make(chan PollStats, 1)
	w.Start(func(w *Worker) {
		tx := w.TxBuffer(port, 0)
		for i := 0; i < 100; i++ {
			m, _ := w.Caches.Alloc(pool)
			tx.Add(m)
		}
		w.FlushTx()
		done <- w.stats
	})
	s := <-done
	w.Stop()
	if s.TxPackets != 64 || s.TxDropped != 36 {
		t.Fatalf("sent %d dropped %d, want 64 and 36", s.TxPackets, s.TxDropped)
	}
	var pkts [64]Mbuf
	n := port.RxBurst(0, pkts[:])
	Free(pkts[0])
	var cs Caches
	cs.FreeBulk(pkts[1:n])
	cs.Flush()
}

func TestIdleSpinYieldYields(t *testing.T) {
	port := newLoopPort(t, 64)
	w, _ := NewWorker(AnyCore)
	w.Start(func(w *Worker) {
		w.Poll(PollConfig{
			Rx:        []QueueRef{{Port: port}},
			Handler:   func(*Worker, QueueRef, []Mbuf) {},
			Idle:      IdleSpinYield,
			SpinPolls: 10,
		})
	})
	time.Sleep(20 * time.Millisecond)
	w.Stop()
	if s := w.Stats(); s.Yields == 0 || s.Yields > s.Rounds-10 {
		t.Fatalf("spin-yield: %d yields in %d rounds", s.Yields, s.Rounds)
	}
	if _, err := ParseIdle("nap"); err == nil {
		t.Fatal("unknown idle strategy accepted")
	}
}

func TestPollRefusesNothingToDo(t *testing.T) {
	w, _ := NewWorker(AnyCore)
	errc := make(chan error, 1)
	w.Start(func(w *Worker) { errc <- w.Poll(PollConfig{}) })
	if err := <-errc; err == nil {
		t.Fatal("Poll with no queues and no tick returned no error")
	}
	w.Stop()
}

func TestTimerOrder(t *testing.T) {
	var h timerHeap
	var got []int
	h.add(30, 0, func(int64) { got = append(got, 3) })
	h.add(10, 0, func(int64) { got = append(got, 1) })
	h.add(10, 0, func(int64) { got = append(got, 2) })
	h.add(15, 10, func(int64) { got = append(got, 9) })
	h.run(5)
	if len(got) != 0 {
		t.Fatal("timer ran early")
	}
	h.run(30)
	// Deadlines in order; ties in the order set; the periodic one once.
	want := []int{1, 2, 9, 3}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
	if due, _ := h.next(); due != 40 {
		t.Fatalf("periodic timer next due %d, want 40 (skipping missed periods)", due)
	}
}

func TestWorkerCPUTime(t *testing.T) {
	spin, _ := NewWorker(AnyCore)
	sleep, _ := NewWorker(AnyCore)
	spin.Start(func(w *Worker) {
		for !w.Stopped() {
		}
	})
	sleep.Start(func(w *Worker) { <-w.stopc })
	time.Sleep(200 * time.Millisecond)
	a, b := spin.CPUTime(), sleep.CPUTime()
	spin.Stop()
	sleep.Stop()
	if a < 10*time.Millisecond || b > 20*time.Millisecond {
		t.Fatalf("spinning worker used %v, sleeping one %v, over 200ms", a, b)
	}
}

// slowPort receives nothing, slowly: a round takes a millisecond, so the
// loop would publish its counters only every second or so.
type slowPort struct{ loopPort }

func (p *slowPort) RxBurst(int, []Mbuf) int { time.Sleep(time.Millisecond); return 0 }

func TestFreshStatsSeesSlowRoundsThatStatsHasNotYet(t *testing.T) {
	port := &slowPort{*newLoopPort(t, 8)}
	w, _ := NewWorker(AnyCore)
	if s := w.FreshStats(time.Second); s.Polls != 0 {
		t.Fatalf("a worker not polling: %d polls", s.Polls)
	}
	errc := make(chan error, 1)
	w.Start(func(w *Worker) {
		errc <- w.Poll(PollConfig{Rx: []QueueRef{{Port: port, Queue: 0}}, Handler: func(*Worker, QueueRef, []Mbuf) {}})
	})
	time.Sleep(50 * time.Millisecond)
	stale, fresh := w.Stats(), w.FreshStats(time.Second)
	if stale.Polls != 0 {
		t.Fatalf("Stats published %d polls before %d rounds", stale.Polls, publishEvery)
	}
	if fresh.Polls == 0 || fresh.EmptyPolls != fresh.Polls {
		t.Fatalf("FreshStats: %d polls, %d empty; want some, all empty", fresh.Polls, fresh.EmptyPolls)
	}
	time.Sleep(20 * time.Millisecond)
	if again := w.FreshStats(time.Second); again.Polls <= fresh.Polls {
		t.Fatalf("FreshStats did not move: %d then %d polls", fresh.Polls, again.Polls)
	}
	w.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s := w.FreshStats(time.Second); s.Polls != w.Stats().Polls {
		t.Fatalf("after Stop: fresh %d, published %d", s.Polls, w.Stats().Polls)
	}
}

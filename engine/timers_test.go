package engine

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTimers is one timer that any goroutine may arm, as a shard's wheel
// that senders arm under the shard's lock.
type fakeTimers struct {
	mu    sync.Mutex
	when  int64
	armed bool
	fired []int64 // when Advance fired it
	nexts atomic.Int64
}

func (f *fakeTimers) arm(d time.Duration) (when int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.when, f.armed = Nanotime()+int64(d), true
	return f.when
}

func (f *fakeTimers) Next() (int64, bool) {
	f.nexts.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.when, f.armed
}

func (f *fakeTimers) Advance(now int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed || now < f.when {
		return 0
	}
	f.armed = false
	f.fired = append(f.fired, now)
	return 1
}

func (f *fakeTimers) firings() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.fired...)
}

// waitFired waits up to d for the timer to have fired n times.
func (f *fakeTimers) waitFired(t *testing.T, n int, d time.Duration) []int64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := f.firings()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer fired %d times in %v, want %d", len(got), d, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPollAdvancesItsTimers(t *testing.T) {
	port := newLoopPort(t, 64)
	var tm fakeTimers
	first := tm.arm(5 * time.Millisecond)
	w, err := NewWorker(AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	w.SetTimers(&tm)
	err = w.Start(func(w *Worker) {
		w.Poll(PollConfig{
			Rx:      []QueueRef{{Port: port}},
			Handler: func(w *Worker, _ QueueRef, pkts []Mbuf) { w.Caches.FreeBulk(pkts) },
			Idle:    IdleSpinYield,
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	got := tm.waitFired(t, 1, 5*time.Second)
	// Armed again from this goroutine: the loop reads Next every round.
	second := tm.arm(5 * time.Millisecond)
	got = tm.waitFired(t, 2, 5*time.Second)
	w.Stop()
	if got[0] < first || got[1] < second {
		t.Fatalf("fired at %v, before the deadlines %d and %d", got, first, second)
	}
	if s := w.Stats(); s.Timers != 2 {
		t.Fatalf("PollStats.Timers %d, want 2", s.Timers)
	}
}

// startIdleSoftirq runs a softirq over a queue that never receives a frame,
// with tm as its worker's Timers (if not nil). before runs on the worker
// first.
func startIdleSoftirq(t *testing.T, tm Timers, before func(w *Worker)) *Softirq {
	t.Helper()
	w, err := NewWorker(AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSoftirq(w, SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := newIRQPort(t, 1, 64)
	if _, err := s.Add(NAPIConfig{Port: p, Handler: func(w *Worker, _ QueueRef, pkts []Mbuf) { w.Caches.FreeBulk(pkts) }}); err != nil {
		t.Fatal(err)
	}
	if tm != nil {
		w.SetTimers(tm)
	}
	if err := w.Start(func(w *Worker) {
		if before != nil {
			before(w)
		}
		s.Run()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return s
}

// waitParked waits until the softirq has gone to sleep n times.
func waitParked(t *testing.T, s *Softirq, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Parks < n {
		if time.Now().After(deadline) {
			t.Fatalf("the softirq parked %d times in 5s, want %d", s.Stats().Parks, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// With no traffic at all, a sleeping softirq wakes for its next timer: the
// Timers' and the worker's own (After).
func TestAnIdleSoftirqFiresItsTimersWithNoTraffic(t *testing.T) {
	var tm fakeTimers
	start := time.Now()
	when := tm.arm(50 * time.Millisecond)
	var after atomic.Int64
	s := startIdleSoftirq(t, &tm, func(w *Worker) {
		w.After(int64(30*time.Millisecond), func(now int64) { after.Store(now) })
	})
	got := tm.waitFired(t, 1, 5*time.Second)
	if got[0] < when || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("the timer due in 50ms fired after %v", time.Since(start))
	}
	if after.Load() == 0 {
		t.Fatal("the worker's After timer, due before, has not fired")
	}
	st := s.Stats()
	if st.Processed != 0 || st.Rounds != 0 {
		t.Fatalf("softnet %+v: there was no traffic", st)
	}
	if st.Wakeups < 1 {
		t.Fatalf("fired with %d wake-ups counted", st.Wakeups)
	}
}

// A timer armed from another goroutine earlier than the one the softirq
// sleeps towards fires once Kick wakes it to read the deadline again; no
// sooner, since nothing else wakes it.
func TestKickMakesANewlyArmedEarlierTimerFire(t *testing.T) {
	var tm fakeTimers
	tm.arm(time.Hour)
	s := startIdleSoftirq(t, &tm, nil)
	waitParked(t, s, 1)
	tm.arm(10 * time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if n := len(tm.firings()); n != 0 {
		t.Fatalf("fired %d times before the Kick, while the softirq slept towards an hour", n)
	}
	kicked := time.Now()
	s.Kick()
	tm.waitFired(t, 1, 5*time.Second)
	if d := time.Since(kicked); d > time.Second {
		t.Fatalf("fired %v after the Kick", d)
	}
	// The Kick was the one wake-up (the timer was due by then); idle again
	// with nothing armed, it parks and stays parked.
	waitParked(t, s, 2)
	time.Sleep(20 * time.Millisecond)
	if st := s.Stats(); st.Parks != 2 || st.Wakeups != 1 {
		t.Fatalf("parks %d wake-ups %d, want 2 and 1", st.Parks, st.Wakeups)
	}
}

// An idle softirq sleeps for as long as nothing happens, with no periodic
// wake-up: none with no Timers, none with nothing armed, none while the
// next timer is an hour away.
func TestAnIdleSoftirqDoesNotWakeUp(t *testing.T) {
	for _, c := range []struct {
		name string
		arm  time.Duration // 0: nothing armed
		set  bool
	}{{"no timers", 0, false}, {"nothing armed", 0, true}, {"an hour away", time.Hour, true}} {
		t.Run(c.name, func(t *testing.T) {
			tm := &fakeTimers{}
			if c.arm > 0 {
				tm.arm(c.arm)
			}
			var timers Timers
			if c.set {
				timers = tm
			}
			s := startIdleSoftirq(t, timers, nil)
			waitParked(t, s, 1)
			time.Sleep(200 * time.Millisecond)
			if st := s.Stats(); st.Parks != 1 || st.Wakeups != 0 {
				t.Fatalf("over 200ms idle: %d parks, %d wake-ups; want 1 and 0", st.Parks, st.Wakeups)
			}
			if n := tm.nexts.Load(); n > 4 {
				t.Fatalf("Next was called %d times while idle", n)
			}
		})
	}
}

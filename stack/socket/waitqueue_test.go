package socket

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsWhenReady(t *testing.T) {
	var c Counters
	q := NewWaitQueue(&c)
	var ready atomic.Bool
	done := make(chan error, 1)
	go func() { done <- q.Wait(ready.Load, time.Time{}, false) }()
	for q.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	ready.Store(true)
	if n := q.Wake(); n != 1 {
		t.Fatalf("woke %d", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Parks.Load() != 1 || c.Wakeups.Load() != 1 {
		t.Fatalf("parks %d wakeups %d", c.Parks.Load(), c.Wakeups.Load())
	}
}

func TestWaitDeadlineAndClose(t *testing.T) {
	q := NewWaitQueue(nil)
	start := time.Now()
	err := q.Wait(func() bool { return false }, time.Now().Add(30*time.Millisecond), false)
	if !errors.Is(err, ErrTimeout) || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
	if q.Waiters() != 0 {
		t.Fatal("a timed-out waiter stayed on the queue")
	}
	done := make(chan error, 1)
	go func() { done <- q.Wait(func() bool { return false }, time.Time{}, true) }()
	for q.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	q.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if err := q.Wait(func() bool { return false }, time.Time{}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("wait on a closed queue: %v", err)
	}
}

// TestExclusiveWakesOne: one Wake rouses one exclusive sleeper, however many
// sleep, and every non-exclusive one.
func TestExclusiveWakesOne(t *testing.T) {
	q := NewWaitQueue(nil)
	var tokens atomic.Int32
	take := func() bool {
		for {
			n := tokens.Load()
			if n == 0 {
				return false
			}
			if tokens.CompareAndSwap(n, n-1) {
				return true
			}
		}
	}
	var woke atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q.Wait(take, time.Time{}, true) == nil {
				woke.Add(1)
			}
		}()
	}
	for q.Waiters() < 4 {
		time.Sleep(time.Millisecond)
	}
	tokens.Add(1)
	if n := q.Wake(); n != 1 {
		t.Fatalf("one event woke %d exclusive waiters", n)
	}
	for woke.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if woke.Load() != 1 || q.Waiters() != 3 {
		t.Fatalf("%d returned, %d still waiting", woke.Load(), q.Waiters())
	}
	q.Close()
	wg.Wait()
}

// TestNoLostWakeups races producers' Wake against consumers' checks: every
// item produced must be consumed, with nobody left asleep.
func TestNoLostWakeups(t *testing.T) {
	const items = 20000
	q := NewWaitQueue(nil)
	var avail, consumed atomic.Int64
	take := func() bool {
		for {
			n := avail.Load()
			if n == 0 {
				return false
			}
			if avail.CompareAndSwap(n, n-1) {
				return true
			}
		}
	}
	var wg sync.WaitGroup
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for consumed.Load() < items {
				err := q.Wait(take, time.Now().Add(5*time.Second), c%2 == 0)
				if err != nil {
					return
				}
				consumed.Add(1)
			}
		}()
	}
	for i := 0; i < items; i++ {
		avail.Add(1)
		q.Wake()
	}
	deadline := time.Now().Add(10 * time.Second)
	for consumed.Load() < items && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if consumed.Load() != items {
		t.Fatalf("consumed %d of %d: a wake-up was lost", consumed.Load(), items)
	}
	q.Close()
	wg.Wait()
}

func TestWakeRousesEveryNonExclusiveWaiterAndOneExclusive(t *testing.T) {
	q := NewWaitQueue(nil)
	var open atomic.Bool
	var back atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q.Wait(open.Load, time.Time{}, i >= 2) == nil {
				back.Add(1)
			}
		}()
	}
	eventually(t, "five waiters sleep", func() bool { return q.Waiters() == 5 })
	open.Store(true)
	if n := q.Wake(); n != 3 {
		t.Fatalf("Wake woke %d of 2 non-exclusive and 3 exclusive waiters, want 3", n)
	}
	if n := q.WakeAll(); n != 2 {
		t.Fatalf("WakeAll woke %d of the 2 exclusive waiters left", n)
	}
	wg.Wait()
	if back.Load() != 5 {
		t.Fatalf("%d waiters returned", back.Load())
	}
}

func TestPassOnWakesTheNextExclusiveWaiterOnlyWhileSomethingRemains(t *testing.T) {
	var c Counters
	q := NewWaitQueue(&c)
	var open atomic.Bool
	done := make(chan struct{}, 2)
	for i := 0; i < 2; i++ {
		go func() {
			q.Wait(open.Load, time.Time{}, true)
			done <- struct{}{}
		}()
	}
	eventually(t, "two waiters sleep", func() bool { return q.Waiters() == 2 })
	if q.PassOn(open.Load) {
		t.Fatal("PassOn woke a waiter with nothing there")
	}
	open.Store(true)
	if !q.PassOn(open.Load) {
		t.Fatal("PassOn woke nobody")
	}
	<-done
	stays(t, 20*time.Millisecond, "the other waiter sleeps on", func() bool { return q.Waiters() == 1 })
	if c.Handoffs.Load() != 1 || c.ExclusiveWakeups.Load() != 1 {
		t.Fatalf("handoffs %d exclusive wake-ups %d", c.Handoffs.Load(), c.ExclusiveWakeups.Load())
	}
	q.Close()
	<-done
}

// A waiter whose deadline passes just as a Wake chooses it still counts as
// woken and re-checks: the wake-up is not lost with it.
func TestAWaiterChosenAsItsDeadlinePassesTakesWhatItWasWokenFor(t *testing.T) {
	for i := 0; i < 300; i++ {
		q := NewWaitQueue(nil)
		var tokens atomic.Int32
		take := func() bool { return tokens.CompareAndSwap(1, 0) }
		got := make(chan error, 1)
		go func() { got <- q.Wait(take, time.Now().Add(time.Duration(i%5)*100*time.Microsecond), true) }()
		time.Sleep(time.Duration(i%7) * 50 * time.Microsecond)
		tokens.Store(1)
		chose := q.Wake()
		if err := <-got; chose == 1 && err != nil {
			t.Fatalf("round %d: chosen by a wake-up, yet returned %v with the token left", i, err)
		}
	}
}

// A consumer loops on Wait until it fails, as the stress test's readers do.
// One that is not asleep when the queue closes, and whose condition the
// close makes true for ever (a hang-up reads as ready), must still be told
// ErrClosed, or it spins on a nil Wait that nothing will ever consume.
func TestAWaitAfterCloseFailsEvenWhenItsConditionHolds(t *testing.T) {
	q := NewWaitQueue(nil)
	var closed atomic.Bool
	ready := func() bool { return closed.Load() }
	closed.Store(true) // the socket's hang-up, then its wait queue's
	q.Close()
	done := make(chan int, 1)
	go func() {
		n := 0
		for n < 1000 && q.Wait(ready, time.Time{}, true) == nil {
			n++ // nothing to consume: a hang-up stays
		}
		done <- n
	}()
	if n := <-done; n != 0 {
		t.Fatalf("Wait on a closed queue returned nil %d times, want ErrClosed at once", n)
	}
	for _, exclusive := range []bool{false, true} {
		if err := q.Wait(func() bool { return true }, time.Now().Add(time.Hour), exclusive); !errors.Is(err, ErrClosed) {
			t.Fatalf("exclusive %v: Wait on a closed queue with its condition true: %v, want ErrClosed", exclusive, err)
		}
	}
}

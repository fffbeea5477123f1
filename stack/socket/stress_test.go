package socket

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStressEveryEventIsSeenAndNobodySleepsForever races a producer of
// datagrams, errors and send-buffer room against every kind of consumer:
// exclusive and non-exclusive blocking readers, exclusive blocking writers,
// level- and edge-triggered pollers with two waiters each, and a reader that
// never blocks. Every datagram must be read once, every error and every
// unit of room taken, within a bound; then a hang-up must bring everyone
// back. Run it under -race.
func TestStressEveryEventIsSeenAndNobodySleepsForever(t *testing.T) {
	items, rooms := 20000, 4000
	if testing.Short() {
		items, rooms = 2000, 400
	}
	var c Counters
	s := newQueueSock(&c)
	var (
		seen              = make([]atomic.Int32, items)
		read, wrote, errs atomic.Int64
		raised            atomic.Int64
		stop              atomic.Bool
		wg                sync.WaitGroup
	)
	takeErr := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.err {
			return false
		}
		s.err = false
		errs.Add(1)
		return true
	}
	takeItem := func() bool {
		v, ok := s.take()
		if ok {
			seen[v].Add(1)
			read.Add(1)
		}
		return ok
	}
	takeRoom := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.room == 0 {
			return false
		}
		s.room--
		wrote.Add(1)
		return true
	}
	writable := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.room > 0 || s.closed
	}

	// Blocking readers: three exclusive, one not. Each loops until Wait
	// fails: the hang-up makes readable true for ever, and only the closed
	// queue's ErrClosed ends the loop of one that was awake at the close.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.n.Readers.Wait(s.readable, time.Time{}, i > 0) == nil {
				if takeErr() || takeItem() {
					s.n.Readers.PassOn(s.readable)
				}
			}
		}()
	}
	// Blocking writers, exclusive.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.n.Writers.Wait(writable, time.Time{}, true) == nil {
				if takeRoom() {
					s.n.Writers.PassOn(writable)
				}
			}
		}()
	}
	// Pollers: a level-triggered one whose waiters take one datagram per
	// report, an edge-triggered one whose waiters drain.
	level, edge := NewPoller(&c), NewPoller(&c)
	level.Add(s, Readable, 1)
	edge.Add(s, Readable|EdgeTriggered, 2)
	for _, p := range []*Poller{level, edge, level, edge} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := make([]Event, 2)
			for {
				n, err := p.Wait(ev, -1)
				if err != nil {
					return
				}
				if n == 0 || ev[0].Events&Hangup != 0 {
					continue
				}
				if ev[0].Data == 1 {
					_ = takeErr() || takeItem()
					continue
				}
				for takeErr() || takeItem() {
				}
			}
		}()
	}
	// A reader that never blocks.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if !takeItem() {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	given := 0 // units of room handed to writers
	for v := 0; v < items; {
		burst := min(1+rng.IntN(8), items-v)
		for range burst {
			s.put(v)
			v++
		}
		s.n.DataReady()
		switch rng.IntN(16) {
		case 0:
			s.mu.Lock()
			if !s.err {
				s.err = true
				raised.Add(1)
			}
			s.mu.Unlock()
			s.n.ErrorReport()
		case 1, 2:
			if given < rooms {
				n := min(1+rng.IntN(4), rooms-given)
				given += n
				s.set(func(s *queueSock) { s.room += n })
				s.n.WriteSpace()
			}
		case 3:
			time.Sleep(20 * time.Microsecond)
		}
	}
	// The rest of the room, so every writer has something to finish on.
	if given < rooms {
		s.set(func(s *queueSock) { s.room += rooms - given })
		s.n.WriteSpace()
	}

	deadline := time.Now().Add(20 * time.Second)
	for read.Load() < int64(items) || wrote.Load() < int64(rooms) || errs.Load() < raised.Load() {
		if time.Now().After(deadline) {
			t.Logf("goroutines:\n%s", allStacks())
			t.Fatalf("stuck: read %d of %d (%d queued), wrote %d of %d, errors %d of %d; asleep: %d readers, %d writers, %d+%d poller waiters",
				read.Load(), items, s.queued(), wrote.Load(), rooms, errs.Load(), raised.Load(),
				s.n.Readers.Waiters(), s.n.Writers.Waiters(), level.waiters.Waiters(), edge.waiters.Waiters())
		}
		time.Sleep(time.Millisecond)
	}
	for v := range seen {
		if n := seen[v].Load(); n != 1 {
			t.Fatalf("datagram %d read %d times", v, n)
		}
	}

	// A hang-up brings every sleeper back.
	stop.Store(true)
	s.set(func(s *queueSock) { s.closed = true })
	s.n.Close()
	level.Close()
	edge.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Logf("asleep: %d readers, %d writers, %d+%d poller waiters\n%s",
			s.n.Readers.Waiters(), s.n.Writers.Waiters(), level.waiters.Waiters(), edge.waiters.Waiters(), allStacks())
		t.Fatal("a sleeper did not come back after the hang-up")
	}
	if w := wrote.Load(); w != int64(rooms) {
		t.Fatalf("wrote %d units of %d", w, rooms)
	}
	t.Logf("parks %d wake-ups %d (exclusive %d) hand-offs %d, errors %d",
		c.Parks.Load(), c.Wakeups.Load(), c.ExclusiveWakeups.Load(), c.Handoffs.Load(), raised.Load())
}

// allStacks returns the stacks of every goroutine, to name a stuck one.
func allStacks() []byte {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

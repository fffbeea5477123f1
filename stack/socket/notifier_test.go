package socket

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWriteSpaceReportsWritableAndWakesABlockedWriter(t *testing.T) {
	s := newQueueSock(nil)
	p := NewPoller(nil)
	defer p.Close()
	p.Add(s, Writable, 9)
	ev := make([]Event, 4)
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("a full send buffer reported %v", ev[0].Events)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- s.n.Writers.Wait(s.writable, time.Time{}, true) }()
	eventually(t, "the writer sleeps", func() bool { return s.n.Writers.Waiters() == 1 })

	// Data arriving is not room to write: the writer sleeps on.
	s.put(1)
	s.n.DataReady()
	stays(t, 10*time.Millisecond, "the writer sleeps through DataReady", func() bool { return s.n.Writers.Waiters() == 1 })
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("a poller asking for Writable reported %v", ev[0].Events)
	}

	s.set(func(s *queueSock) { s.room = 1 })
	s.n.WriteSpace()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Wait(ev, time.Second); n != 1 || ev[0] != (Event{Data: 9, Events: Writable}) {
		t.Fatalf("got %d events %+v, want Writable", n, ev[:n])
	}
}

func TestErrorAndHangupAreReportedWithoutBeingAsked(t *testing.T) {
	s := newQueueSock(nil)
	p := NewPoller(nil)
	defer p.Close()
	p.Add(s, Writable, 3) // nothing to write into, and not asking for errors
	ev := make([]Event, 1)
	read := make(chan error, 1)
	go func() { read <- s.n.Readers.Wait(s.readable, time.Time{}, true) }()
	wrote := make(chan error, 1)
	go func() { wrote <- s.n.Writers.Wait(s.writable, time.Time{}, true) }()
	eventually(t, "a reader and a writer sleep", func() bool {
		return s.n.Readers.Waiters() == 1 && s.n.Writers.Waiters() == 1
	})

	s.set(func(s *queueSock) { s.err = true })
	s.n.ErrorReport()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Wait(ev, time.Second); n != 1 || ev[0].Events != Error {
		t.Fatalf("got %d events %+v, want Error alone", n, ev[:n])
	}

	s.set(func(s *queueSock) { s.err, s.closed = false, true })
	s.n.StateChange()
	if n, _ := p.Wait(ev, time.Second); n != 1 || ev[0].Events != Writable|Hangup {
		t.Fatalf("got %d events %+v, want Writable|Hangup", n, ev[:n])
	}
}

func TestHangupWakesEveryReaderWriterAndPoller(t *testing.T) {
	for _, how := range []string{"StateChange", "Close"} {
		t.Run(how, func(t *testing.T) {
			var c Counters
			s := newQueueSock(&c)
			var wg sync.WaitGroup
			var back atomic.Int32
			sleep := func(q *WaitQueue, cond func() bool, exclusive bool) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := q.Wait(cond, time.Time{}, exclusive)
					if err == nil || errors.Is(err, ErrClosed) {
						back.Add(1)
					}
				}()
			}
			for i := 0; i < 4; i++ {
				sleep(s.n.Readers, s.readable, i > 0)
				sleep(s.n.Writers, s.writable, i > 0)
			}
			pollers := []*Poller{NewPoller(&c), NewPoller(&c)}
			events := make([]Events, len(pollers))
			for i, p := range pollers {
				p.Add(s, Readable, uint64(i)) // asking for neither Hangup nor Writable
				wg.Add(1)
				go func() {
					defer wg.Done()
					ev := make([]Event, 1)
					if n, err := p.Wait(ev, -1); n == 1 && err == nil {
						events[i] = ev[0].Events
						back.Add(1)
					}
				}()
			}
			eventually(t, "everyone sleeps", func() bool {
				return s.n.Readers.Waiters() == 4 && s.n.Writers.Waiters() == 4 &&
					pollers[0].waiters.Waiters() == 1 && pollers[1].waiters.Waiters() == 1
			})
			s.set(func(s *queueSock) { s.closed = true })
			if how == "Close" {
				s.n.Close()
			} else {
				s.n.StateChange()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of 10 sleepers woke", back.Load())
			}
			if back.Load() != 10 {
				t.Fatalf("%d of 10 sleepers came back without error", back.Load())
			}
			for i, ev := range events {
				if ev != Readable|Hangup {
					t.Fatalf("poller %d reported %v, want Readable|Hangup", i, ev)
				}
			}
			for _, p := range pollers {
				p.Close()
			}
		})
	}
}

func TestReadHangupWakesEveryReaderButNoWriterAndIsReportedOnlyWhenAsked(t *testing.T) {
	s := newQueueSock(nil)
	asked, unasked := NewPoller(nil), NewPoller(nil)
	defer asked.Close()
	defer unasked.Close()
	asked.Add(s, Readable|ReadHangup, 1)
	unasked.Add(s, Readable, 2)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.n.Readers.Wait(s.readable, time.Time{}, true) }()
	}
	wrote := make(chan error, 1)
	go func() { wrote <- s.n.Writers.Wait(s.writable, time.Time{}, true) }()
	eventually(t, "three readers and a writer sleep", func() bool {
		return s.n.Readers.Waiters() == 3 && s.n.Writers.Waiters() == 1
	})
	s.set(func(s *queueSock) { s.rdhup = true })
	s.n.Notify(Readable | ReadHangup) // a FIN
	wg.Wait()
	if s.n.Writers.Waiters() != 1 {
		t.Fatal("a read hang-up woke the writer")
	}
	ev := make([]Event, 1)
	if n, _ := asked.Wait(ev, time.Second); n != 1 || ev[0].Events != Readable|ReadHangup {
		t.Fatalf("asking poller got %d %+v", n, ev[:n])
	}
	if n, _ := unasked.Wait(ev, time.Second); n != 1 || ev[0].Events != Readable {
		t.Fatalf("unasking poller got %d %+v", n, ev[:n])
	}
	s.n.Close()
	if err := <-wrote; !errors.Is(err, ErrClosed) {
		t.Fatalf("writer after close: %v", err)
	}
}

func TestOneArrivalWakesOneOfNExclusiveReaders(t *testing.T) {
	const readers = 5
	var c Counters
	s := newQueueSock(&c)
	var got atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.n.Readers.Wait(s.readable, time.Time{}, true) == nil {
				if _, ok := s.take(); ok {
					got.Add(1)
					s.n.Readers.PassOn(s.readable)
				}
			}
		}()
	}
	eventually(t, "every reader sleeps", func() bool { return s.n.Readers.Waiters() == readers })
	s.put(1)
	s.n.DataReady()
	eventually(t, "the datagram is read", func() bool { return got.Load() == 1 })
	eventually(t, "the reader sleeps again", func() bool { return s.n.Readers.Waiters() == readers })
	if c.Wakeups.Load() != 1 || c.ExclusiveWakeups.Load() != 1 {
		t.Fatalf("one datagram made %d wake-ups (%d exclusive), want 1", c.Wakeups.Load(), c.ExclusiveWakeups.Load())
	}
	s.n.Close()
	wg.Wait()
}

// Readers that each want one datagram, and readers that give up once woken,
// all sleep; a burst arrives with one callback, as the stack signals once per
// receive burst. Each taker hands the wake-up on while datagrams remain and
// each quitter hands on the one it took, so every datagram is read, once.
func TestExclusiveReadersReadEveryDatagramOnceAndNoneIsStranded(t *testing.T) {
	const takers, quitters = 8, 4
	var c Counters
	s := newQueueSock(&c)
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < takers+quitters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := s.n.Readers.Wait(s.readable, time.Time{}, true); err != nil {
					return
				}
				if i >= takers { // leaves without consuming
					s.n.Readers.PassOn(s.readable)
					return
				}
				if v, ok := s.take(); ok {
					mu.Lock()
					seen[v]++
					mu.Unlock()
					s.n.Readers.PassOn(s.readable)
					return
				}
			}
		}()
	}
	eventually(t, "every reader sleeps", func() bool { return s.n.Readers.Waiters() == takers+quitters })
	for v := 0; v < takers; v++ {
		s.put(v)
	}
	s.n.DataReady()
	eventually(t, "every datagram is read", func() bool { return s.queued() == 0 })
	mu.Lock()
	for v := 0; v < takers; v++ {
		if seen[v] != 1 {
			t.Errorf("datagram %d read %d times", v, seen[v])
		}
	}
	mu.Unlock()
	s.n.Close()
	wg.Wait()
	// One callback woke one reader; every other taker was handed on to.
	if h := c.Handoffs.Load(); h < takers-1 {
		t.Fatalf("%d hand-offs for %d takers", h, takers)
	}
}

// TestDataReadyWithNobodyWaitingAllocatesNothingAndTakesNoLock: the
// per-datagram callback on a socket nobody waits on is two atomic loads.
func TestDataReadyWithNobodyWaitingAllocatesNothingAndTakesNoLock(t *testing.T) {
	s := newQueueSock(nil)
	if a := testing.AllocsPerRun(1000, s.n.DataReady); a != 0 {
		t.Fatalf("DataReady allocates %v per call", a)
	}
	if a := testing.AllocsPerRun(1000, s.n.WriteSpace); a != 0 {
		t.Fatalf("WriteSpace allocates %v per call", a)
	}
	// Every lock it could take, held: it must still return.
	s.n.Readers.mu.Lock()
	s.n.Writers.mu.Lock()
	s.n.mu.Lock()
	done := make(chan struct{})
	go func() {
		s.n.DataReady()
		s.n.WriteSpace()
		s.n.ErrorReport()
		s.n.Readers.PassOn(func() bool { return true })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a callback with nobody waiting blocked on a lock")
	}
	s.n.mu.Unlock()
	s.n.Writers.mu.Unlock()
	s.n.Readers.mu.Unlock()

	// Watched by a poller, a socket already listed costs no allocation
	// either.
	p := NewPoller(nil)
	defer p.Close()
	p.Add(s, Readable, 1)
	s.put(1)
	s.n.DataReady()
	if a := testing.AllocsPerRun(1000, s.n.DataReady); a != 0 {
		t.Fatalf("DataReady on a watched socket allocates %v per call", a)
	}
	ev := make([]Event, 4)
	if a := testing.AllocsPerRun(1000, func() { s.n.DataReady(); p.Wait(ev, 0) }); a != 0 {
		t.Fatalf("a callback and a harvest allocate %v", a)
	}
}

// Close makes every later wait of a reader or writer fail, even when the
// socket reads as ready (it is hung up), so that a loop that waits until an
// error ends.
func TestAfterCloseReadersAndWritersFailToWaitThoughTheSocketIsReady(t *testing.T) {
	s := newQueueSock(nil)
	s.put(1)
	s.set(func(s *queueSock) { s.closed, s.room = true, 1 })
	s.n.Close()
	if err := s.n.Readers.Wait(s.readable, time.Time{}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("reader: %v, want ErrClosed", err)
	}
	if err := s.n.Writers.Wait(s.writable, time.Time{}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("writer: %v, want ErrClosed", err)
	}
}

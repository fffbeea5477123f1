package socket

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeSocket struct {
	n     *Notifier
	ready atomic.Int32 // readable items
}

func newFake() *fakeSocket                { return &fakeSocket{n: NewNotifier(nil)} }
func (f *fakeSocket) Notifier() *Notifier { return f.n }
func (f *fakeSocket) Readiness() Events {
	if f.ready.Load() > 0 {
		return Readable | Writable
	}
	return Writable
}

func TestPollerReportsReadySockets(t *testing.T) {
	p := NewPoller(nil)
	a, b := newFake(), newFake()
	p.Add(a, Readable, 1)
	p.Add(b, Readable, 2)
	if err := p.Add(a, Readable, 1); err != ErrRegistered {
		t.Fatalf("double add: %v", err)
	}
	ev := make([]Event, 4)
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("nothing ready, got %d events", n)
	}
	b.ready.Store(1)
	b.n.DataReady()
	if n, _ := p.Wait(ev, 0); n != 1 || ev[0].Data != 2 || ev[0].Events != Readable {
		t.Fatalf("got %d events %+v", n, ev[:n])
	}
	// Level-triggered: still ready, still reported.
	if n, _ := p.Wait(ev, 0); n != 1 {
		t.Fatalf("level-triggered socket not reported again: %d", n)
	}
	b.ready.Store(0)
	if n, _ := p.Wait(ev, 10*time.Millisecond); n != 0 {
		t.Fatalf("drained socket still reported: %d", n)
	}
	// Blocking wait, woken by the data-ready callback.
	go func() {
		time.Sleep(20 * time.Millisecond)
		a.ready.Store(1)
		a.n.DataReady()
	}()
	if n, err := p.Wait(ev, 5*time.Second); n != 1 || err != nil || ev[0].Data != 1 {
		t.Fatalf("blocking wait: %d %v %+v", n, err, ev[:n])
	}
	p.Remove(a)
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatal("removed socket reported")
	}
	p.Close()
}

func TestPollerWakesOneWaiterPerEvent(t *testing.T) {
	var c Counters
	p := NewPoller(&c)
	s := newFake()
	p.Add(s, Readable, 7)
	var returned atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := make([]Event, 1)
			if n, err := p.Wait(ev, -1); n == 1 && err == nil {
				s.ready.Add(-1) // consume the one item
				returned.Add(1)
			}
		}()
	}
	for p.waiters.Waiters() < 3 {
		time.Sleep(time.Millisecond)
	}
	s.ready.Store(1)
	s.n.DataReady()
	for returned.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if returned.Load() != 1 {
		t.Fatalf("one event woke %d waiters", returned.Load())
	}
	p.Close()
	wg.Wait()
	if c.Parks.Load() < 3 {
		t.Fatalf("parks %d", c.Parks.Load())
	}
}

func TestEdgeTriggeredReportsOnceUntilANewSignalAndLevelTriggeredKeepsReporting(t *testing.T) {
	p := NewPoller(nil)
	defer p.Close()
	edge, level := newQueueSock(nil), newQueueSock(nil)
	p.Add(edge, Readable|EdgeTriggered, 1)
	p.Add(level, Readable, 2)
	ev := make([]Event, 4)
	edge.put(1, 2)
	level.put(1, 2)
	edge.n.DataReady()
	level.n.DataReady()
	if n, _ := p.Wait(ev, 0); n != 2 {
		t.Fatalf("first wait: %d events %+v", n, ev[:n])
	}
	// Both still hold data; no new signal.
	for i := 0; i < 3; i++ {
		if n, _ := p.Wait(ev, 0); n != 1 || ev[0].Data != 2 {
			t.Fatalf("wait %d without a signal: %d events %+v, want the level-triggered socket alone", i, n, ev[:n])
		}
	}
	// A new arrival is a new edge: reported once more.
	edge.put(3)
	edge.n.DataReady()
	edge.n.DataReady() // two signals before a harvest are one report
	if n, _ := p.Wait(ev, 0); n != 2 {
		t.Fatalf("after a new signal: %d events %+v", n, ev[:n])
	}
	if n, _ := p.Wait(ev, 0); n != 1 || ev[0].Data != 2 {
		t.Fatalf("edge reported twice for one signal: %+v", ev[:n])
	}
	// A signal for something it did not ask for is no edge.
	edge.set(func(s *queueSock) { s.room = 1 })
	edge.n.WriteSpace()
	if n, _ := p.Wait(ev, 0); n != 1 || ev[0].Data != 2 {
		t.Fatalf("WriteSpace made an edge for a reader: %+v", ev[:n])
	}
	// Drained: the level-triggered socket leaves the list.
	level.set(func(s *queueSock) { s.items = nil })
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("drained sockets reported: %+v", ev[:n])
	}
}

func TestOneShotReportsOnceUntilModifyRearmsIt(t *testing.T) {
	p := NewPoller(nil)
	defer p.Close()
	s := newQueueSock(nil)
	p.Add(s, Readable|OneShot, 1)
	s.put(1)
	s.n.DataReady()
	ev := make([]Event, 1)
	if n, _ := p.Wait(ev, 0); n != 1 {
		t.Fatal("one-shot socket not reported")
	}
	s.put(2)
	s.n.DataReady()
	s.set(func(s *queueSock) { s.closed = true })
	s.n.StateChange()
	if n, _ := p.Wait(ev, 10*time.Millisecond); n != 0 {
		t.Fatalf("disarmed socket reported %+v", ev[0])
	}
	if err := p.Modify(s, Readable|OneShot, 5); err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Wait(ev, 0); n != 1 || ev[0] != (Event{Data: 5, Events: Readable | Hangup}) {
		t.Fatalf("re-armed: %d %+v", n, ev[0])
	}
	if err := p.Modify(newQueueSock(nil), Readable, 0); err != ErrNotRegistered {
		t.Fatalf("modify of a stranger: %v", err)
	}
}

// A harvest with room for one event that finds two ready sockets wakes a
// sleeping waiter for the other, rather than leave it listed while that
// waiter sleeps.
func TestAHarvestWithNoRoomForEveryReadySocketWakesASleepingWaiter(t *testing.T) {
	var c Counters
	p := NewPoller(&c)
	a, b := newQueueSock(nil), newQueueSock(nil)
	p.Add(a, Readable|EdgeTriggered, 1)
	p.Add(b, Readable|EdgeTriggered, 2)
	got := make(chan uint64, 1)
	go func() {
		ev := make([]Event, 1)
		if n, err := p.Wait(ev, -1); n == 1 && err == nil {
			got <- ev[0].Data
		}
	}()
	eventually(t, "a waiter sleeps", func() bool { return p.waiters.Waiters() == 1 })
	// List both without waking anyone, as if their callbacks' wake-ups had
	// gone to waiters that have since left.
	a.put(1)
	b.put(1)
	p.mu.Lock()
	for _, s := range []*queueSock{a, b} {
		w := p.watches[s]
		w.queued = true
		p.ready = append(p.ready, w)
	}
	p.mu.Unlock()
	ev := make([]Event, 1)
	if n, _ := p.Wait(ev, 0); n != 1 || ev[0].Data != 1 {
		t.Fatalf("harvest: %d %+v", n, ev[:n])
	}
	select {
	case d := <-got:
		if d != 2 {
			t.Fatalf("woken waiter got %d", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter sleeps with a socket listed")
	}
	if c.Handoffs.Load() != 1 {
		t.Fatalf("hand-offs %d", c.Handoffs.Load())
	}
	p.Close()
	if err := p.Add(a, Readable, 1); err != ErrClosed {
		t.Fatalf("add to a closed poller: %v", err)
	}
}

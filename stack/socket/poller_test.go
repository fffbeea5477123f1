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

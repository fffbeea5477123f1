package socket

import (
	"errors"
	"sync"
	"time"
)

// Pollable is what a Poller can watch.
type Pollable interface {
	// Readiness reports the conditions that hold now. It may take the
	// socket's own lock; a poller calls it holding none of its own but the
	// registration lock, which no callback takes.
	Readiness() Events
	Notifier() *Notifier
}

// watch is one socket registered with one poller (an epitem).
type watch struct {
	p *Poller
	s Pollable
	n *Notifier
	// events are the conditions asked for plus Error and Hangup, or none
	// while a one-shot registration waits to be re-armed; flags are the
	// registration flags. Written under mtx and mu; read under either.
	events, flags Events
	data          uint64 // guarded by mtx
	live          bool   // registered; guarded by mu
	queued        bool   // on the ready list; guarded by mu
}

// Event is one ready socket, with the data it was registered with.
type Event struct {
	Data   uint64
	Events Events
}

// Poller watches sockets and reports the ready ones, like an epoll instance.
// A registration is level-triggered unless it asks for EdgeTriggered or
// OneShot. Its waiters are exclusive: one readiness change wakes one waiting
// goroutine, not all of them (EPOLLEXCLUSIVE); one that finds more ready
// sockets than it has room for wakes the next.
//
// A socket's callback puts its watch on the ready list (ep_poll_callback); a
// Wait takes the list, asks each socket for its readiness and reports those
// ready (ep_send_events), putting level-triggered ones back at the tail.
//
// Locks are taken in the order mtx, then a socket's own (in Readiness) or a
// Notifier's, then mu. A callback takes mu alone, so a socket may run its
// callbacks under its own lock.
type Poller struct {
	// mtx serialises harvests and registration changes (ep->mtx): it is held
	// while sockets' Readiness runs, so it is never taken by a callback.
	mtx     sync.Mutex
	watches map[Pollable]*watch // guarded by mtx
	closed  bool                // guarded by mtx
	scan    []*watch            // the list being harvested; guarded by mtx
	relist  []*watch            // level-triggered watches reported by a harvest; guarded by mtx

	// mu guards the ready list, which callbacks append to; it is held for
	// short list operations only.
	mu    sync.Mutex
	ready []*watch
	spare []*watch // the next ready list's array

	waiters *WaitQueue
}

// NewPoller returns an empty poller whose parks go to c (may be nil).
func NewPoller(c *Counters) *Poller {
	return &Poller{watches: map[Pollable]*watch{}, waiters: NewWaitQueue(c)}
}

// Errors of poller registration.
var (
	ErrRegistered    = errors.New("poller: socket already registered")
	ErrNotRegistered = errors.New("poller: socket not registered")
)

// Add watches s for events (conditions and flags), reporting data with them.
// Error and Hangup are reported whether asked for or not.
func (p *Poller) Add(s Pollable, events Events, data uint64) error {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, ok := p.watches[s]; ok {
		return ErrRegistered
	}
	w := &watch{p: p, s: s, n: s.Notifier(), data: data}
	p.watches[s] = w
	p.mu.Lock()
	w.events, w.flags = events&allEvents|Error|Hangup, events&flags
	w.live = true
	p.mu.Unlock()
	w.n.attach(w)
	p.signal(w, allEvents) // it may be ready already
	return nil
}

// Modify changes what s is watched for and the data reported with it, and
// re-arms a one-shot registration (EPOLL_CTL_MOD).
func (p *Poller) Modify(s Pollable, events Events, data uint64) error {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	w, ok := p.watches[s]
	if !ok {
		return ErrNotRegistered
	}
	w.data = data
	p.mu.Lock()
	w.events, w.flags = events&allEvents|Error|Hangup, events&flags
	p.mu.Unlock()
	p.signal(w, allEvents)
	return nil
}

// Remove stops watching s.
func (p *Poller) Remove(s Pollable) error {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	return p.remove(s)
}

func (p *Poller) remove(s Pollable) error {
	w, ok := p.watches[s]
	if !ok {
		return ErrNotRegistered
	}
	delete(p.watches, s)
	p.mu.Lock()
	w.live = false
	if w.queued {
		w.queued = false
		for i, r := range p.ready {
			if r == w {
				p.ready = append(p.ready[:i], p.ready[i+1:]...)
				break
			}
		}
	}
	p.mu.Unlock()
	w.n.detach(w)
	return nil
}

// signal puts w on the ready list if it watches for one of ev, and wakes
// one waiter. A level-triggered watch already listed wakes one again, since
// its socket may have more for a waiter than the last one took; an
// edge-triggered one does not, since one report covers every signal before
// it.
func (p *Poller) signal(w *watch, ev Events) {
	p.mu.Lock()
	if !w.live || w.events&ev == 0 {
		p.mu.Unlock()
		return
	}
	if w.queued {
		edge := w.flags&(EdgeTriggered|OneShot) != 0
		p.mu.Unlock()
		if !edge {
			p.waiters.Wake()
		}
		return
	}
	w.queued = true
	p.ready = append(p.ready, w)
	p.mu.Unlock()
	p.waiters.Wake()
}

// harvest fills out with the listed sockets that are ready and returns how
// many. A listed socket found not ready leaves the list until its next
// signal; a reported one stays on it (at the tail) only if level-triggered.
func (p *Poller) harvest(out []Event) int {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	p.mu.Lock()
	if len(p.ready) == 0 {
		p.mu.Unlock()
		return 0
	}
	// Take the list; callbacks during the harvest start a new one, and may
	// list again a watch taken here.
	scan := append(p.scan[:0], p.ready...)
	for _, w := range scan {
		w.queued = false
	}
	p.ready = p.ready[:0]
	p.mu.Unlock()

	n, i := 0, 0
	relist := p.relist[:0]
	for ; i < len(scan) && n < len(out); i++ {
		w := scan[i]
		ev := w.s.Readiness() & w.events
		if ev == 0 {
			continue
		}
		out[n] = Event{Data: w.data, Events: ev}
		n++
		switch {
		case w.flags&OneShot != 0:
			p.mu.Lock()
			w.events = 0 // until Modify re-arms it
			p.mu.Unlock()
		case w.flags&EdgeTriggered != 0:
		default:
			relist = append(relist, w)
		}
	}

	// The new list: the watches not looked at (out was full), then those
	// signalled meanwhile, then the level-triggered ones reported, so that
	// a busy socket does not always come first.
	p.mu.Lock()
	next := p.spare[:0]
	left := 0
	for _, w := range scan[i:] {
		if !w.queued {
			w.queued = true
			next = append(next, w)
			left++
		}
	}
	next = append(next, p.ready...)
	for _, w := range relist {
		if !w.queued {
			w.queued = true
			next = append(next, w)
		}
	}
	clear(p.ready)
	p.spare, p.ready = p.ready[:0], next
	p.mu.Unlock()
	clear(scan)
	clear(relist)
	p.scan, p.relist = scan[:0], relist[:0]

	if left > 0 {
		p.waiters.PassOn(func() bool { return true }) // what we had no room for
	}
	return n
}

// Wait fills out with ready sockets and returns how many, waiting up to
// timeout for one (0 means do not wait; negative, wait for ever).
func (p *Poller) Wait(out []Event, timeout time.Duration) (int, error) {
	if len(out) == 0 {
		return 0, errors.New("poller: no room for events")
	}
	if n := p.harvest(out); n > 0 || timeout == 0 {
		return n, nil
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	n := 0
	err := p.waiters.Wait(func() bool {
		n = p.harvest(out)
		return n > 0
	}, deadline, true)
	if errors.Is(err, ErrTimeout) {
		return 0, nil
	}
	return n, err
}

// Close stops watching every socket, wakes every waiter with ErrClosed and
// makes later Waits and Adds fail with it.
func (p *Poller) Close() {
	p.mtx.Lock()
	p.closed = true
	for s := range p.watches {
		p.remove(s)
	}
	p.mtx.Unlock()
	p.waiters.Close()
}

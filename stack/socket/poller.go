package socket

import (
	"errors"
	"sync"
	"time"
)

// Events are readiness conditions, as EPOLLIN and friends.
type Events uint32

const (
	Readable Events = 1 << iota // data (or an error) to read
	Writable                    // room to write
	Hangup                      // closed
)

// Notifier is the part of a socket that tells waiters it changed: the wait
// queue of goroutines blocked in a read, and the pollers watching it. The
// stack calls DataReady after queueing data, as sk_data_ready.
type Notifier struct {
	Readers *WaitQueue
	mu      sync.Mutex
	watches []*watch
}

// NewNotifier returns a notifier whose parks and wake-ups go to c.
func NewNotifier(c *Counters) *Notifier { return &Notifier{Readers: NewWaitQueue(c)} }

// DataReady wakes blocked readers and tells every watching poller
// (ep_poll_callback), each of which wakes one of its own waiters.
func (n *Notifier) DataReady() {
	n.Readers.Wake()
	n.mu.Lock()
	ws := n.watches
	n.mu.Unlock()
	for _, w := range ws {
		w.p.signal(w)
	}
}

// Close wakes every reader with ErrClosed and tells the pollers.
func (n *Notifier) Close() {
	n.Readers.Close()
	n.DataReady()
}

// Pollable is what a Poller can watch.
type Pollable interface {
	Readiness() Events
	Notifier() *Notifier
}

// watch is one socket registered with one poller (an epitem).
type watch struct {
	p      *Poller
	s      Pollable
	events Events
	data   uint64
	queued bool // on the poller's ready list
}

// Event is one ready socket, with the data it was registered with.
type Event struct {
	Data   uint64
	Events Events
}

// Poller watches sockets and reports the ready ones, level-triggered, like an
// epoll instance. Its waiters are exclusive: one readiness change wakes one
// waiting goroutine, not all of them (EPOLLEXCLUSIVE).
type Poller struct {
	mu      sync.Mutex
	watches map[Pollable]*watch
	ready   []*watch
	waiters *WaitQueue
}

// NewPoller returns an empty poller whose parks go to c.
func NewPoller(c *Counters) *Poller {
	return &Poller{watches: map[Pollable]*watch{}, waiters: NewWaitQueue(c)}
}

// Errors of poller registration.
var (
	ErrRegistered    = errors.New("poller: socket already registered")
	ErrNotRegistered = errors.New("poller: socket not registered")
)

// Add watches s for events, reporting data with them.
func (p *Poller) Add(s Pollable, events Events, data uint64) error {
	p.mu.Lock()
	if _, ok := p.watches[s]; ok {
		p.mu.Unlock()
		return ErrRegistered
	}
	w := &watch{p: p, s: s, events: events | Hangup, data: data}
	p.watches[s] = w
	p.mu.Unlock()
	n := s.Notifier()
	n.mu.Lock()
	n.watches = append(append([]*watch(nil), n.watches...), w) // copy: DataReady reads without the lock
	n.mu.Unlock()
	p.signal(w) // it may be ready already
	return nil
}

// Remove stops watching s.
func (p *Poller) Remove(s Pollable) error {
	p.mu.Lock()
	w, ok := p.watches[s]
	if !ok {
		p.mu.Unlock()
		return ErrNotRegistered
	}
	delete(p.watches, s)
	for i, r := range p.ready {
		if r == w {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	n := s.Notifier()
	n.mu.Lock()
	var kept []*watch
	for _, x := range n.watches {
		if x != w {
			kept = append(kept, x)
		}
	}
	n.watches = kept
	n.mu.Unlock()
	return nil
}

// signal puts w on the ready list and wakes one waiter.
func (p *Poller) signal(w *watch) {
	p.mu.Lock()
	if _, live := p.watches[w.s]; !live || w.queued {
		p.mu.Unlock()
		if live {
			p.waiters.Wake()
		}
		return
	}
	w.queued = true
	p.ready = append(p.ready, w)
	p.mu.Unlock()
	p.waiters.Wake()
}

// harvest fills out with the sockets on the ready list that are still ready,
// dropping those that are not. Level-triggered: a ready socket stays listed.
func (p *Poller) harvest(out []Event) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	kept := p.ready[:0]
	for _, w := range p.ready {
		ev := w.s.Readiness() & w.events
		if ev == 0 {
			w.queued = false
			continue
		}
		kept = append(kept, w)
		if n < len(out) {
			out[n] = Event{Data: w.data, Events: ev}
			n++
		}
	}
	p.ready = kept
	// Rotate so that a busy socket does not always come first.
	if n > 0 && len(p.ready) > 1 {
		p.ready = append(p.ready[1:], p.ready[0])
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

// Close wakes every waiter with ErrClosed.
func (p *Poller) Close() {
	p.mu.Lock()
	ws := make([]Pollable, 0, len(p.watches))
	for s := range p.watches {
		ws = append(ws, s)
	}
	p.mu.Unlock()
	for _, s := range ws {
		p.Remove(s)
	}
	p.waiters.Close()
}

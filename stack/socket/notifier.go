package socket

import (
	"sync"
	"sync/atomic"
)

// Notifier is the part of a socket that tells waiters it changed: the wait
// queues of goroutines blocked reading and writing it, and the pollers
// watching it. The stack calls one of its callbacks after each change, as
// Linux calls a socket's sk_data_ready, sk_write_space, sk_error_report and
// sk_state_change; each carries the events it may have made true, so that
// only the waiters and pollers interested in them wake.
//
// With nobody waiting and no poller watching, a callback is an atomic load
// per queue it wakes and one for the pollers: no lock, no allocation.
type Notifier struct {
	Readers *WaitQueue // goroutines blocked in a read (or an accept)
	Writers *WaitQueue // goroutines blocked in a write, for room in a send buffer

	mu sync.Mutex // serialises changes to watches
	// watches are the pollers' registrations of this socket (epitems),
	// replaced whole under mu and read by callbacks without it; nil when no
	// poller watches.
	watches atomic.Pointer[[]*watch]
}

// NewNotifier returns a notifier whose parks and wake-ups go to c (may be
// nil).
func NewNotifier(c *Counters) *Notifier {
	return &Notifier{Readers: NewWaitQueue(c), Writers: NewWaitQueue(c)}
}

// Notify tells waiters and pollers that the events ev may have become true.
// Readers wake for Readable, Error, Hangup and ReadHangup; writers for
// Writable, Error and Hangup. A hang-up wakes every one of them, since each
// will find the end; other events wake every non-exclusive waiter and one
// exclusive one. Each poller that asked for one of ev (or that watches at
// all, for Error and Hangup) is signalled and wakes one of its waiters, as
// ep_poll_callback does with the key of a wake-up.
func (n *Notifier) Notify(ev Events) {
	if ev&(Readable|Error|Hangup|ReadHangup) != 0 {
		if ev&(Hangup|ReadHangup) != 0 {
			n.Readers.WakeAll()
		} else {
			n.Readers.Wake()
		}
	}
	if ev&(Writable|Error|Hangup) != 0 {
		if ev&Hangup != 0 {
			n.Writers.WakeAll()
		} else {
			n.Writers.Wake()
		}
	}
	n.signal(ev)
}

// signal tells each watching poller that ev may have become true.
func (n *Notifier) signal(ev Events) {
	ws := n.watches.Load()
	if ws == nil {
		return
	}
	for _, w := range *ws {
		w.p.signal(w, ev)
	}
}

// DataReady says data arrived: it wakes readers and the pollers that asked
// for Readable, like sock_def_readable.
func (n *Notifier) DataReady() { n.Notify(Readable) }

// WriteSpace says room to write opened up: it wakes writers and the pollers
// that asked for Writable, like sk_stream_write_space.
func (n *Notifier) WriteSpace() { n.Notify(Writable) }

// ErrorReport says an error is pending: it wakes readers, writers and every
// poller, since Error is reported unasked, like sock_def_error_report.
func (n *Notifier) ErrorReport() { n.Notify(Error) }

// StateChange says the socket's state changed without saying how (it
// connected, the peer shut down, it was reset): every waiter wakes and every
// poller re-checks, like sock_def_wakeup.
func (n *Notifier) StateChange() { n.Notify(allEvents) }

// Close wakes every reader and writer with ErrClosed, makes their later
// waits fail the same way, and tells every poller, which reports the hang-up
// the socket's Readiness now shows.
func (n *Notifier) Close() {
	n.Readers.Close()
	n.Writers.Close()
	n.signal(allEvents)
}

// attach adds w to the watches.
func (n *Notifier) attach(w *watch) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ws []*watch
	if old := n.watches.Load(); old != nil {
		ws = append(ws, *old...)
	}
	ws = append(ws, w)
	n.watches.Store(&ws)
}

// detach removes w from the watches.
func (n *Notifier) detach(w *watch) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.watches.Load()
	if old == nil {
		return
	}
	var ws []*watch
	for _, x := range *old {
		if x != w {
			ws = append(ws, x)
		}
	}
	if len(ws) == 0 {
		n.watches.Store(nil)
		return
	}
	n.watches.Store(&ws)
}

package socket

import (
	"sync"
	"testing"
	"time"
)

// queueSock is a socket for tests: a receive queue of numbered datagrams, a
// send buffer with room for so many writes, and the flags of errors and
// shutdowns. Its conditions are written under mu and read under mu, as the
// wait queue's lock-free wakers require.
type queueSock struct {
	n      *Notifier
	mu     sync.Mutex
	items  []int
	room   int
	err    bool // a pending error
	rdhup  bool // the peer shut down its side
	closed bool
}

func newQueueSock(c *Counters) *queueSock { return &queueSock{n: NewNotifier(c)} }

func (s *queueSock) Notifier() *Notifier { return s.n }

func (s *queueSock) Readiness() Events {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev Events
	if len(s.items) > 0 || s.err || s.rdhup || s.closed {
		ev |= Readable
	}
	if s.room > 0 || s.closed {
		ev |= Writable
	}
	if s.err {
		ev |= Error
	}
	if s.rdhup {
		ev |= ReadHangup
	}
	if s.closed {
		ev |= Hangup
	}
	return ev
}

// put queues datagrams without telling anyone: the caller signals.
func (s *queueSock) put(v ...int) {
	s.mu.Lock()
	s.items = append(s.items, v...)
	s.mu.Unlock()
}

// take dequeues the first datagram, if any.
func (s *queueSock) take() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) == 0 {
		return 0, false
	}
	v := s.items[0]
	s.items = s.items[1:]
	return v, true
}

// readable is a blocked reader's condition.
func (s *queueSock) readable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items) > 0 || s.err || s.rdhup || s.closed
}

// writable is a blocked writer's condition.
func (s *queueSock) writable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.room > 0 || s.err || s.closed
}

func (s *queueSock) set(f func(*queueSock)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *queueSock) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// eventually fails the test if cond does not hold within five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// stays fails the test if cond stops holding within d.
func stays(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

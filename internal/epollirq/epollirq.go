// Package epollirq is the receive interrupt line of a driver whose queues
// are file descriptors (a TAP queue, a packet socket, an AF_XDP socket):
// one goroutine blocked in epoll_wait on every queue's descriptor, plus an
// eventfd that Close writes to stop it.
//
// Each queue's descriptor is registered level-triggered with EPOLLONESHOT:
// once epoll has reported it, the kernel disables the registration until it
// is modified again, the way a NIC masks its MSI-X vector after raising it.
// So nothing spins while a queue is disarmed, however many frames wait:
//
//   - Arm sets the queue's armed flag, then re-enables the registration
//     with EPOLL_CTL_MOD. The kernel polls a modified descriptor at once
//     (ep_modify), so frames already waiting report an event straight away
//     and none is stranded; no separate poll(2) is needed.
//   - On an event the goroutine disarms the queue (CAS armed true -> false),
//     counts an interrupt and calls the handler. If the queue was disarmed
//     meanwhile it ignores the event; the one-shot registration has lapsed.
//   - Disarm only clears the flag, with no system call: the registration
//     lapses by itself on the next event, which costs one ignored wake-up.
//
// Descriptors are registered by New, disabled (EPOLLONESHOT without
// EPOLLIN); the goroutine starts on the first SetHandler.
package epollirq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// stopEvent is the epoll data of the eventfd; queues use their index.
const stopEvent = -1

// Line is one port's receive interrupts.
type Line struct {
	epfd, evfd int
	qs         []queue

	mu      sync.Mutex // guards started against closed
	started bool
	closed  atomic.Bool
	done    chan struct{}
}

type queue struct {
	_       [64]byte
	fd      int
	armed   atomic.Bool
	handler atomic.Pointer[func()]
	_       [64]byte
	irqs    atomic.Uint64 // written by the interrupt goroutine
	_       [64]byte
}

// New registers fds, one per receive queue, disarmed. The descriptors stay
// the caller's: it closes them after Close.
func New(fds []int) (*Line, error) {
	l := &Line{epfd: -1, evfd: -1, qs: make([]queue, len(fds))}
	ok := false
	defer func() {
		if !ok {
			l.closeFds()
		}
	}()
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopEvent}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		return nil, fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	for q, fd := range fds {
		l.qs[q].fd = fd
		ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(q)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("epoll_ctl add queue %d: %w", q, err)
		}
	}
	ok = true
	return l, nil
}

// SetHandler installs queue q's interrupt handler, starting the interrupt
// goroutine the first time. A nil handler removes it.
func (l *Line) SetHandler(q int, handler func()) {
	qu := &l.qs[q]
	if handler == nil {
		qu.handler.Store(nil)
	} else {
		qu.handler.Store(&handler)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed.Load() {
		return
	}
	l.started = true
	l.done = make(chan struct{})
	go l.loop()
}

// Arm unmasks queue q's interrupt. If frames are already waiting the
// interrupt is raised at once, by epoll re-polling the modified descriptor.
func (l *Line) Arm(q int) {
	qu := &l.qs[q]
	if l.closed.Load() { // the descriptors' numbers may belong to others now
		return
	}
	qu.armed.Store(true)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(q)}
	// It cannot fail while the line is open: both descriptors are ours.
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, qu.fd, &ev)
}

// Disarm masks queue q's interrupt.
func (l *Line) Disarm(q int) { l.qs[q].armed.Store(false) }

// Armed reports whether queue q's interrupt is armed.
func (l *Line) Armed(q int) bool { return l.qs[q].armed.Load() }

// Interrupts is the number of interrupts queue q raised.
func (l *Line) Interrupts(q int) uint64 { return l.qs[q].irqs.Load() }

// loop is the interrupt line: it waits for readable queues and raises the
// interrupt of those that are armed.
func (l *Line) loop() {
	defer close(l.done)
	events := make([]unix.EpollEvent, len(l.qs)+1)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Only a closed or broken epoll descriptor gets here.
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == stopEvent {
				return
			}
			l.qs[ev.Fd].raise()
		}
	}
}

// raise calls the queue's interrupt handler if the interrupt is armed,
// disarming it first so the handler runs once per arming.
func (qu *queue) raise() {
	if qu.armed.Load() && qu.armed.CompareAndSwap(true, false) {
		qu.irqs.Add(1)
		if h := qu.handler.Load(); h != nil {
			(*h)()
		}
	}
}

// ErrClosed is returned by Close on a line already closed.
var ErrClosed = errors.New("epollirq: interrupt line already closed")

// Close stops the interrupt goroutine and closes the epoll instance and the
// eventfd; Arm does nothing after it.
func (l *Line) Close() error {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed.Store(true)
	started := l.started
	l.mu.Unlock()
	for q := range l.qs {
		l.qs[q].armed.Store(false)
	}
	var err error
	if started {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		if _, werr := unix.Write(l.evfd, one[:]); werr != nil {
			err = fmt.Errorf("wake interrupt goroutine: %w", werr)
		} else {
			<-l.done
		}
	}
	l.closeFds()
	return err
}

func (l *Line) closeFds() {
	for _, fd := range []int{l.epfd, l.evfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	l.epfd, l.evfd = -1, -1
}

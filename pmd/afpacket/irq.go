package afpacket

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Receive interrupts come from one goroutine per port blocked in epoll_wait
// over every queue's socket, plus an eventfd that Close writes to stop it,
// as in pmd/tap. A packet socket with a TPACKET_V3 ring polls readable when
// the block before the one the kernel is filling has been handed over and
// not given back (packet_poll), that is, when RxBurst would find frames; the
// kernel wakes pollers when it hands a block over, full or timed out.
//
// Each socket is registered level-triggered with EPOLLONESHOT, so a raised
// interrupt masks itself in the kernel, as a NIC masks its vector, and
// nothing spins while a disarmed queue has frames waiting:
//
//   - ArmRx sets the queue's armed flag, then re-enables the registration
//     (EPOLL_CTL_MOD); the kernel polls the socket at once, so a block
//     already waiting raises the interrupt straight away.
//   - On an event the goroutine clears armed (compare-and-swap), counts an
//     interrupt and calls the handler; an event for a queue disarmed
//     meanwhile is ignored, the registration having lapsed.
//   - DisarmRx only clears the flag: the registration lapses by itself on
//     the next event, one ignored wake-up.

// stopEvent is the epoll data of the eventfd; sockets carry their queue.
const stopEvent = -1

func (p *Port) initEpoll() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	p.epfd = epfd
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	p.evfd = evfd
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopEvent}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	for q, rq := range p.rxq {
		ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(q)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, rq.fd, &ev); err != nil {
			return fmt.Errorf("epoll_ctl add queue %d: %w", q, err)
		}
	}
	return nil
}

// SetRxInterrupt installs the queue's interrupt handler, starting the port's
// interrupt goroutine the first time. A nil handler removes it.
func (p *Port) SetRxInterrupt(q int, handler func()) {
	rq := p.checkRx(q)
	if handler == nil {
		rq.handler.Store(nil)
	} else {
		rq.handler.Store(&handler)
	}
	p.irqMu.Lock()
	defer p.irqMu.Unlock()
	if p.irqStarted || p.closed.Load() {
		return
	}
	p.irqStarted = true
	p.irqDone = make(chan struct{})
	go p.irqLoop()
}

// ArmRx unmasks the queue's interrupt; a block already waiting raises it at
// once.
func (p *Port) ArmRx(q int) {
	rq := p.checkRx(q)
	if p.closed.Load() { // the socket's number may belong to another file now
		return
	}
	rq.armed.Store(true)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(q)}
	// It cannot fail while the port is open: both descriptors are ours.
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, rq.fd, &ev)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) { p.checkRx(q).armed.Store(false) }

// irqLoop is the port's interrupt line: it waits for readable sockets and
// raises the interrupt of the queues that are armed.
func (p *Port) irqLoop() {
	defer close(p.irqDone)
	var events [MaxQueues + 1]unix.EpollEvent
	for {
		n, err := unix.EpollWait(p.epfd, events[:], -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // only a closed or broken epoll descriptor gets here
		}
		for _, ev := range events[:n] {
			if ev.Fd == stopEvent {
				return
			}
			p.rxq[ev.Fd].raise()
		}
	}
}

// raise calls the queue's handler if its interrupt is armed, disarming it
// first so the handler runs once per arming.
func (rq *rxQueue) raise() {
	if rq.armed.Load() && rq.armed.CompareAndSwap(true, false) {
		rq.irqs.Add(1)
		if h := rq.handler.Load(); h != nil {
			(*h)()
		}
	}
}

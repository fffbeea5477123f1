package tap

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Receive interrupts come from one goroutine per port blocked in epoll_wait
// on every queue's descriptor, plus an eventfd that Close writes to stop it.
//
// Each queue's descriptor is registered level-triggered with EPOLLONESHOT:
// once epoll has reported it, the kernel disables the registration until it
// is modified again, the way a NIC masks its MSI-X vector after raising it.
// So nothing spins while a queue is disarmed, however many frames wait:
//
//   - ArmRx sets the queue's armed flag, then re-enables the registration
//     with EPOLL_CTL_MOD. The kernel polls a modified descriptor at once
//     (ep_modify), so frames already waiting report an event straight away
//     and none is stranded; no separate poll(2) is needed.
//   - On an event the goroutine disarms the queue (CAS armed true -> false),
//     counts an interrupt and calls the handler. If the queue was disarmed
//     meanwhile it ignores the event; the one-shot registration has lapsed.
//   - DisarmRx only clears the flag, with no system call: the registration
//     lapses by itself on the next event, which costs one ignored wake-up.
//
// Queue descriptors are registered at Open, disabled (EPOLLONESHOT without
// EPOLLIN); the goroutine starts on the first SetRxInterrupt.

// stopEvent is the epoll data of the eventfd; queues use their index.
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

// ArmRx unmasks the queue's interrupt. If frames are already waiting the
// interrupt is raised at once, by epoll re-polling the modified descriptor.
func (p *Port) ArmRx(q int) {
	rq := p.checkRx(q)
	if p.closed.Load() { // the descriptors' numbers may belong to others now
		return
	}
	rq.armed.Store(true)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(q)}
	// It cannot fail while the port is open: both descriptors are ours.
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, rq.fd, &ev)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) { p.checkRx(q).armed.Store(false) }

// irqLoop is the port's interrupt line: it waits for readable queues and
// raises the interrupt of those that are armed.
func (p *Port) irqLoop() {
	defer close(p.irqDone)
	var events [MaxQueues + 1]unix.EpollEvent
	for {
		n, err := unix.EpollWait(p.epfd, events[:], -1)
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
			p.rxq[ev.Fd].raise()
		}
	}
}

// raise calls the queue's interrupt handler if the interrupt is armed,
// disarming it first so the handler runs once per arming.
func (rq *rxQueue) raise() {
	if rq.armed.Load() && rq.armed.CompareAndSwap(true, false) {
		rq.irqs.Add(1)
		if h := rq.handler.Load(); h != nil {
			(*h)()
		}
	}
}

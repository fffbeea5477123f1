package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Receive interrupts come from one goroutine per port blocked in epoll_wait
// on every queue's socket, plus an eventfd that Close writes to stop it, as
// in pmd/tap. A socket is readable while its rx ring is not empty
// (xsk_poll), and the kernel wakes its waiters when it fills the rx ring.
//
// Each socket is registered level-triggered with EPOLLONESHOT, so a report
// disables it until ArmRx modifies it again: the interrupt is masked once
// raised, and nothing spins however long a disarmed queue's ring stays full.
// ArmRx sets the armed flag, then re-enables the registration; the kernel
// polls a modified descriptor at once, so frames already on the ring raise
// the interrupt straight away and none is stranded. DisarmRx only clears the
// flag; the registration lapses on the next report.

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
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, rq.sock.fd, &ev); err != nil {
			return fmt.Errorf("epoll_ctl add queue %d: %w", q, err)
		}
	}
	return nil
}

// SetRxInterrupt installs the queue's interrupt handler, starting the
// port's interrupt goroutine the first time. A nil handler removes it.
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

// ArmRx unmasks the queue's interrupt; frames already waiting raise it at
// once.
func (p *Port) ArmRx(q int) {
	rq := p.checkRx(q)
	if p.closed.Load() {
		return
	}
	rq.armed.Store(true)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(q)}
	// It cannot fail while the port is open: both descriptors are ours.
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, rq.sock.fd, &ev)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) { p.checkRx(q).armed.Store(false) }

func (p *Port) stopIrq() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.evfd, one[:]); err != nil {
		return fmt.Errorf("afxdp %s: wake interrupt goroutine: %w", p.info.Name, err)
	}
	<-p.irqDone
	return nil
}

// irqLoop is the port's interrupt line.
func (p *Port) irqLoop() {
	defer close(p.irqDone)
	var events [MaxQueues + 1]unix.EpollEvent
	for {
		n, err := unix.EpollWait(p.epfd, events[:], -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == stopEvent {
				return
			}
			rq := p.rxq[ev.Fd]
			if rq.armed.Load() && rq.armed.CompareAndSwap(true, false) {
				rq.irqs.Add(1)
				if h := rq.handler.Load(); h != nil {
					(*h)()
				}
			}
		}
	}
}

package afxdp

// Receive interrupts: an epoll one-shot registration per queue's socket (see
// internal/epollirq). A socket is readable while its rx ring is not empty
// (xsk_poll), and the kernel wakes its waiters when it fills the rx ring.

// SetRxInterrupt installs the queue's interrupt handler, starting the
// port's interrupt goroutine the first time. A nil handler removes it.
func (p *Port) SetRxInterrupt(q int, handler func()) {
	p.checkRx(q)
	p.irq.SetHandler(q, handler)
}

// ArmRx unmasks the queue's interrupt; frames already on the rx ring raise
// it at once.
func (p *Port) ArmRx(q int) {
	p.checkRx(q)
	p.irq.Arm(q)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) {
	p.checkRx(q)
	p.irq.Disarm(q)
}

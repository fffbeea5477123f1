package tap

// Receive interrupts: an epoll one-shot registration per queue's descriptor
// (see internal/epollirq), masked once raised, as a NIC masks its vector.

// SetRxInterrupt installs the queue's interrupt handler, starting the port's
// interrupt goroutine the first time. A nil handler removes it.
func (p *Port) SetRxInterrupt(q int, handler func()) {
	p.checkRx(q)
	p.irq.SetHandler(q, handler)
}

// ArmRx unmasks the queue's interrupt. If frames are already waiting the
// interrupt is raised at once.
func (p *Port) ArmRx(q int) {
	p.checkRx(q)
	p.irq.Arm(q)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) {
	p.checkRx(q)
	p.irq.Disarm(q)
}

package afpacket

// Receive interrupts: an epoll one-shot registration per queue's socket (see
// internal/epollirq). A packet socket with a TPACKET_V3 ring polls readable
// when the block before the one the kernel is filling has been handed over
// and not given back (packet_poll), that is, when RxBurst would find frames;
// the kernel wakes pollers when it hands a block over, full or timed out.

// SetRxInterrupt installs the queue's interrupt handler, starting the port's
// interrupt goroutine the first time. A nil handler removes it.
func (p *Port) SetRxInterrupt(q int, handler func()) {
	p.checkRx(q)
	p.irq.SetHandler(q, handler)
}

// ArmRx unmasks the queue's interrupt; a block already waiting raises it at
// once.
func (p *Port) ArmRx(q int) {
	p.checkRx(q)
	p.irq.Arm(q)
}

// DisarmRx masks the queue's interrupt.
func (p *Port) DisarmRx(q int) {
	p.checkRx(q)
	p.irq.Disarm(q)
}

package wire

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/ring"
)

// The delay line (Impairment.Delay). Each frame carries the time it is due
// in its stamp, set as it is sent; every frame of a lane waits the same
// delay, so a lane is in due order and the receiver takes frames from its
// head while they are due. The queue's interrupt line raises when the first
// frame is due, not when it lands (engine.RxInterrupt.SetDelayLine).

// dequeueDelayed takes, from every lane, the frames whose delivery time has
// come.
func (rq *rxQueue) dequeueDelayed(pkts []engine.Mbuf) int {
	now := engine.Nanotime()
	n := 0
	for _, l := range rq.lanes {
		n += dequeueDue(l, pkts[n:], now)
	}
	return n
}

// dequeueDue takes frames whose delivery time has come, in order. The
// receiver alone may peek: a frame it has not taken is its to look at.
func dequeueDue(l *ring.SPSC[engine.Mbuf], out []engine.Mbuf, now int64) int {
	n := 0
	for n < len(out) {
		m, ok := l.Peek()
		if !ok || m.Stamp() > now {
			break
		}
		out[n], _ = l.Dequeue()
		n++
	}
	return n
}

// ready counts the lanes of a delay line whose oldest frame is due at now
// (the poll takes the rest) and says when the earliest of the others is due
// (0 if none). The interrupt line calls it from ArmRx, on the receiving
// goroutine, the one that may peek.
func (rq *rxQueue) ready(now int64) (n int, next int64) {
	for _, l := range rq.lanes {
		m, ok := l.Peek()
		if !ok {
			continue
		}
		if d := m.Stamp(); d <= now {
			n++
		} else if next == 0 || d < next {
			next = d
		}
	}
	return n, next
}

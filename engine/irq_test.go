package engine

import (
	"runtime"
	"testing"
	"time"
)

// The CPU time interrupts take is estimated on their line: here a handler
// that spins for at least 200 µs of its thread's CPU time per interrupt,
// raised three times (only the first is timed; the estimate is its time
// three times), and a landing on a masked line, which raises nothing and
// adds nothing.
func TestHandlerTimeSumsTheHardInterruptWork(t *testing.T) {
	runtime.LockOSThread() // the thread's CPU clock times the handler
	defer runtime.UnlockOSThread()
	pool := newTestPool(t, 64, 8)
	var cs Caches
	p := newIRQPort(t, 1, 64)
	const spin = 200 * time.Microsecond
	calls := 0
	p.irqs[0].SetHandler(func() {
		calls++
		for t0 := threadCPU(); threadCPU()-t0 < int64(spin); {
		}
	})
	defer p.irqs[0].Stop()
	if p.irqs[0].HandlerTime() != 0 {
		t.Fatalf("handler time %v before any interrupt", p.irqs[0].HandlerTime())
	}
	var pkts [Burst]Mbuf
	for i := 0; i < 3; i++ {
		p.ArmRx(0)
		p.fill(t, &cs, pool, 0, 1)
		n := p.RxBurst(0, pkts[:])
		cs.FreeBulk(pkts[:n])
	}
	got := p.irqs[0].HandlerTime()
	if calls != 3 || got < 3*spin || p.irqs[0].samples.Load() != 1 {
		t.Fatalf("%d interrupts took %v in all, want 3 taking at least %v", calls, got, 3*spin)
	}
	p.fill(t, &cs, pool, 0, 1) // masked: no interrupt
	if calls != 3 || p.irqs[0].HandlerTime() != got {
		t.Fatalf("a landing on a masked line: %d interrupts, handler time %v -> %v", calls, got, p.irqs[0].HandlerTime())
	}
	n := p.RxBurst(0, pkts[:])
	cs.FreeBulk(pkts[:n])
	cs.Flush()
}

package wire

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

// runSoftirq drives the port's receive queues with a softirq on a worker of
// its own, counting and freeing what it receives, until the test ends.
func runSoftirq(t *testing.T, p *Port) *atomic.Int64 {
	t.Helper()
	w, err := engine.NewWorker(engine.AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSoftirq(w, engine.SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	for q := 0; q < p.Info().RxQueues; q++ {
		_, err := s.Add(engine.NAPIConfig{Port: p, Queue: q, Handler: func(w *engine.Worker, _ engine.QueueRef, pkts []engine.Mbuf) {
			got.Add(int64(len(pkts)))
			w.Caches.FreeBulk(pkts)
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	runErr := make(chan error, 1)
	if err := w.Start(func(*engine.Worker) { runErr <- s.Run() }); err != nil {
		t.Fatal(err)
	}
	// Registered after the harness's cleanup, so it runs before the ports
	// close.
	t.Cleanup(func() {
		w.Stop()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	})
	return &got
}

// waitHandled waits until n frames were handled, or fails after d.
func waitHandled(t *testing.T, got *atomic.Int64, n int64, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for got.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d frames handled after %v", what, got.Load(), n, d)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// One frame at a time on the wire, as at light load: it lands, raises the
// interrupt, the softirq polls it and re-arms. None of it may allocate.
func TestNAPIOnTheWireAllocatesNothingPerFrame(t *testing.T) {
	h := newHarness(t, Config{})
	p := h.pair.Ports[1]
	got := runSoftirq(t, p)
	f := udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, 1)
	one := make([]engine.Mbuf, 1)
	sent := int64(0)
	stuck := false
	send := func() {
		one[0] = h.mbuf(f)
		h.pair.Ports[0].TxBurst(0, one)
		sent++
		// Wait for the frame to be handled and the queue re-armed.
		for i := 0; got.Load() < sent || !p.rxq[0].irq.Armed(); i++ {
			if i > 10_000_000 {
				stuck = true
				return
			}
			runtime.Gosched()
		}
	}
	for i := 0; i < 2*txFreeThresh; i++ { // every cache met once
		send()
	}
	allocs := testing.AllocsPerRun(200, send)
	if stuck {
		t.Fatalf("%d of %d frames handled: the softirq is stuck", got.Load(), sent)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per frame from landing to re-arm", allocs)
	}
	// Every frame raised an interrupt on the sender's thread, and the time
	// it took is summed where a benchmark can charge it to the softirq.
	rx, _ := engine.PortStats(p)
	if rx.Interrupts == 0 || p.InterruptTime() <= 0 {
		t.Fatalf("%d interrupts took %v", rx.Interrupts, p.InterruptTime())
	}
}

// A delay line delivers every frame whatever the coalescing: the interrupt
// is raised once the frames come due, whether rx-usecs is shorter than the
// delay or not. The sender lands frames while the softirq receives, so the
// race detector sees whether anyone but the receiver looks into the rings.
func TestDelayLineDeliversEveryFrameWhateverTheCoalescing(t *testing.T) {
	for _, c := range []struct{ usecs, frames int }{{0, 0}, {50, 0}, {50, 4}, {20000, 1000}} {
		h := newHarness(t, Config{Queues: 2, Impair: [2]Impairment{{Delay: 2 * time.Millisecond, Seed: 1}}})
		p := h.pair.Ports[1]
		if err := p.SetCoalesce(c.usecs, c.frames); err != nil {
			t.Fatal(err)
		}
		got := runSoftirq(t, p)
		h.send(0, 0, udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, 1))
		what := fmt.Sprintf("rx-usecs %d rx-frames %d", c.usecs, c.frames)
		waitHandled(t, got, 1, 2*time.Second, what+", one frame")
		sent := int64(1)
		for i := 0; i < 60; i++ {
			var fs [][]byte
			for j := 0; j <= i%5; j++ {
				fs = append(fs, udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, uint16(1000+i+j), 9, 1))
			}
			h.send(0, i%2, fs...)
			sent += int64(len(fs))
			time.Sleep(time.Duration(i%3) * 300 * time.Microsecond)
		}
		waitHandled(t, got, sent, 3*time.Second, what+", bursts")
	}
}

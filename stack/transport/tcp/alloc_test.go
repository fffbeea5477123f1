package tcp

import (
	"testing"
)

// pass hands every segment from sent to to, as the wire would hand the
// packet itself, reusing from's outbox.
func pass(from, to *end) int {
	from.sh.Lock()
	out := from.sh.out
	from.sh.out = from.sh.out[:0]
	from.sh.Unlock()
	to.sh.Lock()
	for _, o := range out {
		to.tbl.Input(0, o.m, 0, o.src, o.dst, false)
	}
	to.sh.Unlock()
	return len(out)
}

func TestASteadyStreamAllocatesNothingPerSegment(t *testing.T) {
	r := newRig(t, Config{}, Config{})
	a, b := r.ends[0], r.ends[1]
	a.sh.reuse, b.sh.reuse = true, true
	l := b.listen(80, Options{})
	ca := a.open(0, addrB, 80, Options{NoDelay: true})
	r.pump(8)
	cb := b.accept(l)
	wbuf := make([]byte, 32<<10)
	rbuf := make([]byte, 64<<10)
	round := func() {
		if _, err := ca.Write(wbuf); err != nil {
			t.Fatal(err)
		}
		got := 0
		for i := 0; i < 64 && got < len(wbuf); i++ {
			pass(a, b)
			for cb.avail.Load() > 0 {
				n, err := cb.Read(rbuf)
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			pass(b, a)
		}
		if got != len(wbuf) {
			t.Fatalf("read %d of %d bytes", got, len(wbuf))
		}
		r.clock.Add(100_000)
	}
	for range 200 { // warm up: queues, scoreboard and windows grow once
		round()
	}
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Errorf("%v allocations per 32 KiB written, sent, acknowledged and read; want 0", n)
	}
}

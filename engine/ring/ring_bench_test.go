package ring

import (
	"runtime"
	"sync"
	"testing"
)

// elem stands in for pollnet's uint32 mbuf index type.
type elem uint32

const (
	benchSize  = 1024
	benchBurst = 32
)

// In every benchmark b.N counts elements moved through the ring, so ns/op is
// the cost per element; ns/elem repeats it under an explicit name.
func reportPerElem(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/elem")
}

type burstRing interface {
	EnqueueBurst([]elem) int
	DequeueBurst([]elem) int
	Enqueue(elem) bool
	Dequeue() (elem, bool)
}

func BenchmarkSPSC(b *testing.B) {
	mk := func(b *testing.B) burstRing {
		r, err := NewSPSC[elem](benchSize)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	benchAll(b, mk)
}

func BenchmarkMPMC(b *testing.B) {
	mk := func(b *testing.B) burstRing {
		r, err := NewMPMC[elem](benchSize)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	benchAll(b, mk)
}

func benchAll(b *testing.B, mk func(*testing.B) burstRing) {
	b.Run("single", func(b *testing.B) { benchSingle(b, mk(b)) })
	b.Run("burst32", func(b *testing.B) { benchBurstOne(b, mk(b)) })
	b.Run("pair32", func(b *testing.B) { benchPair(b, mk(b)) })
}

// benchSingle enqueues and dequeues one element at a time in one goroutine.
func benchSingle(b *testing.B, r burstRing) {
	b.ReportAllocs()
	for i := range b.N {
		r.Enqueue(elem(i))
		r.Dequeue()
	}
	reportPerElem(b)
}

// benchBurstOne moves bursts of 32 in and out in one goroutine: the cost of
// the ring itself with no cache-line transfer between cores.
func benchBurstOne(b *testing.B, r burstRing) {
	b.ReportAllocs()
	var in, out [benchBurst]elem
	for n := 0; n < b.N; n += benchBurst {
		k := min(benchBurst, b.N-n)
		r.EnqueueBurst(in[:k])
		r.DequeueBurst(out[:k])
	}
	reportPerElem(b)
}

// benchPair runs a producer goroutine and a consumer goroutine moving bursts
// of up to 32, as between an rx core and a worker core.
func benchPair(b *testing.B, r burstRing) {
	b.ReportAllocs()
	var wg sync.WaitGroup
	wg.Go(func() {
		var in [benchBurst]elem
		idle := 0
		for sent := 0; sent < b.N; {
			n := r.EnqueueBurst(in[:min(benchBurst, b.N-sent)])
			sent += n
			idle = backoff(n, idle)
		}
	})
	var out [benchBurst]elem
	idle := 0
	for got := 0; got < b.N; {
		n := r.DequeueBurst(out[:])
		got += n
		idle = backoff(n, idle)
	}
	wg.Wait()
	reportPerElem(b)
}

// backoff busy-polls like a pinned core would, but yields now and then so
// the benchmark still finishes if the two goroutines share one core.
func backoff(moved, idle int) int {
	if moved > 0 {
		return 0
	}
	if idle++; idle%64 == 0 {
		runtime.Gosched()
	}
	return idle
}

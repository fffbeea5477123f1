package timer

import (
	"math/rand/v2"
	"testing"
)

// delays are 4096 deadlines from 1 ms to about an hour, most of them short,
// as retransmission, delayed-ACK and keepalive timers are.
var delays = func() []int64 {
	rng := rand.New(rand.NewPCG(3, 4))
	d := make([]int64, 4096)
	for i := range d {
		switch rng.IntN(8) {
		case 0:
			d[i] = 1e6 + rng.Int64N(3600e9)
		case 1, 2:
			d[i] = 1e6 + rng.Int64N(5e9)
		default:
			d[i] = 1e6 + rng.Int64N(300e6)
		}
	}
	return d
}()

// BenchmarkArmCancel is one Arm and one Cancel of a timer at a 1 ms tick,
// among 4096 others armed.
func BenchmarkArmCancel(b *testing.B) {
	var w Wheel
	w.Init(0, 0)
	ts := make([]Timer, len(delays))
	for i := range ts {
		ts[i].Init(func(int64) {})
		w.Arm(&ts[i], delays[i])
	}
	var t Timer
	t.Init(func(int64) {})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.Arm(&t, delays[i%len(delays)])
		w.Cancel(&t)
	}
}

// BenchmarkAdvance is one Advance by a 1 ms tick of a wheel holding 64k
// timers that re-arm themselves when they fire; it reports the time per
// timer fired as well.
func BenchmarkAdvance(b *testing.B) {
	var w Wheel
	w.Init(0, 0)
	ts := make([]Timer, 1<<16)
	for i := range ts {
		ts[i].Init(func(now int64) { w.Arm(&ts[i], now+delays[i%len(delays)]) })
		w.Arm(&ts[i], delays[i%len(delays)])
	}
	now := int64(0)
	fired := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		now += 1e6
		fired += w.Advance(now)
	}
	if fired > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(fired), "ns/fired")
	}
}

package kernel

import (
	"context"
	"maps"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
	"golang.org/x/sys/unix"
)

// window is what sampleRates saw over the measured part of one run.
type window struct {
	samples []float64     // events per second, one per sample interval
	events  uint64        // events counted over the whole measured span
	span    time.Duration // the measured span
	cpu     time.Duration // this process's user+system CPU over the span
}

// sampleRates waits out the warmup, then reads count at the end of each of
// w's sample intervals and turns the differences into rates per second. It
// times each interval by the clock rather than trusting the timer, so a late
// wake-up lowers neither the rate nor its accuracy. It returns early with
// the context's cause when ctx ends (a load goroutine failing cancels it).
func sampleRates(ctx context.Context, w workload.Workload, count func() uint64) (window, error) {
	if w.Warmup > 0 {
		t := time.NewTimer(w.Warmup)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return window{}, context.Cause(ctx)
		}
	}
	interval, n := w.Interval(), w.Windows()
	start, c0, cpu0 := time.Now(), count(), cpuTime()
	prevT, prevC := start, c0
	samples := make([]float64, 0, n)
	t := time.NewTimer(interval)
	defer t.Stop()
	for i := 1; i <= n; i++ {
		t.Reset(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-t.C:
		case <-ctx.Done():
			return window{}, context.Cause(ctx)
		}
		now, c := time.Now(), count()
		samples = append(samples, float64(c-prevC)/now.Sub(prevT).Seconds())
		prevT, prevC = now, c
	}
	return window{samples: samples, events: prevC - c0, span: prevT.Sub(start), cpu: cpuTime() - cpu0}, nil
}

// cpuTime is this process's user plus system CPU time. Kernel work done on
// our behalf in a syscall (for loopback and veth, the receive softirq runs on
// the sender's syscall exit) is in it; work that ksoftirqd does is not.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runs pools the windows of a scenario's repeats.
type runs struct {
	samples  []float64
	events   uint64
	span     time.Duration
	cpu      time.Duration
	counters map[string]uint64
}

func (r *runs) add(w window, counters map[string]uint64) {
	r.samples = append(r.samples, w.samples...)
	r.events += w.events
	r.span += w.span
	r.cpu += w.cpu
	if r.counters == nil {
		r.counters = map[string]uint64{}
	}
	for k, v := range counters {
		r.counters[k] += v
	}
}

// scenario is a measured result.Scenario of the kernel peer with its
// summary filled in and the CPU cost per event in Extra.
func (r *runs) scenario(name, path, port string, knobs map[string]any, metric, unit string) (result.Scenario, error) {
	sc := result.Scenario{
		Name: name, Path: path, Port: port, Knobs: knobs,
		Metric: metric, Unit: unit,
		Samples:    r.samples,
		CPUSeconds: r.cpu.Seconds(),
		Counters:   maps.Clone(r.counters),
		Extra:      map[string]float64{"measured_seconds": r.span.Seconds()},
	}
	if err := sc.Summarise(); err != nil {
		return sc, err
	}
	return sc, nil
}

// measure runs once n times and pools what the runs measured into one
// scenario. A run that fails turns the scenario into a skipped one carrying
// the failure, so the peer's other scenarios survive; the error is only the
// context's end or a summary that could not be made.
func measure(ctx context.Context, n int, name, path, port string, knobs map[string]any, metric, unit string,
	once func() (window, map[string]uint64, error)) (result.Scenario, runs, error) {
	var rs runs
	for range n {
		win, counters, err := once()
		if ctx.Err() != nil {
			return result.Scenario{}, rs, ctx.Err()
		}
		if err != nil {
			return skipped(name, path, port, knobs, metric, unit, skipReason(err)), rs, nil
		}
		rs.add(win, counters)
	}
	sc, err := rs.scenario(name, path, port, knobs, metric, unit)
	return sc, rs, err
}

// skipped is a scenario that did not run, with the reason and the knobs it
// would have run with, so a reader sees what is missing.
func skipped(name, path, port string, knobs map[string]any, metric, unit, reason string) result.Scenario {
	return result.Scenario{Name: name, Path: path, Port: port, Knobs: knobs, Metric: metric, Unit: unit, Skipped: reason}
}

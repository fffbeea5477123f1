package kernel

import (
	"context"
	"maps"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
	"golang.org/x/sys/unix"
)

// window is what one run measured over its measured span (the warm-up
// left out): one run gives one sample, events over span.
type window struct {
	// rate, when not 0, is the run's sample as a tool reported it
	// (iperf3's receiver figure); 0 means events over span.
	rate     float64
	events   uint64            // events counted over the measured span
	span     time.Duration     // the measured span
	cpu      time.Duration     // this process's user+system CPU over the span
	counters map[string]uint64 // the run's counters, over the span only
	lat      []int64           // round-trip times in ns, for udp_rr
}

// probe is what measureWindow reads of a run.
type probe struct {
	// count is the events the metric counts (datagrams read, bytes read,
	// transactions, connections).
	count func() uint64
	// snap, if not nil, returns the run's counters; the window keeps
	// their increase over the span, so no counter includes the warm-up.
	snap func() map[string]uint64
	// key, if not "", names the counter of snap that counts the events:
	// the events then come from the same reads as the counters, so the
	// two agree however the load preempts the reads between them.
	key string
	// measuring, if not nil, is called with true as the window opens and
	// false as it closes (udp_rr keeps round-trip times only inside).
	measuring func(bool)
}

// loadBounds bounds a run's load loops: they stop by the deadline, a second
// past warm-up and window, and after limit events, what maxRate events a
// second would do in that time, whichever comes first.
func loadBounds(w workload.Workload, maxRate float64) (deadline time.Time, limit uint64) {
	span := w.Warmup + w.Duration + time.Second
	return time.Now().Add(span), uint64(span.Seconds() * maxRate)
}

// measureWindow waits out the warm-up, then reads the probe at the start
// and at the end of w.Duration: the run's measured window. It times the
// window by the clock rather than trusting the timer, so a late wake-up
// changes neither the rate nor its accuracy. It returns early with the
// context's cause when ctx ends (a load goroutine failing cancels it).
func measureWindow(ctx context.Context, w workload.Workload, pr probe) (window, error) {
	sleep := func(d time.Duration) error {
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := sleep(w.Warmup); err != nil {
		return window{}, err
	}
	var before map[string]uint64
	if pr.snap != nil {
		before = pr.snap()
	}
	if pr.measuring != nil {
		pr.measuring(true)
	}
	start, c0, cpu0 := time.Now(), pr.count(), cpuTime()
	err := sleep(w.Duration)
	end, c1, cpu1 := time.Now(), pr.count(), cpuTime()
	if pr.measuring != nil {
		pr.measuring(false)
	}
	if err != nil {
		return window{}, err
	}
	win := window{events: c1 - c0, span: end.Sub(start), cpu: cpu1 - cpu0}
	if pr.snap != nil {
		win.counters = delta(before, pr.snap())
		if pr.key != "" {
			win.events = win.counters[pr.key]
		}
	}
	return win, nil
}

// delta is after - before per counter; a counter that went backwards (a
// wrapped or reset kernel counter) counts 0.
func delta(before, after map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(after))
	for k, v := range after {
		out[k] = v - min(v, before[k])
	}
	return out
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

// maxLatencies bounds the round-trip times a scenario keeps over all its
// runs (8 MiB); the percentiles then cover the first this many.
const maxLatencies = 1 << 20

// runs pools a scenario's independent runs: one sample each, the events,
// spans, CPU and counters summed, the round-trip times concatenated.
type runs struct {
	samples  []float64
	events   uint64
	span     time.Duration
	cpu      time.Duration
	counters map[string]uint64
	lat      []int64
}

// add pools one run; scale turns its events per second into the metric
// (8 for bytes counted and bits/s reported).
func (r *runs) add(w window, scale float64) {
	rate := w.rate
	if rate == 0 {
		rate = float64(w.events) * scale / w.span.Seconds()
	}
	r.samples = append(r.samples, rate)
	r.events += w.events
	r.span += w.span
	r.cpu += w.cpu
	if r.counters == nil {
		r.counters = map[string]uint64{}
	}
	for k, v := range w.counters {
		r.counters[k] += v
	}
	if room := maxLatencies - len(r.lat); room > 0 {
		r.lat = append(r.lat, w.lat[:min(room, len(w.lat))]...)
	}
}

// spec is what names a scenario of the kernel peers, measured or skipped.
type spec struct {
	name, path, port string
	knobs            map[string]any
	metric, unit     string
	scale            float64 // events per second to the metric; 0 means 1
}

// unpinned are the roles of every kernel scenario: a client (or sender)
// and a server (or receiver) goroutine, neither pinned to a core.
func unpinned() map[string]int { return map[string]int{"client": -1, "server": -1} }

// base is a scenario with its names and the provenance every scenario
// carries: roles, GOMAXPROCS, warm-up and the number of runs.
func (s spec) base(w workload.Workload) result.Scenario {
	return result.Scenario{
		Name: s.name, Path: s.path, Port: s.port, Knobs: s.knobs, Metric: s.metric, Unit: s.unit,
		Roles: unpinned(), GOMAXPROCS: runtime.GOMAXPROCS(0), WarmupS: w.Warmup.Seconds(), Repeat: w.Runs(),
	}
}

// skipped is a scenario that did not run, with the reason and the knobs it
// would have run with, so a reader sees what is missing.
func (s spec) skipped(w workload.Workload, reason string) result.Scenario {
	sc := s.base(w)
	sc.Skipped = reason
	return sc
}

// scenario is the measured scenario of pooled runs, summary filled in,
// with the measured time and, over at least one round trip, the latency
// percentiles in Extra.
func (s spec) scenario(w workload.Workload, r *runs) (result.Scenario, error) {
	sc := s.base(w)
	sc.Samples = r.samples
	sc.CPUSeconds = r.cpu.Seconds()
	sc.Counters = maps.Clone(r.counters)
	sc.Extra = map[string]float64{"measured_seconds": r.span.Seconds()}
	if len(r.lat) > 0 {
		lat := slices.Clone(r.lat)
		slices.Sort(lat)
		sc.Extra["latency_p50_ns"] = float64(nearestRank(lat, 50))
		sc.Extra["latency_p99_ns"] = float64(nearestRank(lat, 99))
		sc.Extra["latency_p999_ns"] = float64(nearestRank(lat, 99.9))
		sc.Extra["latency_max_ns"] = float64(lat[len(lat)-1])
		sc.Extra["latency_samples"] = float64(len(lat))
	}
	if err := sc.Summarise(); err != nil {
		return sc, err
	}
	return sc, nil
}

// nearestRank is the p-th percentile of sorted by the nearest-rank method:
// the smallest value with at least p% of the data at or below it, always a
// value that was measured.
func nearestRank(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(float64(len(sorted)) * p / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// measure runs once w.Runs() times, each an independent run with its own
// set-up and warm-up, and pools them into one scenario, one sample per run.
// A run that fails turns the scenario into a skipped one carrying the
// failure, so the peer's other scenarios survive; the error is only the
// context's end or a summary that could not be made.
func measure(ctx context.Context, w workload.Workload, s spec, once func() (window, error)) (result.Scenario, runs, error) {
	scale := s.scale
	if scale == 0 {
		scale = 1
	}
	var rs runs
	for range w.Runs() {
		win, err := once()
		if ctx.Err() != nil {
			return result.Scenario{}, rs, ctx.Err()
		}
		if err != nil {
			return s.skipped(w, skipReason(err)), rs, nil
		}
		rs.add(win, scale)
	}
	sc, err := s.scenario(w, &rs)
	return sc, rs, err
}

package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/pollnet/pollnet/bench/progress"
	"github.com/pollnet/pollnet/engine"
)

// sampling is one measurement: a warm-up, then a counter read Repeat times,
// at equal intervals over Duration, each reading turned into a rate per
// second.
type sampling struct {
	Progress io.Writer
	Label    string
	Warmup   time.Duration
	Duration time.Duration
	Repeat   int           // samples (default 5)
	Count    func() uint64 // the counter to turn into a rate
	// Extra, if set, is read at every sample too; its rates are returned
	// alongside (a CPU time in nanoseconds gives a share of a core).
	Extra func() uint64
	// Measuring is called once the warm-up ends, before the first reading;
	// Measured right after the last one.
	Measuring, Measured func()
	// Status formats the progress bar's text from the last rate.
	Status func(rate, extra float64) string
	// Avoid are cores the sampler must not run on: the device under
	// test's, so that its readings and progress bar never take the
	// device's core.
	Avoid []int
}

// sampled is what a sampling measured.
type sampled struct {
	Rates  []float64 // Count per second, one per sample
	Extras []float64 // Extra per second (nanoseconds per second: a share)
	Wall   time.Duration
	Total  uint64 // Count's increase over the measured time
	Bar    *progress.Bar
}

// run performs the sampling, off the cores in Avoid; it returns when
// Warmup+Duration have passed.
func (sp sampling) run() sampled {
	var pinned []int
	for _, c := range sp.Avoid {
		if c >= 0 {
			pinned = append(pinned, c)
		}
	}
	if len(pinned) == 0 {
		return sp.sample()
	}
	cores, err := publisherCores(pinned)
	if err != nil {
		return sp.sample() // nowhere else to go: a one-core process
	}
	out := make(chan sampled, 1)
	go func() {
		if err := lockThreadTo(cores); err != nil && sp.Progress != nil {
			fmt.Fprintf(sp.Progress, "sampler: could not leave cores %s: %v\n", engine.FormatCores(pinned), err)
		}
		out <- sp.sample()
	}()
	return <-out
}

// sample is run on the calling goroutine.
func (sp sampling) sample() sampled {
	var bar *progress.Bar
	if sp.Progress != nil {
		bar = progress.New(sp.Progress, sp.Label, sp.Warmup+sp.Duration)
	}
	t0 := time.Now()
	tick := time.NewTicker(min(100*time.Millisecond, max(sp.Duration/time.Duration(max(sp.Repeat, 5))/4, time.Millisecond)))
	defer tick.Stop()
	for time.Since(t0) < sp.Warmup {
		<-tick.C
		if bar != nil {
			bar.Update(time.Since(t0), "warm-up")
		}
	}
	if sp.Measuring != nil {
		sp.Measuring()
	}
	extra := func() uint64 { return 0 }
	if sp.Extra != nil {
		extra = sp.Extra
	}
	repeat := sp.Repeat
	if repeat <= 0 {
		repeat = 5
	}
	every := sp.Duration / time.Duration(repeat)
	start := time.Now()
	n0 := sp.Count()
	lastT, lastN, lastX := start, n0, extra()
	var out sampled
	// The loop always ends on a reading at or after Duration, even when the
	// sampler was descheduled past the end before its first tick.
	for done := false; !done; {
		<-tick.C
		now := time.Now()
		done = now.Sub(start) >= sp.Duration
		if (now.Sub(lastT) >= every && len(out.Rates) < repeat-1) || done {
			n, x := sp.Count(), extra()
			el := now.Sub(lastT).Seconds()
			out.Rates = append(out.Rates, float64(n-lastN)/el)
			out.Extras = append(out.Extras, float64(x-lastX)/1e9/el)
			lastT, lastN, lastX = now, n, x
		}
		if bar != nil && sp.Status != nil && len(out.Rates) > 0 {
			k := len(out.Rates) - 1
			bar.Update(now.Sub(t0), sp.Status(out.Rates[k], out.Extras[k]))
		} else if bar != nil {
			bar.Update(now.Sub(t0), "…")
		}
	}
	// The window ends at the last reading: the rates, the total and the
	// wall time all cover the same span, and Measured reads its counters
	// at its end, not whenever the caller gets back.
	out.Wall = lastT.Sub(start)
	out.Total = lastN - n0
	if sp.Measured != nil {
		sp.Measured()
	}
	out.Bar = bar
	return out
}

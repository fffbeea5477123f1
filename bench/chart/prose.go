package chart

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pollnet/pollnet/internal/result"
)

// shortName names a scenario in prose: its name, path and port, and the
// knobs that say what work it did (size, payload, queues, copy, load).
func shortName(s *result.Scenario) string {
	parts := []string{s.Name, s.Path}
	if s.Port != "" {
		parts[1] += " (" + s.Port + ")"
	}
	for _, k := range []string{"size", "payload", "queues", "zero_copy", "copy", "rate", "offered_pps", "load_share"} {
		if v, ok := s.Knobs[k]; ok && !(k == "rate" && formatKnob(v) == "0") {
			parts = append(parts, knobPart(k, v))
		}
	}
	return strings.Join(parts, " ")
}

// spreadSummary says how far the repeated measurements of one scenario
// lie apart in this run, as the ratio of the largest to the smallest (the
// median of that ratio over the scenarios, and the widest): the honest
// measure of how much an absolute figure from this machine can move,
// computed rather than guessed. "" when no scenario has two measurements.
func spreadSummary(run *result.Run) string {
	type spr struct {
		ratio float64
		s     *result.Scenario
	}
	var all []spr
	repeats := true
	for i := range run.Scenarios {
		s := &run.Scenarios[i]
		if !ran(s) || len(s.Samples) < 2 || !(s.Min > 0) || !finite(s.Max/s.Min) {
			continue
		}
		all = append(all, spr{s.Max / s.Min, s})
		repeats = repeats && s.Repeat > 0
	}
	if len(all) == 0 {
		return ""
	}
	slices.SortStableFunc(all, func(a, b spr) int {
		switch {
		case a.ratio < b.ratio:
			return -1
		case a.ratio > b.ratio:
			return 1
		}
		return 0
	})
	med := all[len(all)/2].ratio
	if len(all)%2 == 0 {
		med = (all[len(all)/2-1].ratio + all[len(all)/2].ratio) / 2
	}
	worst := all[len(all)-1]
	what := "independent runs"
	if !repeats {
		what = "samples (slices of one run, in files from before repeats)"
	}
	return fmt.Sprintf("Spread between the largest and smallest of a scenario's %s, in this run: %s at the median over %d scenarios, %s at the widest (%s). Absolute figures on this machine can move that much; ratios between paths measured side by side in one run are what to compare.",
		what, ratio2(med), len(all), ratio2(worst.ratio), shortName(worst.s))
}

// ratio2 writes a ratio as "1.08×".
func ratio2(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) + "×" }

// harnessSummary names the rate scenarios whose device under test was
// busy less than busyThreshold of the time: the generator or the sink, not
// the device, set their rate. "" when there are none.
func harnessSummary(run *result.Run) string {
	var names []string
	n := 0
	for i := range run.Scenarios {
		s := &run.Scenarios[i]
		if !ran(s) || !isRate(s) || offeredLoad(s) {
			continue // at an offered load the device is meant to idle
		}
		if busy, ok := harnessLimited(s); ok {
			n++
			if len(names) < 6 {
				names = append(names, fmt.Sprintf("%s at dut_busy %.2f", shortName(s), busy))
			}
		}
	}
	if n == 0 {
		return ""
	}
	list := strings.Join(names, "; ")
	if n > len(names) {
		list += fmt.Sprintf("; and %d more", n-len(names))
	}
	noun := "scenarios ran"
	if n == 1 {
		noun = "scenario ran"
	}
	return fmt.Sprintf("%d %s with the device under test busy less than %.0f%% of the time (%s): the harness (generator or sink) set their rate, not the device, so no throughput ratio is quoted for them.",
		n, noun, 100*busyThreshold, list)
}

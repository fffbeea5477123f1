package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/pollnet/pollnet/internal/result"
)

// The zero-loss throughput of RFC 2544 (section 26.1, "Throughput"): the
// fastest rate at which the device forwards every frame offered to it, found
// by a binary search on the offered rate with trials of fixed length. As the
// RFC allows for a device that is not expected to be perfect, a trial passes
// with a loss ratio up to MaxLoss (0.001%, as the issue asks; RFC 2544 itself
// counts any loss as a failure).

// searchConfig shapes the binary search.
type searchConfig struct {
	MaxLoss    float64 // the largest loss ratio a trial may have and pass
	Resolution float64 // stop once the bracket is at most this share of the passing rate
	MaxTrials  int     // the most trials one search runs, the first included
}

// Defaults of the zero-loss search.
const (
	DefaultMaxLoss    = 1e-5 // 0.001%
	DefaultResolution = 0.02
	DefaultMaxTrials  = 12
	DefaultTrial      = time.Second
	// DefaultSettle is the time between setting a trial's rate and its
	// window: long enough for the rings and the pacer to reach the new
	// rate (a 1024-descriptor ring drains in well under a millisecond).
	DefaultSettle = 100 * time.Millisecond
	// typicalTrials is what a search takes when it has to bisect from 0
	// (the tests' fake devices take 9 or 10; one whose zero-loss rate is
	// what it forwards when saturated takes 3), for estimates.
	typicalTrials = 9
)

// trial is one trial of a search.
type trial struct {
	Rate     float64 // the offered rate asked for; 0: as fast as the generator can
	Offered  float64 // the rate offered, packets per second
	Received float64 // the rate received at the sink
	Loss     float64 // the loss ratio
	w        window
}

func (t trial) passes(c searchConfig) bool { return t.Loss <= c.MaxLoss && t.Offered > 0 }

// trialFunc runs one trial at an offered rate.
type trialFunc func(rate float64) (trial, error)

// search is the outcome of one binary search.
type search struct {
	Trials []trial
	Top    int // index of the first trial, at the top rate
	Best   int // index of the fastest passing trial; -1 if none passed
	// Lo and Hi bracket the zero-loss rate when the search stopped: Lo
	// passed (0 if nothing did), Hi lost.
	Lo, Hi float64
	// Converged is whether the bracket closed to the resolution (or the
	// top rate passed).
	Converged bool
	// HarnessLimit says the generator was the limit: the top rate passed,
	// or a passing trial could not be offered at the rate asked for.
	HarnessLimit bool
}

// Rate is the zero-loss rate found: the received rate of the best trial.
func (s *search) Rate() float64 {
	if s.Best < 0 {
		return 0
	}
	return s.Trials[s.Best].Received
}

// searchZeroLoss runs the binary search. The first trial offers as fast as
// the generator can; if it loses nothing, that rate is the answer and the
// generator, not the device, was the limit. Otherwise the zero-loss rate lies
// between 0 and the rate offered: the second trial offers what the device
// got through at the top (a saturated device's capacity, often just
// passing); if it passes, the third offers one resolution step more, which
// closes the bracket if it loses. Each trial after those halves the bracket,
// until it is within Resolution of the passing rate or MaxTrials are spent.
//
// The bracket moves on the rates offered, not asked for: a trial offered
// less than asked (the generator fell short) that lost frames lowers the
// upper bound to what was offered; one that passed ends the search, as the
// generator cannot offer more.
func searchZeroLoss(c searchConfig, run trialFunc) (search, error) {
	s := search{Best: -1}
	top, err := run(0)
	if err != nil {
		return s, err
	}
	s.Trials = append(s.Trials, top)
	if top.passes(c) {
		s.Best, s.Lo, s.Hi, s.Converged, s.HarnessLimit = 0, top.Offered, top.Offered, true, true
		return s, nil
	}
	s.Hi = top.Offered
	next := min(top.Received, s.Hi*(1-c.Resolution))
	if !(next > 0) {
		next = s.Hi / 2
	}
	// closed is whether the bracket is within the resolution (with room
	// for the rounding of a rate that is exactly one step above another).
	closed := func() bool { return s.Lo > 0 && s.Hi-s.Lo <= c.Resolution*s.Lo*(1+1e-9) }
	for len(s.Trials) < max(c.MaxTrials, 2) {
		if closed() {
			break
		}
		t, err := run(next)
		if err != nil {
			return s, err
		}
		s.Trials = append(s.Trials, t)
		short := t.Offered < next*(1-c.Resolution/2)
		switch {
		case t.passes(c) && short:
			// Asked for more than the generator could offer, and lost
			// nothing: what it offered is as fast as this harness goes.
			s.Best, s.Lo, s.Hi, s.HarnessLimit = len(s.Trials)-1, t.Offered, t.Offered, true
			s.Converged = true
			return s, nil
		case t.passes(c):
			s.Best, s.Lo = len(s.Trials)-1, next
			if len(s.Trials) == 2 {
				// What a saturated device got through passed: its
				// zero-loss rate is most likely just that. A trial one
				// resolution step above it closes the bracket if it
				// loses.
				if up := next * (1 + c.Resolution); up < s.Hi {
					next = up
					continue
				}
			}
		case short:
			s.Hi = min(next, t.Offered)
		default:
			s.Hi = next
		}
		if s.Hi <= s.Lo {
			// A rate below one that passed lost frames (the device or
			// the machine is noisy): trust neither, search below.
			s.Lo, s.Best = 0, -1
		}
		next = (s.Lo + s.Hi) / 2
	}
	s.Converged = closed()
	return s, nil
}

// ZeroLossConfig is the zero_loss scenario: per mode and frame size, Repeat
// independent runs (interleaved between the modes), each a warm-up then a
// whole binary search with trials of Trial, on one rig.
type ZeroLossConfig struct {
	PPSConfig
	SearchOptions
	// EmitPPS also reports each run's first trial, at the top rate, as a
	// "pps" scenario: the maximum forwarding rate with its dut_busy, at no
	// extra cost (the quick suite does so instead of a pps scenario).
	EmitPPS bool
}

// SearchOptions shape a zero-loss search, on any rig.
type SearchOptions struct {
	MaxLoss    float64       // default DefaultMaxLoss; negative: no loss at all
	Resolution float64       // default DefaultResolution
	MaxTrials  int           // default DefaultMaxTrials
	Trial      time.Duration // default DefaultTrial
	Settle     time.Duration // default DefaultSettle
}

// fill sets the defaults of the options left zero.
func (o *SearchOptions) fill() {
	if o.MaxLoss == 0 {
		o.MaxLoss = DefaultMaxLoss
	}
	if o.Resolution == 0 {
		o.Resolution = DefaultResolution
	}
	if o.MaxTrials == 0 {
		o.MaxTrials = DefaultMaxTrials
	}
	if o.Trial == 0 {
		o.Trial = DefaultTrial
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
}

// validate refuses filled options the search cannot run with.
func (o *SearchOptions) validate() error {
	if !(o.MaxLoss < 1) || !(o.Resolution > 0 && o.Resolution < 1) || o.MaxTrials < 2 || o.MaxTrials > 100 {
		return flagErr("zero_loss: loss bound %v, resolution %v, trials %d out of range", o.MaxLoss, o.Resolution, o.MaxTrials)
	}
	return nil
}

func (o *SearchOptions) search() searchConfig {
	return searchConfig{MaxLoss: max(o.MaxLoss, 0), Resolution: o.Resolution, MaxTrials: o.MaxTrials}
}

func (c *ZeroLossConfig) fill() {
	if c.Name == "" {
		c.Name = "zero_loss"
	}
	c.SearchOptions.fill()
	c.Rate = 0
	c.NoTraffic = false
}

// Validate refuses what the search cannot run with.
func (c *ZeroLossConfig) Validate() error {
	cc := *c
	cc.fill()
	cc.Duration = cc.Trial
	if err := cc.PPSConfig.Validate(); err != nil {
		return err
	}
	return cc.SearchOptions.validate()
}

// ZeroLossResult is one mode and frame size.
type ZeroLossResult struct {
	Mode     Mode
	Size     int
	Searches []search // one per run
	Scenario result.Scenario
	// PPS is the top-rate trials as a "pps" scenario, with EmitPPS.
	PPS *result.Scenario
}

// RunZeroLoss runs the zero-loss search.
func RunZeroLoss(cfg ZeroLossConfig) ([]ZeroLossResult, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer raiseProcs(3)()
	pc := cfg.PPSConfig
	pc.Duration = cfg.Trial
	searches := map[slotKey][]search{}
	for _, sl := range runOrder(cfg.Sizes, cfg.Modes, cfg.repeat()) {
		s, err := cfg.runSearch(&pc, sl)
		if err != nil {
			return nil, fmt.Errorf("%s %s %d bytes, run %d of %d: %w", cfg.Name, sl.Mode, sl.Size, sl.Run+1, cfg.repeat(), err)
		}
		searches[sl.key()] = append(searches[sl.key()], s)
	}
	var out []ZeroLossResult
	for _, size := range cfg.Sizes {
		for _, mode := range cfg.Modes {
			r, err := cfg.result(&pc, mode, size, searches[slotKey{mode, size}])
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// runSearch is one run: a fresh rig, its warm-up, and a whole search on it.
func (c *ZeroLossConfig) runSearch(pc *PPSConfig, sl slot) (search, error) {
	wr, err := startRun(pc, c.Name, sl.Mode, sl.Size)
	if err != nil {
		return search{}, err
	}
	n := 0
	s, err := searchZeroLoss(c.search(), func(rate float64) (trial, error) {
		n++
		settle := c.Settle
		if n == 1 {
			settle = c.Warmup
		}
		target := "top"
		if rate > 0 {
			target = fmt.Sprintf("%.3f Mpps", rate/1e6)
		}
		label := fmt.Sprintf("%s %-4s %4dB run %d/%d trial %d at %s", c.Name, sl.Mode, sl.Size, sl.Run+1, c.repeat(), n, target)
		w, err := wr.measure(label, rate, settle, c.Trial, fmt.Sprintf("%s-%s-%dB", c.Name, sl.Mode, sl.Size))
		if err != nil {
			return trial{}, err
		}
		return trial{Rate: rate, Offered: w.OfferedRate(), Received: w.ReceivedRate(), Loss: w.LossRatio(), w: w}, nil
	})
	if ferr := wr.finish(); err == nil {
		err = ferr
	}
	return s, err
}

// result makes the scenario of one mode and size from its searches: the
// zero-loss rate of each run is a sample; dut_busy is the device's at the top
// rate (below 0.9 the generator and sink, not the device, set it); the
// counters are those of each run's best trial, summed.
func (c *ZeroLossConfig) result(pc *PPSConfig, mode Mode, size int, ss []search) (ZeroLossResult, error) {
	sc := pc.baseScenario(c.Name, mode, size)
	sc.Knobs["duration_s"] = c.Trial.Seconds()
	sc.Knobs["trial_s"] = c.Trial.Seconds()
	sc.Knobs["max_loss"] = max(c.MaxLoss, 0)
	sc.Knobs["resolution"] = c.Resolution
	sc.Metric, sc.Unit = "rx_pps", "packets/s"
	var best, top []window
	var trials, atBest, worstLoss, bracket []float64
	limited := 0
	for i := range ss {
		s := &ss[i]
		sc.Samples = append(sc.Samples, s.Rate())
		top = append(top, s.Trials[s.Top].w)
		trials = append(trials, float64(len(s.Trials)))
		if s.Best >= 0 {
			b := s.Trials[s.Best]
			best = append(best, b.w)
			atBest = append(atBest, b.w.Busy)
			worstLoss = append(worstLoss, b.Loss)
		}
		if s.Lo > 0 {
			bracket = append(bracket, (s.Hi-s.Lo)/s.Lo)
		}
		if s.HarnessLimit {
			limited++
		}
	}
	if err := fillWindows(&sc, best); err != nil {
		return ZeroLossResult{}, err
	}
	if sc.GOMAXPROCS == 0 && len(top) > 0 {
		sc.GOMAXPROCS = top[0].GOMAXPROCS
	}
	// dut_busy at the top rate: could the harness saturate the device?
	var topBusy, topShare []float64
	for i := range top {
		topBusy = append(topBusy, top[i].Busy)
		topShare = append(topShare, top[i].CPUShare())
	}
	ts, _ := result.Summarise(topShare)
	sc.Extra["dut_cpu_share_top"] = ts.Median
	tb, _ := result.Summarise(topBusy)
	sc.DUTBusy = &tb.Median
	sc.Extra["dut_busy_min"], sc.Extra["dut_busy_max"] = tb.Min, tb.Max
	if len(atBest) > 0 {
		ab, _ := result.Summarise(atBest)
		sc.Extra["dut_busy_at_zero_loss"] = ab.Median
		wl, _ := result.Summarise(worstLoss)
		sc.Extra["loss_ratio"] = wl.Max
	}
	tr, _ := result.Summarise(trials)
	sc.Extra["trials"] = tr.Median
	sc.Extra["trials_max"] = tr.Max
	if len(bracket) > 0 {
		br, _ := result.Summarise(bracket)
		sc.Extra["resolution_reached"] = br.Max
	}
	sc.Extra["harness_limited_runs"] = float64(limited)
	sc.Extra["passing_runs"] = float64(len(best))
	sc.Extra["mpps_median"] = sc.Median / 1e6
	sc.Counters["trials"] = uint64(sumFloats(trials))
	res := ZeroLossResult{Mode: mode, Size: size, Searches: ss, Scenario: sc}
	if c.EmitPPS {
		p := *pc
		p.Name = "pps"
		pr, err := p.ppsResult(mode, size, top)
		if err != nil {
			return ZeroLossResult{}, err
		}
		pr.Scenario.Knobs["duration_s"] = c.Trial.Seconds()
		pr.Scenario.Knobs["from"] = "zero_loss top-rate trial"
		res.PPS = &pr.Scenario
	}
	return res, nil
}

func sumFloats(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// FormatZeroLoss prints the zero-loss rates, then per frame size the PMD/NAPI
// ratio, or, where the harness could not saturate both devices, why not.
func FormatZeroLoss(w io.Writer, rs []ZeroLossResult) {
	fmt.Fprintf(w, "%-5s %6s %10s %21s %7s %9s %9s %9s %s\n",
		"mode", "size", "Mpps", "min..max", "trials", "loss", "busy top", "busy 0ls", "note")
	for _, r := range rs {
		sc := r.Scenario
		note := ""
		if sc.Extra["harness_limited_runs"] > 0 {
			note = "the generator was the limit"
		}
		if sc.Extra["passing_runs"] < float64(len(r.Searches)) {
			note = "a run found no passing rate"
		}
		fmt.Fprintf(w, "%-5s %6d %10.3f %10.3f..%-9.3f %7.0f %8.5f%% %9.2f %9.2f %s\n",
			r.Mode, r.Size, sc.Median/1e6, sc.Min/1e6, sc.Max/1e6, sc.Extra["trials"],
			100*sc.Extra["loss_ratio"], busy(sc), sc.Extra["dut_busy_at_zero_loss"], note)
	}
	for _, p := range pairZeroLoss(rs) {
		fmt.Fprintln(w, throughputRatio("zero-loss", p[0].Size, &p[0].Scenario, &p[1].Scenario))
	}
	for _, r := range rs {
		offCore(w, &r.Scenario, "dut_cpu_share_top", " at the top rate")
	}
}

// offCore prints a note when a poll-mode device under test was off its core
// for part of its window (its thread's CPU time over the wall time, Extra
// key, below BusyThreshold): a poller never sleeps, so the time went to other
// threads or processes, and frames that arrived meanwhile waited or were
// dropped. Such figures are the machine's as much as the device's.
func offCore(w io.Writer, sc *result.Scenario, key, where string) {
	v, ok := sc.Extra[key]
	if sc.Path != "pollnet-"+string(ModePMD) || !ok || v >= BusyThreshold {
		return
	}
	size := sc.Knobs["size"]
	fmt.Fprintf(w, "note: %s %v B: the pmd poller ran %.0f%% of the window%s; other threads or processes took its core\n",
		sc.Name, size, 100*v, where)
}

func busy(sc result.Scenario) float64 {
	if sc.DUTBusy == nil {
		return 0
	}
	return *sc.DUTBusy
}

// BusyThreshold is the dut_busy below which a throughput is the harness's,
// not the device's, and no ratio between modes is quoted.
const BusyThreshold = 0.9

// throughputRatio is the line that compares two modes' throughput at one
// size: the ratio when both devices were saturated, otherwise a note that
// says which was not.
func throughputRatio(what string, size int, pmd, napi *result.Scenario) string {
	line := fmt.Sprintf("pmd/napi %s at %d B: ", what, size)
	bp, bn := busy(*pmd), busy(*napi)
	if bp >= BusyThreshold && bn >= BusyThreshold && napi.Median > 0 {
		return line + fmt.Sprintf("throughput %.2fx (dut_busy %.2f and %.2f)", pmd.Median/napi.Median, bp, bn)
	}
	return line + fmt.Sprintf("no throughput ratio: dut_busy %.2f (pmd) and %.2f (napi) at the top rate; below %.1f the generator and sink, not the device, set the rate",
		bp, bn, BusyThreshold)
}

// pairZeroLoss finds, per frame size, the PMD and NAPI results.
func pairZeroLoss(rs []ZeroLossResult) [][2]ZeroLossResult {
	var pairs [][2]ZeroLossResult
	for i, a := range rs {
		if a.Mode != ModePMD {
			continue
		}
		for _, b := range rs[i+1:] {
			if b.Mode == ModeNAPI && b.Size == a.Size {
				pairs = append(pairs, [2]ZeroLossResult{a, b})
				break
			}
		}
	}
	return pairs
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
)

// The zero_loss scenario on a kernel interface (--port afpacket, afxdp or
// tap): the pps scenario's rig (pps_veth.go), its generator paced, and the
// RFC 2544 search of zeroloss.go run against each device under test. Offered
// as fast as the generator can, a veth in a 2-core VM livelocks: the kernel's
// receive processing and the poller take turns on one core, and the rate
// flips between runs. A paced search finds the rate each side forwards
// without loss instead, which holds still.
//
// A trial is counted by sequence number, as RFC 2544 counts frames sent and
// received: the generator notes the number of the next frame at the window's
// start and at its end, and after a drain the sink has counted the frames
// numbered in between that came back. So no frame in flight at either edge
// is mistaken for a loss or a gain, which a bound of 0.001% could not bear.
//
// One rig serves a whole search: pollnet's forwarder runs for all of it,
// and testpmd is launched once per search, long enough for every trial, and
// interrupted when the search ends.

// Defaults of the veth search beside those of zeroloss.go.
const (
	// DefaultDrain is the wait after a trial's window before its frames
	// are counted: far more than a full ring takes to forward at the
	// rates a veth reaches. A frame later than that counts as lost.
	DefaultDrain = 100 * time.Millisecond
	// vethStartRate is what the generator offers while testpmd starts,
	// so that the sink sees when it forwards without flooding its start.
	vethStartRate = 10000
	// vethForwardLimit is how long testpmd may take to forward a frame.
	vethForwardLimit = time.Minute
	// tpMinLaunch is the least testpmd forwards before it is stopped.
	tpMinLaunch = 2*testpmd.Interval + 500*time.Millisecond
	// markLimit is how long the generator may take to answer a mark.
	markLimit = 5 * time.Second
)

// winOp is a request to the generator's goroutine about a trial's window.
type winOp int32

const (
	winStart winOp = 1 + iota // open: count the numbers from the next frame on
	winEnd                    // close: count none from the next frame on
	winRead                   // stop counting; the answer holds the count
)

// seqWindow counts the frames of one trial that came back. It belongs to
// the generator's goroutine.
type seqWindow struct {
	open     bool
	from, to uint64 // the numbers counted: from <= seq < to
	got      uint64
}

// winMark is the generator's answer to a winOp.
type winMark struct {
	at  int64  // engine.Nanotime when taken
	seq uint64 // the number of the next frame to be sent
	got uint64 // the window's frames received so far
}

func (s *seqWindow) mark(op winOp, seq uint64) winMark {
	switch op {
	case winStart:
		*s = seqWindow{open: true, from: seq, to: math.MaxUint64}
	case winEnd:
		s.to = seq
	case winRead:
		s.open = false
	}
	return winMark{at: engine.Nanotime(), seq: seq, got: s.got}
}

// count counts the frames numbered in the window; frames without a stamp
// are not the generator's and count for nothing.
func (s *seqWindow) count(pkts []engine.Mbuf) {
	for _, m := range pkts {
		if seq, _, ok := pktgen.ParseHead(m.Data(), m.PktLen()); ok && seq >= s.from && seq < s.to {
			s.got++
		}
	}
}

// setRate asks the generator for a new offered rate (0: as fast as it can).
func (r *vethRig) setRate(pps float64) { r.rate.Store(math.Float64bits(pps)) }

// mark asks the generator's goroutine for op and waits for its answer.
func (r *vethRig) mark(op winOp) (winMark, error) {
	r.ctl.Store(int32(op))
	t := time.NewTimer(markLimit)
	defer t.Stop()
	select {
	case m := <-r.ctlc:
		return m, nil
	case <-t.C:
		return winMark{}, fmt.Errorf("the generator did not answer within %v", markLimit)
	}
}

// dutCounts are the device under test's counters that a trial reads at its
// window's edges (pollnet's; testpmd's are its own).
type dutCounts struct {
	rx, drop     uint64
	cpu          time.Duration
	polls, empty uint64
}

// vethTrial is one trial and what the device under test counted in it.
type vethTrial struct {
	trial
	offered, got uint64 // frames of the window sent and come back
	wall         time.Duration
	dut          dutCounts // over the window
}

// runTrial offers rate, waits settle, then counts a window of length and,
// after drain, the frames of it that came back.
func (r *vethRig) runTrial(rate float64, settle, length, drain time.Duration, dut func() dutCounts, wait func(d time.Duration, status func() string)) (vethTrial, error) {
	r.setRate(rate)
	wait(settle, func() string { return "settling" })
	d0 := dut()
	m0, err := r.mark(winStart)
	if err != nil {
		return vethTrial{}, err
	}
	wait(length, func() string { return "measuring" })
	m1, err := r.mark(winEnd)
	if err != nil {
		return vethTrial{}, err
	}
	d1 := dut()
	wait(drain, func() string { return "draining" })
	m2, err := r.mark(winRead)
	if err != nil {
		return vethTrial{}, err
	}
	t := vethTrial{offered: m1.seq - m0.seq, got: m2.got, wall: time.Duration(m1.at - m0.at),
		dut: dutCounts{rx: d1.rx - d0.rx, drop: d1.drop - d0.drop, cpu: d1.cpu - d0.cpu, polls: d1.polls - d0.polls, empty: d1.empty - d0.empty}}
	t.Rate = rate
	t.Offered, t.Received = perSecond(t.offered, t.wall), perSecond(t.got, t.wall)
	t.Loss = trialLoss(t.offered, t.got)
	return t, nil
}

// trialLoss is the share of offered frames that did not come back; a
// duplicate is no gain.
func trialLoss(offered, got uint64) float64 {
	if offered == 0 || got >= offered {
		return 0
	}
	return 1 - float64(got)/float64(offered)
}

// VethZeroLossConfig is the zero_loss scenario on a kernel interface.
// VethConfig's Duration is not used: the trials are Trial long.
type VethZeroLossConfig struct {
	VethConfig
	SearchOptions
	Drain time.Duration // default DefaultDrain
}

func (c *VethZeroLossConfig) fill() {
	c.SearchOptions.fill()
	if c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	c.Duration = c.Trial
}

// Validate refuses what the search cannot run with.
func (c *VethZeroLossConfig) Validate() error {
	cc := *c
	cc.fill()
	if err := cc.VethConfig.Validate(); err != nil {
		return err
	}
	if err := cc.SearchOptions.validate(); err != nil {
		return err
	}
	if cc.Settle < 0 || cc.Settle > time.Minute || cc.Drain < 0 || cc.Drain > time.Minute {
		return flagErr("zero_loss: settle %v and drain %v must be within 0..1m", cc.Settle, cc.Drain)
	}
	return nil
}

func (c *VethZeroLossConfig) maxLoss() float64 { return max(c.MaxLoss, 0) }

// trialSpan is the most one trial takes, its marks included.
func (c *VethZeroLossConfig) trialSpan() time.Duration {
	return c.Settle + c.Trial + c.Drain + 3*time.Millisecond
}

// searchSpan is the most one search takes once the device forwards.
func (c *VethZeroLossConfig) searchSpan() time.Duration {
	return max(c.Warmup, c.Settle) + time.Duration(c.MaxTrials)*c.trialSpan()
}

// vethSearch is one search on one path.
type vethSearch struct {
	search
	trials []vethTrial // as search.Trials, with the device's counts
	// testpmd's own figures over its whole launch, every trial's rate
	// in it; nil for pollnet.
	tp *testpmd.IfaceRate
}

// VethZeroLossResult is one frame size on both paths.
type VethZeroLossResult struct {
	Port             string
	Size             int
	Pollnet, Testpmd result.Scenario
	// Ratio is the pollnet/testpmd line, or why there is none.
	Ratio string
	runs  [2][]vethSearch
}

// searchOn runs one search on a rig whose device under test forwards.
func (c *VethZeroLossConfig) searchOn(r *vethRig, label string, dut func() dutCounts) (vethSearch, error) {
	var vs vethSearch
	s, err := searchZeroLoss(c.search(), func(rate float64) (trial, error) {
		n := len(vs.trials) + 1
		settle := c.Settle
		if n == 1 {
			settle = max(c.Warmup, c.Settle)
		}
		target := "top"
		if rate > 0 {
			target = fmt.Sprintf("%.3f Mpps", rate/1e6)
		}
		bar := c.bar(fmt.Sprintf("%s trial %d at %s", label, n, target), settle+c.Trial+c.Drain)
		var at time.Duration
		wait := func(d time.Duration, status func() string) {
			sleepBar(bar, at, d, status)
			at += d
		}
		t, err := r.runTrial(rate, settle, c.Trial, c.Drain, dut, wait)
		if bar != nil {
			bar.Done(fmt.Sprintf("%.3f of %.3f Mpps back, loss %.4f%%", t.Received/1e6, t.Offered/1e6, 100*t.Loss))
		}
		if err != nil {
			return trial{}, err
		}
		vs.trials = append(vs.trials, t)
		return t.trial, nil
	})
	vs.search = s
	return vs, err
}

func (c *VethZeroLossConfig) label(path string, size, run int) string {
	return fmt.Sprintf("zero_loss %s %s %4dB run %d/%d", c.Port, path, size, run+1, c.Repeat)
}

// searchPollnet is one search against pollnet's forwarder: one rig, one
// forwarder, every trial.
func (c *VethZeroLossConfig) searchPollnet(size, run int) (vs vethSearch, err error) {
	d, err := c.startPollnet(size)
	if err != nil {
		return vs, err
	}
	defer func() { err = errors.Join(err, d.stop()) }()
	r, dut, w := d.r, d.port, d.w
	counts := func() dutCounts {
		q, st := dut.RxStats(0), w.FreshStats(statsWait)
		d := dutCounts{rx: q.Packets, cpu: w.CPUTime(), polls: st.Polls, empty: st.EmptyPolls}
		for _, n := range q.Drops {
			d.drop += n
		}
		return d
	}
	return c.searchOn(r, c.label("pollnet-pmd  ", size, run), counts)
}

// searchTestpmd is one search against testpmd: launched once for the whole
// search, the trials run once it forwards, then interrupted; its own
// figures are those of the whole launch.
func (c *VethZeroLossConfig) searchTestpmd(peer *testpmd.Peer, size, run int) (vs vethSearch, err error) {
	r, err := c.newRig(size, true)
	if err != nil {
		return vs, err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	r.setRate(vethStartRate)
	if err := r.startGen(c.GenCore); err != nil {
		return vs, err
	}
	f := c.ifaceForward(size)
	f.Warmup, f.Duration = 0, vethForwardLimit+c.searchSpan()+5*time.Second
	// The outer bound is only for a launch that never ends by itself.
	parent, cancelParent := context.WithTimeout(context.Background(), f.Duration+2*time.Minute)
	defer cancelParent()
	ctx, stop := context.WithCancel(parent)
	defer stop()
	done := make(chan tpLaunch, 1)
	go func() {
		var l tpLaunch
		// testpmd inherits the namespace of the thread that starts it.
		l.err = r.ns.Do(func() (err error) { l.tr, err = peer.ForwardIface(ctx, f); return err })
		done <- l
	}()
	label := c.label("dpdk-testpmd ", size, run)
	bar := c.bar(label+" starting", vethForwardLimit)
	var at time.Duration
	wait := func(d time.Duration, status func() string) { sleepBar(bar, at, d, status); at += d }
	err = r.waitForwarding(done, wait)
	if bar != nil {
		bar.Done(fmt.Sprintf("forwarding after %v", at.Round(10*time.Millisecond)))
	}
	if err != nil {
		stop()
		l := <-done
		return vs, errors.Join(err, l.err)
	}
	forwarding := time.Now()
	vs, err = c.searchOn(r, label, func() dutCounts { return dutCounts{} })
	// testpmd's own figures need two of its statistics prints, a second
	// apart: a short search waits for them.
	if d := tpMinLaunch - time.Since(forwarding); err == nil && d > 0 {
		time.Sleep(d)
	}
	var l tpLaunch
	select {
	case l = <-done:
		if err == nil {
			err = fmt.Errorf("dpdk-testpmd ended before the search did: %v", l.err)
		}
	default:
		stop()
		l = <-done
	}
	if l.err != nil && !(errors.Is(l.err, context.Canceled) && parent.Err() == nil) {
		err = errors.Join(err, l.err)
	}
	vs.tp = &l.tr
	return vs, err
}

// tpLaunch is how a testpmd launch ended.
type tpLaunch struct {
	tr  testpmd.IfaceRate
	err error
}

// waitForwarding waits until the sink counts frames coming back from a
// device under test that is starting, or the launch ends.
func (r *vethRig) waitForwarding(done <-chan tpLaunch, wait func(d time.Duration, status func() string)) error {
	_, rx0 := r.counts()
	deadline := time.Now().Add(vethForwardLimit)
	for time.Now().Before(deadline) {
		select {
		case l := <-done:
			return fmt.Errorf("dpdk-testpmd ended before it forwarded a frame: %v", l.err)
		default:
		}
		if _, rx := r.counts(); rx >= rx0+engine.Burst {
			return nil
		}
		wait(20*time.Millisecond, func() string { return "waiting for the first frames back" })
	}
	return fmt.Errorf("dpdk-testpmd forwarded nothing back in %v", vethForwardLimit)
}

// RunVethZeroLoss runs the search once per frame size, path and repeat, the
// paths interleaved: pollnet, testpmd, pollnet, ...
func RunVethZeroLoss(cfg VethZeroLossConfig) ([]VethZeroLossResult, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer raiseProcs(3)()
	var out []VethZeroLossResult
	for _, size := range cfg.Sizes {
		r, err := cfg.runSize(size)
		if err != nil {
			return out, fmt.Errorf("zero_loss %s %d bytes: %w", cfg.Port, size, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *VethZeroLossConfig) runSize(size int) (VethZeroLossResult, error) {
	peer, whyNot := c.peer()
	var ours, theirs []vethSearch
	for i := 0; i < c.Repeat; i++ {
		if c.Port == PortAFXDP && i > 0 {
			time.Sleep(afxdpRest)
		}
		s, err := c.searchPollnet(size, i)
		if err != nil {
			return VethZeroLossResult{}, fmt.Errorf("pollnet, run %d: %w", i+1, err)
		}
		ours = append(ours, s)
		if whyNot != "" {
			continue
		}
		if c.Port == PortAFXDP {
			time.Sleep(afxdpRest)
		}
		t, err := c.searchTestpmd(peer, size, i)
		if err != nil {
			whyNot = err.Error()
			continue
		}
		theirs = append(theirs, t)
	}
	res := VethZeroLossResult{Port: c.Port, Size: size, runs: [2][]vethSearch{ours, theirs}}
	res.Pollnet = c.scenario("pollnet-pmd", size, ours)
	if whyNot != "" {
		theirs = nil
	}
	res.Testpmd = c.scenario(testpmd.Path, size, theirs)
	res.Testpmd.Skipped = whyNot
	for k, v := range peer.IfaceKnobs(c.ifaceForward(size)) {
		if _, set := res.Testpmd.Knobs[k]; !set {
			res.Testpmd.Knobs[k] = v
		}
	}
	// One launch covers a whole search, not a fixed number of intervals.
	delete(res.Testpmd.Knobs, "intervals")
	for _, sc := range []*result.Scenario{&res.Pollnet, &res.Testpmd} {
		if sc.Skipped == "" {
			if err := sc.Summarise(); err != nil {
				return res, err
			}
		}
	}
	ratio, line := vethZeroLossRatio(c.Port, size, res.Pollnet, res.Testpmd)
	if ratio > 0 {
		res.Pollnet.Extra["ratio_vs_testpmd"] = ratio
	}
	res.Ratio = line
	return res, nil
}

// scenario makes one path's result from its searches: a sample per search,
// its zero-loss rate.
func (c *VethZeroLossConfig) scenario(path string, size int, ss []vethSearch) result.Scenario {
	sc := result.Scenario{Name: "zero_loss", Path: path, Port: c.Port, Metric: "rx_pps", Unit: "packets/s",
		Knobs: map[string]any{"size": size, "fwd": testpmd.ModeMacswap, "queues": 1, "burst": engine.Burst,
			"link": c.link(), "generator": "pollnet pktgen on afpacket, paced", "rx_steering": c.steering(),
			"duration_s": c.Trial.Seconds(), "trial_s": c.Trial.Seconds(), "settle_s": c.Settle.Seconds(), "drain_s": c.Drain.Seconds(),
			"max_loss": c.maxLoss(), "resolution": c.Resolution, "max_trials": c.MaxTrials,
			"counted": "frames numbered between the window's marks that came back to the sink"},
		Roles: map[string]int{"dut": c.FwdCore, "generator": c.GenCore}, GOMAXPROCS: runtime.GOMAXPROCS(0),
		WarmupS: c.Warmup.Seconds(), Repeat: len(ss), Counters: map[string]uint64{}, Extra: map[string]float64{}}
	if c.Port == PortAFXDP {
		sc.Knobs["bind"] = "copy"
	}
	if path == testpmd.Path {
		sc.Knobs["dut_busy_from"] = "1 - empty RX bursts (--record-burst-stats) over the whole launch, every trial's rate in it"
	} else {
		sc.Knobs["dut_busy_from"] = "non-empty polls in the top-rate trial"
	}
	var trials, topOffered, topRx, topLoss, worst, bracket, busyTop, empty []float64
	var limited, passing, converged int
	var best vethTrial
	var cpu time.Duration
	var tpPackets uint64
	var tpSeconds float64
	for i := range ss {
		s := &ss[i]
		sc.Samples = append(sc.Samples, s.Rate())
		trials = append(trials, float64(len(s.trials)))
		top := s.trials[s.Top]
		topOffered, topRx, topLoss = append(topOffered, top.Offered), append(topRx, top.Received), append(topLoss, top.Loss)
		if top.dut.polls > 0 {
			busyTop = append(busyTop, 1-float64(top.dut.empty)/float64(top.dut.polls))
		}
		if s.Best >= 0 {
			passing++
			b := s.trials[s.Best]
			worst = append(worst, b.Loss)
			best.offered += b.offered
			best.got += b.got
			best.wall += b.wall
			best.dut.rx += b.dut.rx
			best.dut.cpu += b.dut.cpu
		}
		if s.Lo > 0 {
			bracket = append(bracket, (s.Hi-s.Lo)/s.Lo)
		}
		if s.HarnessLimit {
			limited++
		}
		if s.Converged {
			converged++
		}
		for k, t := range s.trials {
			key := fmt.Sprintf("run%d_trial%02d_", i+1, k+1)
			sc.Extra[key+"rate_pps"] = t.Rate
			sc.Extra[key+"offered_pps"] = t.Offered
			sc.Extra[key+"rx_pps"] = t.Received
			sc.Extra[key+"loss"] = t.Loss
			cpu += t.dut.cpu
		}
		if s.tp != nil {
			cpu += time.Duration(s.tp.FwdCPUSeconds * 1e9)
			tpPackets += s.tp.Packets
			tpSeconds += s.tp.Seconds
			if s.tp.RxEmptyShare >= 0 {
				empty = append(empty, s.tp.RxEmptyShare)
			}
			if s.tp.Version != "" {
				sc.Knobs["dpdk"] = s.tp.Version
			}
			if s.tp.FwdCPUSeconds > 0 && s.tp.Packets > 0 {
				sc.Extra[fmt.Sprintf("run%d_dut_cpu_ns_per_packet", i+1)] = s.tp.FwdCPUSeconds * 1e9 / float64(s.tp.Packets)
			}
		}
	}
	sc.CPUSeconds = cpu.Seconds()
	med := func(v []float64) float64 { s, _ := result.Summarise(v); return s.Median }
	top := func(v []float64) float64 { s, _ := result.Summarise(v); return s.Max }
	if len(ss) > 0 {
		sc.Extra["trials"], sc.Extra["trials_max"] = med(trials), top(trials)
		sc.Extra["top_offered_pps"], sc.Extra["top_rx_pps"], sc.Extra["top_loss"] = med(topOffered), med(topRx), med(topLoss)
		sc.Counters["trials"] = uint64(sumFloats(trials))
	}
	sc.Extra["harness_limited_runs"] = float64(limited)
	sc.Extra["passing_runs"] = float64(passing)
	sc.Extra["converged_runs"] = float64(converged)
	if len(worst) > 0 {
		sc.Extra["loss_ratio"] = top(worst)
		sc.Counters["offered_packets"], sc.Counters["sink_rx_packets"] = best.offered, best.got
		if best.dut.rx > 0 {
			// pollnet's port's count over the passing windows (testpmd
			// counts only over its whole launch).
			sc.Counters["dut_rx_packets"] = best.dut.rx
			sc.Extra["dut_rx_pps_at_zero_loss"] = perSecond(best.dut.rx, best.wall)
			sc.Extra["dut_cpu_ns_per_packet_at_zero_loss"] = float64(best.dut.cpu.Nanoseconds()) / float64(best.dut.rx)
		}
	}
	if len(bracket) > 0 {
		sc.Extra["resolution_reached"] = top(bracket)
	}
	switch {
	case len(busyTop) > 0:
		b := med(busyTop)
		sc.DUTBusy = &b
	case len(empty) > 0:
		b := 1 - med(empty)
		sc.DUTBusy = &b
	}
	if tpSeconds > 0 {
		sc.Extra["testpmd_rx_pps_whole_launch"] = float64(tpPackets) / tpSeconds
		sc.Counters["dut_rx_packets"] = tpPackets
		if cpu > 0 && tpPackets > 0 {
			sc.Extra["dut_cpu_ns_per_packet"] = float64(cpu.Nanoseconds()) / float64(tpPackets)
		}
	}
	return sc
}

// vethZeroLossRatio is the pollnet/testpmd line of one frame size and the
// ratio it quotes: only when both paths found a zero-loss rate in every run
// and neither search ended at the harness's limit, where the rate is the
// generator's and not the forwarder's. Otherwise the ratio is 0 and the
// line says why not; "" when there is nothing to compare.
func vethZeroLossRatio(port string, size int, a, b result.Scenario) (float64, string) {
	if a.Skipped != "" || b.Skipped != "" || a.Repeat == 0 || b.Repeat == 0 {
		return 0, ""
	}
	head := fmt.Sprintf("pollnet/testpmd zero-loss on %s at %d B: ", port, size)
	var limited, failed []string
	for _, sc := range []result.Scenario{a, b} {
		if n := sc.Extra["harness_limited_runs"]; n > 0 {
			limited = append(limited, fmt.Sprintf("%s in %.0f of %d runs (it could not offer more than passed; median %.3f Mpps)",
				sc.Path, n, sc.Repeat, sc.Median/1e6))
		}
		if n := sc.Extra["passing_runs"]; n < float64(sc.Repeat) {
			failed = append(failed, fmt.Sprintf("%s in %.0f of %d runs", sc.Path, float64(sc.Repeat)-n, sc.Repeat))
		}
	}
	switch {
	case len(limited) > 0:
		return 0, head + "no ratio: the generator was the limit for " + joinAnd(limited) + ", so that figure is the harness's"
	case len(failed) > 0:
		return 0, head + "no ratio: no rate passed for " + joinAnd(failed)
	case !(a.Median > 0 && b.Median > 0):
		return 0, head + "no ratio: a zero-loss rate of 0"
	}
	r := a.Median / b.Median
	line := head + fmt.Sprintf("%.2fx (%.3f vs %.3f Mpps, loss at most %.4g%%)", r, a.Median/1e6, b.Median/1e6, 100*toFloat(a.Knobs["max_loss"]))
	if a.Extra["converged_runs"] < float64(a.Repeat) || b.Extra["converged_runs"] < float64(b.Repeat) {
		line += "; some searches ran out of trials before the bracket closed"
	}
	return r, line
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

// FormatVethZeroLoss prints both paths per frame size and the ratio lines.
func FormatVethZeroLoss(w io.Writer, rs []VethZeroLossResult) {
	fmt.Fprintf(w, "%-9s %-13s %6s %9s %19s %7s %9s %11s %9s %6s %s\n",
		"port", "path", "size", "Mpps", "min..max", "trials", "loss", "top offer", "top loss", "busy", "note")
	row := func(port string, sc result.Scenario, size int) {
		if sc.Skipped != "" {
			fmt.Fprintf(w, "%-9s %-13s %6d skipped: %s\n", port, sc.Path, size, sc.Skipped)
			return
		}
		note := ""
		if sc.Extra["harness_limited_runs"] > 0 {
			note = "the generator was the limit"
		}
		if sc.Extra["passing_runs"] < float64(sc.Repeat) {
			note = "a run found no passing rate"
		}
		fmt.Fprintf(w, "%-9s %-13s %6d %9.3f %8.3f..%-9.3f %7.0f %8.5f%% %11.3f %8.1f%% %6.2f %s\n", port, sc.Path, size,
			sc.Median/1e6, sc.Min/1e6, sc.Max/1e6, sc.Extra["trials"], 100*sc.Extra["loss_ratio"],
			sc.Extra["top_offered_pps"]/1e6, 100*sc.Extra["top_loss"], busy(sc), note)
	}
	for _, r := range rs {
		row(r.Port, r.Pollnet, r.Size)
		row(r.Port, r.Testpmd, r.Size)
	}
	for _, r := range rs {
		if r.Ratio != "" {
			fmt.Fprintln(w, r.Ratio)
		}
	}
}

// vethZeroLossJobs is the zero_loss scenario on a veth pair or a TAP:
// 64-byte frames, or the sizes given on the command line.
func (o Options) vethZeroLossJobs() ([]Job, error) {
	c := VethZeroLossConfig{VethConfig: VethConfig{Port: o.Port, Sizes: []int{64}, Warmup: o.Warmup, Repeat: max(o.Repeat, 1),
		GenCore: o.GenCore, FwdCore: o.FwdCore, Progress: o.Progress, NoSteer: o.NoRxSteer}}
	if o.SizesSet {
		c.Sizes = o.Sizes
	}
	if o.DurationSet && o.Duration < DefaultTrial {
		c.Trial = o.Duration
	}
	if o.MaxLossSet {
		c.MaxLoss = o.MaxLoss
		if c.MaxLoss == 0 {
			c.MaxLoss = -1 // none at all; 0 would take the default
		}
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := len(c.Sizes) * c.Repeat
	search := func(trials int) time.Duration {
		return vethRunOverhead + max(c.Warmup, c.Settle) + time.Duration(trials)*c.trialSpan()
	}
	rest := time.Duration(0)
	if c.Port == PortAFXDP {
		rest = 2 * afxdpRest
	}
	est := Estimate{Runs: 2 * n, Trials: 2 * n * c.MaxTrials,
		Time: time.Duration(n) * (2*search(min(typicalTrials, c.MaxTrials)) + testpmdStartup + rest),
		Max:  time.Duration(n) * (2*search(c.MaxTrials) + testpmdStartup + rest)}
	return []Job{{Name: "zero_loss-" + c.Port, Estimate: est, run: func() ([]result.Scenario, func(io.Writer), error) {
		rs, err := RunVethZeroLoss(c)
		if err != nil {
			return nil, nil, err
		}
		var scs []result.Scenario
		for _, r := range rs {
			scs = append(scs, r.Pollnet, r.Testpmd)
		}
		return scs, func(w io.Writer) { FormatVethZeroLoss(w, rs) }, nil
	}}}, nil
}

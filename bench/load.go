package bench

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/internal/result"
)

// The load scenario compares the modes where they trade CPU for latency: at
// the same offered rates, below both modes' zero-loss rates, what does each
// packet cost the device under test, and how long does it take? PMD burns its
// core whatever the load, so its CPU per packet falls as the load rises;
// NAPI sleeps between interrupts but pays for each wake-up in latency.

// DefaultLoadShares are the offered loads, as shares of the lower of the two
// modes' zero-loss rates.
var DefaultLoadShares = []float64{0.1, 0.5, 0.9}

// LoadConfig is the load scenario: per frame size, per share of the reference
// rate, Repeat independent runs per mode (interleaved), each a warm-up and a
// window of Duration at the offered rate.
type LoadConfig struct {
	PPSConfig
	Shares []float64 // default DefaultLoadShares
	// Reference is the rate per frame size the shares apply to: the lower
	// of the modes' zero-loss rates (ReferenceRates). A size without one
	// is skipped.
	Reference map[int]float64
}

// ReferenceRates are, per frame size, the lower of the modes' median
// zero-loss rates: the rate both modes forward without loss. A size where
// a mode found no passing rate has none.
func ReferenceRates(rs []ZeroLossResult) map[int]float64 {
	ref := map[int]float64{}
	for _, r := range rs {
		v := r.Scenario.Median
		if old, ok := ref[r.Size]; ok {
			v = min(v, old)
		}
		ref[r.Size] = v
	}
	for size, v := range ref {
		if !(v > 0) {
			delete(ref, size)
		}
	}
	return ref
}

// LoadResult is one mode, frame size and offered load.
type LoadResult struct {
	Mode     Mode
	Size     int
	Share    float64 // of the reference rate
	Offered  float64 // packets per second asked for
	Runs     []window
	Latency  *pktgen.Histogram
	Scenario result.Scenario
}

func (c *LoadConfig) name() string {
	if c.Name == "" {
		return "load"
	}
	return c.Name
}

// Validate refuses what the scenario cannot run with.
func (c *LoadConfig) Validate() error {
	for _, s := range c.Shares {
		if !(s > 0 && s <= 1) {
			return flagErr("load: share %v out of range (0, 1]", s)
		}
	}
	return c.PPSConfig.Validate()
}

// RunLoad runs the load scenario at every size that has a reference rate.
func RunLoad(cfg LoadConfig) ([]LoadResult, error) {
	if len(cfg.Shares) == 0 {
		cfg.Shares = DefaultLoadShares
	}
	cfg.NoTraffic = false
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer raiseProcs(3)()
	var out []LoadResult
	for _, size := range cfg.Sizes {
		ref, ok := cfg.Reference[size]
		if !ok {
			continue
		}
		for _, share := range cfg.Shares {
			rate := math.Round(share * ref)
			runs := map[Mode][]window{}
			for _, sl := range runOrder([]int{size}, cfg.Modes, cfg.repeat()) {
				label := fmt.Sprintf("%s %-4s %4dB %3.0f%% (%.3f Mpps) run %d/%d", cfg.name(), sl.Mode, size, 100*share, rate/1e6, sl.Run+1, cfg.repeat())
				key := fmt.Sprintf("%s-%s-%dB-%.0fpct", cfg.name(), sl.Mode, size, 100*share)
				w, err := runOnce(&cfg.PPSConfig, cfg.name(), sl, label, rate, key)
				if err != nil {
					return nil, fmt.Errorf("%s %s %d bytes at %.0f%%, run %d of %d: %w", cfg.name(), sl.Mode, size, 100*share, sl.Run+1, cfg.repeat(), err)
				}
				runs[sl.Mode] = append(runs[sl.Mode], w)
			}
			for _, mode := range cfg.Modes {
				r, err := cfg.result(mode, size, share, rate, runs[mode])
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// result makes the scenario: the metric is the device under test's CPU time
// per packet, one sample per run; the latency percentiles are over every
// frame the sink saw in the runs' windows.
func (c *LoadConfig) result(mode Mode, size int, share, rate float64, ws []window) (LoadResult, error) {
	sc := c.baseScenario(c.name(), mode, size)
	sc.Knobs["offered_pps"] = rate
	sc.Knobs["load_share"] = share
	sc.Metric, sc.Unit = "cpu_ns_per_packet", "ns/packet"
	var rx []float64
	lat := &pktgen.Histogram{}
	for i := range ws {
		sc.Samples = append(sc.Samples, ws[i].CPUPerPacket())
		rx = append(rx, ws[i].ReceivedRate())
		lat.Merge(&ws[i].Latency)
	}
	if err := fillWindows(&sc, ws); err != nil {
		return LoadResult{}, err
	}
	r, _ := result.Summarise(rx)
	sc.Extra["rx_pps"] = r.Median
	return LoadResult{Mode: mode, Size: size, Share: share, Offered: rate, Runs: ws, Latency: lat, Scenario: sc}, nil
}

// FormatLoad prints CPU per packet and latency per offered load, then per
// load the PMD/NAPI ratios.
func FormatLoad(w io.Writer, rs []LoadResult) {
	fmt.Fprintf(w, "%-5s %6s %5s %10s %12s %19s %6s %10s %10s %10s %9s\n",
		"mode", "size", "load", "offered", "dut ns/pkt", "min..max", "busy", "lat p50", "lat p99", "lat p99.9", "loss")
	for _, r := range rs {
		sc := r.Scenario
		fmt.Fprintf(w, "%-5s %6d %4.0f%% %9.3fM %12.1f %9.1f..%-9.1f %6.2f %10s %10s %10s %8.5f%%\n",
			r.Mode, r.Size, 100*r.Share, r.Offered/1e6, sc.Median, sc.Min, sc.Max, busy(sc),
			latency(sc, "lat_p50_us"), latency(sc, "lat_p99_us"), latency(sc, "lat_p999_us"), 100*sc.Extra["loss_ratio"])
	}
	for i, a := range rs {
		if a.Mode != ModePMD {
			continue
		}
		for _, b := range rs[i+1:] {
			if b.Mode != ModeNAPI || b.Size != a.Size || b.Share != a.Share {
				continue
			}
			line := fmt.Sprintf("pmd/napi at %d B, %.0f%% load (%.3f Mpps):", a.Size, 100*a.Share, a.Offered/1e6)
			if pm, na := a.Scenario.Median, b.Scenario.Median; pm > 0 && na > 0 {
				line += fmt.Sprintf(" CPU per packet %.2fx (%.0f vs %.0f ns)", pm/na, pm, na)
			}
			if pm, ok := a.Scenario.Extra["lat_p99_us"]; ok {
				if na, ok := b.Scenario.Extra["lat_p99_us"]; ok && na > 0 {
					line += fmt.Sprintf(", p99 latency %.2fx (%s vs %s)", pm/na, latency(a.Scenario, "lat_p99_us"), latency(b.Scenario, "lat_p99_us"))
				}
			}
			fmt.Fprintln(w, line)
			break
		}
	}
	for _, r := range rs {
		offCore(w, &r.Scenario, "dut_cpu_share", fmt.Sprintf(" at %.0f%% load", 100*r.Share))
	}
}

// latency formats a latency figure of Extra, "-" when there were too few
// observations to give it.
func latency(sc result.Scenario, key string) string {
	v, ok := sc.Extra[key]
	if !ok {
		return "-"
	}
	return roundLatency(time.Duration(v * 1e3)).String()
}

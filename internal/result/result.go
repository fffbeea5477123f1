// Package result holds the result file of one benchmark run: the machine it
// ran on, the command line, and for every scenario its knobs, raw samples,
// summary statistics and counters. The JSON form (result.json) is the one
// described under "Result files" in DESIGN.md; charts, `pollnet compare` and
// scripts read it, so field names change only together with those readers.
package result

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/montanaflynn/stats"
)

// Run is one invocation of a bench command, written as result.json.
type Run struct {
	Suite     string     `json:"suite"`
	Started   time.Time  `json:"started"` // RFC 3339, as encoding/json writes time.Time
	Command   string     `json:"command"`
	Machine   Machine    `json:"machine"`
	Scenarios []Scenario `json:"scenarios"`
}

// MarshalJSON writes a run without scenarios as "scenarios": [], not null.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run // drops the method set, so no recursion
	p := plain(r)
	if p.Scenarios == nil {
		p.Scenarios = []Scenario{}
	}
	return json.Marshal(p)
}

// Machine records where a run happened, because absolute figures mean little
// without it: two runs are comparable only on like machines.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	OS         string `json:"os,omitempty"`
	Arch       string `json:"arch,omitempty"`
	GOMAXPROCS int    `json:"gomaxprocs,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	// Commit is the build's commit, "-dirty" when built from a changed
	// tree; "" when the binary carries no VCS stamp.
	Commit string `json:"commit"`
	// BusyWorkers is the most busy-polling workers the run had at once
	// (0 in files written before it was recorded).
	BusyWorkers int `json:"busy_workers"`
	// Warnings are what the engine warned about during the run, such as
	// more busy workers than GOMAXPROCS: figures measured so are suspect.
	Warnings []string `json:"warnings,omitempty"`
	// PacketMemory is the packet memory the run's pools mapped and how
	// much of it was backed by huge pages.
	PacketMemory *PacketMemory `json:"packet_memory,omitempty"`
}

// PacketMemory is the size of the packet arenas the run's pools mapped, one
// after another, and their huge-page share.
type PacketMemory struct {
	Pools     int   `json:"pools"`
	Bytes     int64 `json:"bytes"`
	HugeBytes int64 `json:"huge_bytes"` // backed by transparent huge pages (AnonHugePages)
}

// Scenario is one measured configuration: a path (pollnet-pmd, pollnet-napi,
// kernel, gvisor, dpdk-testpmd) over a port with a set of knobs, and the
// samples of one metric. A scenario that could not run keeps no samples and
// says why in Skipped.
type Scenario struct {
	Name  string         `json:"name"`
	Path  string         `json:"path"`
	Port  string         `json:"port"`
	Knobs map[string]any `json:"knobs"`

	Metric  string    `json:"metric"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`

	// Summary of Samples, filled by Summarise.
	Median float64 `json:"median"`
	// P99 is the nearest-rank 99th percentile of Samples, given only over
	// at least MinP99Samples of them (latency observations); null
	// otherwise, where it would be just the largest sample.
	P99    *float64 `json:"p99"`
	Stddev float64  `json:"stddev"`
	Mean   float64  `json:"mean"`
	Min    float64  `json:"min"`
	Max    float64  `json:"max"`

	CPUSeconds float64           `json:"cpu_seconds"`
	Counters   map[string]uint64 `json:"counters"`

	// Provenance of the measurement (DESIGN.md, "How we measure").
	Roles      map[string]int `json:"roles,omitempty"` // the core each role ran on (-1: unpinned)
	GOMAXPROCS int            `json:"gomaxprocs,omitempty"`
	WarmupS    float64        `json:"warmup_s"` // warm-up before each run, seconds
	Repeat     int            `json:"repeat"`   // independent runs the samples come from
	// DUTBusy is how busy the device under test was, 0..1: the share of
	// non-empty polls (pmd) or softirq and interrupt CPU over wall time
	// (napi). Below 0.9 the harness, not the device, set the rate.
	DUTBusy *float64 `json:"dut_busy,omitempty"`

	// Extra holds derived figures that are not samples of the metric, such
	// as latency percentiles or CPU seconds per million packets.
	Extra map[string]float64 `json:"extra,omitempty"`

	// Skipped is the reason the scenario did not run; "" when it ran. It is
	// always present so readers need not tell "missing" from "ran".
	Skipped string `json:"skipped"`
}

// MarshalJSON writes nil maps and slices as {} and [] so readers never meet
// null, and refuses non-finite numbers with an error that names the scenario
// and field, rather than encoding/json's bare "unsupported value: NaN".
func (s Scenario) MarshalJSON() ([]byte, error) {
	if err := s.checkFinite(); err != nil {
		return nil, err
	}
	type plain Scenario // drops the method set, so no recursion
	p := plain(s)
	if p.Knobs == nil {
		p.Knobs = map[string]any{}
	}
	if p.Samples == nil {
		p.Samples = []float64{}
	}
	if p.Counters == nil {
		p.Counters = map[string]uint64{}
	}
	return json.Marshal(p)
}

// checkFinite reports the first NaN or infinity among the scenario's numbers;
// JSON has no spelling for them.
func (s *Scenario) checkFinite() error {
	bad := func(field string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("result: scenario %q (%s): %s is %v; JSON cannot hold it", s.Name, s.Path, field, v)
		}
		return nil
	}
	for i, v := range s.Samples {
		if err := bad(fmt.Sprintf("samples[%d]", i), v); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"median", s.Median}, {"p99", deref(s.P99)}, {"stddev", s.Stddev},
		{"mean", s.Mean}, {"min", s.Min}, {"max", s.Max},
		{"cpu_seconds", s.CPUSeconds},
	} {
		if err := bad(f.name, f.v); err != nil {
			return err
		}
	}
	for k, v := range s.Extra {
		if err := bad("extra."+k, v); err != nil {
			return err
		}
	}
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// MinP99Samples is the fewest samples a p99 is quoted over.
const MinP99Samples = 100

// Summary is the statistics of a set of samples.
type Summary struct {
	N      int
	Median float64
	P99    float64 // nearest-rank 99th percentile: always one of the samples
	Stddev float64 // sample (n-1) standard deviation; 0 when n < 2
	Mean   float64
	Min    float64
	Max    float64
}

// Summarise computes the statistics of samples. An empty slice gives a zero
// Summary and no error, because a skipped scenario has no samples. A NaN or
// infinite sample is an error: it would poison every figure and cannot be
// written to JSON.
//
// P99 uses the nearest-rank method so it reports a value that was actually
// measured, not an interpolation between two runs. Stddev is the sample
// standard deviation (divides by n-1): the samples are a few runs drawn from
// the machine's behaviour, not the whole population of it.
func Summarise(samples []float64) (Summary, error) {
	if len(samples) == 0 {
		return Summary{}, nil
	}
	for i, v := range samples {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Summary{}, fmt.Errorf("result: sample %d is %v", i, v)
		}
	}
	data := stats.Float64Data(samples)
	sum := Summary{N: len(samples)}
	var err error
	if sum.Median, err = stats.Median(data); err != nil {
		return Summary{}, fmt.Errorf("result: median: %w", err)
	}
	if sum.P99, err = stats.PercentileNearestRank(data, 99); err != nil {
		return Summary{}, fmt.Errorf("result: p99: %w", err)
	}
	if sum.Mean, err = stats.Mean(data); err != nil {
		return Summary{}, fmt.Errorf("result: mean: %w", err)
	}
	if sum.Min, err = stats.Min(data); err != nil {
		return Summary{}, fmt.Errorf("result: min: %w", err)
	}
	if sum.Max, err = stats.Max(data); err != nil {
		return Summary{}, fmt.Errorf("result: max: %w", err)
	}
	if len(samples) > 1 {
		if sum.Stddev, err = stats.StandardDeviationSample(data); err != nil {
			return Summary{}, fmt.Errorf("result: stddev: %w", err)
		}
	}
	// Huge finite samples can still overflow the mean or variance.
	for _, v := range []float64{sum.Mean, sum.Stddev} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Summary{}, fmt.Errorf("result: samples overflow float64 statistics")
		}
	}
	return sum, nil
}

// Summarise fills the scenario's summary fields from its Samples. On error
// the fields are left unchanged.
func (s *Scenario) Summarise() error {
	sum, err := Summarise(s.Samples)
	if err != nil {
		return fmt.Errorf("scenario %q (%s): %w", s.Name, s.Path, err)
	}
	s.Median, s.Stddev = sum.Median, sum.Stddev
	s.P99 = nil
	if sum.N >= MinP99Samples {
		p99 := sum.P99
		s.P99 = &p99
	}
	s.Mean, s.Min, s.Max = sum.Mean, sum.Min, sum.Max
	return nil
}

package peer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"syscall"
	"time"
)

// Scenario is one measured configuration, in the JSON form of the main
// module's internal/result.Scenario. This module cannot import that package
// (it must not pull the main module's tree, nor the main module gVisor's),
// so the field names are repeated here and must change with it.
type Scenario struct {
	Name       string             `json:"name"`
	Path       string             `json:"path"`
	Port       string             `json:"port"`
	Knobs      map[string]any     `json:"knobs"`
	Metric     string             `json:"metric"`
	Unit       string             `json:"unit"`
	Samples    []float64          `json:"samples"`
	Median     float64            `json:"median"`
	P99        *float64           `json:"p99"` // only over at least minP99Samples samples
	Stddev     float64            `json:"stddev"`
	Mean       float64            `json:"mean"`
	Min        float64            `json:"min"`
	Max        float64            `json:"max"`
	CPUSeconds float64            `json:"cpu_seconds"`
	Counters   map[string]uint64  `json:"counters"`
	Roles      map[string]int     `json:"roles,omitempty"` // core per role, -1 unpinned
	GOMAXPROCS int                `json:"gomaxprocs,omitempty"`
	WarmupS    float64            `json:"warmup_s"` // warm-up of each run, seconds
	Repeat     int                `json:"repeat"`   // independent runs the samples come from
	Extra      map[string]float64 `json:"extra,omitempty"`
	Skipped    string             `json:"skipped"`
}

// minP99Samples is the fewest samples a p99 is quoted over, as in the main
// module: below it the "p99" would be just the largest sample.
const minP99Samples = 100

// MarshalJSON writes nil maps and slices as {} and [], as the main module's
// reader expects, and refuses numbers JSON cannot hold.
func (s Scenario) MarshalJSON() ([]byte, error) {
	type plain Scenario
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
	nums := append([]float64{p.Median, p.Stddev, p.Mean, p.Min, p.Max, p.CPUSeconds, p.WarmupS}, p.Samples...)
	if p.P99 != nil {
		nums = append(nums, *p.P99)
	}
	for _, v := range p.Extra {
		nums = append(nums, v)
	}
	for _, v := range nums {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("scenario %q: non-finite number %v", s.Name, v)
		}
	}
	return json.Marshal(p)
}

// summarise fills the summary fields from Samples: median, nearest-rank
// p99 (always one of the samples, and only over at least minP99Samples),
// sample (n-1) standard deviation, mean, min and max, as
// internal/result.Summarise does.
func (s *Scenario) summarise() {
	n := len(s.Samples)
	if n == 0 {
		return
	}
	sorted := append([]float64(nil), s.Samples...)
	sort.Float64s(sorted)
	s.Min, s.Max = sorted[0], sorted[n-1]
	if n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	s.P99 = nil
	if n >= minP99Samples {
		p := nearestRank(sorted, 99)
		s.P99 = &p
	}
	var sum float64
	for _, v := range sorted {
		sum += v
	}
	s.Mean = sum / float64(n)
	if n > 1 {
		var sq float64
		for _, v := range sorted {
			sq += (v - s.Mean) * (v - s.Mean)
		}
		s.Stddev = math.Sqrt(sq / float64(n-1))
	}
}

// nearestRank is the p-th percentile of sorted data by the nearest-rank
// method: the smallest value with at least p% of the data at or below it.
func nearestRank(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// cpuTime is the user plus system CPU time this process has used: both
// stacks, the link goroutines and the application goroutines together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

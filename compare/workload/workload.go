// Package workload describes one comparison workload: what to run, at which
// sizes, for how long. It sits below package compare and below every peer so
// that compare can list the peers without an import cycle; compare re-exports
// Workload under its own name.
package workload

import (
	"errors"
	"fmt"
	"time"
)

// Workload names a traffic pattern a peer knows (udp_rr, udp_stream,
// tcp_stream, tcp_crr, connect_rate, l2_fwd) and how long and at which
// sizes to run it.
type Workload struct {
	Name string
	// Sizes are UDP payload bytes for udp_rr and udp_stream and frame
	// bytes (without FCS) for l2_fwd; workloads that have no size ignore
	// them. Empty means the peer's defaults.
	Sizes []int
	// Duration is the measured time of one run. The UDP and TCP peers
	// turn each run into one sample: its events over its measured time.
	Duration time.Duration
	// Warmup runs before the measured time of every run and is not
	// counted: caches, ARP, congestion windows and buffer autotuning
	// settle in it.
	Warmup time.Duration
	// Repeat is the number of independent runs of each scenario, each
	// with its own set-up and warm-up; the scenario's samples come from
	// them. 0 or 1 is one run.
	Repeat int
	// MTU is the largest IP packet on the links a peer creates (the veth
	// pair, gVisor's channel link); 0 means DefaultMTU. Loopback keeps
	// its own, and the scenario's "mtu" knob says which applied.
	MTU int
	// Streams are the numbers of parallel connections tcp_stream runs,
	// one scenario each, their goodput summed (the "streams" knob).
	// Empty means one; other workloads ignore it.
	Streams []int
}

// MaxStreams bounds one entry of Streams: each stream is a connection and
// two goroutines (or threads) per peer.
const MaxStreams = 64

// StreamsOr is the workload's stream counts, or [1] when it names none.
func (w Workload) StreamsOr() []int {
	if len(w.Streams) > 0 {
		return w.Streams
	}
	return []int{1}
}

// DefaultMTU is the MTU peers give the links they create: pollnet's wire
// port default (pmd/wire.DefaultMTU), so that an 8000-byte payload travels
// unfragmented on every path, as it does through pollnet.
const DefaultMTU = 9000

// MTUOr is the workload's MTU, or DefaultMTU when it names none.
func (w Workload) MTUOr() int {
	if w.MTU > 0 {
		return w.MTU
	}
	return DefaultMTU
}

// MaxDuration bounds Duration and Warmup: every load loop in the peers stops
// by itself, and a typing slip must not turn into an hour of traffic.
const MaxDuration = 10 * time.Minute

// Check reports a workload that no peer could run sensibly.
func (w Workload) Check() error {
	switch {
	case w.Name == "":
		return fmt.Errorf("workload has no name")
	case w.Duration <= 0:
		return fmt.Errorf("workload %s: duration %v must be positive", w.Name, w.Duration)
	case w.Duration > MaxDuration || w.Warmup > MaxDuration:
		return fmt.Errorf("workload %s: duration %v or warmup %v over the %v limit", w.Name, w.Duration, w.Warmup, MaxDuration)
	case w.Warmup < 0:
		return fmt.Errorf("workload %s: warmup %v is negative", w.Name, w.Warmup)
	case w.Repeat < 0:
		return fmt.Errorf("workload %s: repeat %d is negative", w.Name, w.Repeat)
	case w.MTU != 0 && (w.MTU < 576 || w.MTU > 65535):
		return fmt.Errorf("workload %s: MTU %d out of range 576..65535", w.Name, w.MTU)
	}
	for _, s := range w.Sizes {
		if s <= 0 {
			return fmt.Errorf("workload %s: size %d must be positive", w.Name, s)
		}
	}
	for _, n := range w.Streams {
		if n < 1 || n > MaxStreams {
			return fmt.Errorf("workload %s: streams %d out of range 1..%d", w.Name, n, MaxStreams)
		}
	}
	return nil
}

// Runs is the number of times each scenario runs: Repeat, at least once.
func (w Workload) Runs() int {
	if w.Repeat < 1 {
		return 1
	}
	return w.Repeat
}

// SizesOr returns the workload's sizes, or def when it names none.
func (w Workload) SizesOr(def ...int) []int {
	if len(w.Sizes) > 0 {
		return w.Sizes
	}
	return def
}

// Interval is the length of one sample window: a second, or the whole
// Duration when that is shorter, so a short run still yields a sample.
func (w Workload) Interval() time.Duration {
	return min(time.Second, w.Duration)
}

// Windows is the number of sample windows in Duration, at least one.
func (w Workload) Windows() int {
	return max(1, int(w.Duration/w.Interval()))
}

// ErrUnknown is wrapped by a peer's Run when it is asked for a workload it
// does not list in Workloads.
var ErrUnknown = errors.New("workload not offered by this peer")

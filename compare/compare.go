// Package compare runs the peers that pollnet is measured against — the
// Linux kernel's own stack, iperf3 over it, gVisor's netstack and
// dpdk-testpmd — and returns their figures in the same result format as
// pollnet's own suites, so one chart or `pollnet compare` can put them side
// by side. The peers run the same work as pollnet under the same names:
// udp_rr and udp_stream over the same payloads and MTU, with the batching
// recorded in the "batch" knob; tcp_stream counted as goodput read by the
// receiving application (rx_bps) over Workload.Streams parallel
// connections ("streams") with the congestion control in "cc"; tcp_crr as
// connections per second (conn_per_s), each a 64-byte request and response
// with the server closing first, 8 in flight. A workload's MTU is the MTU
// of the links the peers create ("mtu"); run it once per MTU to compare
// several.
// A workload's Repeat is that many independent runs per scenario, each with
// its own warm-up, each giving one sample.
//
// A peer that cannot run on this machine (a tool missing, no root for
// network namespaces, an EAL that will not start) still returns its
// scenarios, with Skipped saying why: a result file never silently lacks a
// peer and never carries a made-up number.
package compare

import (
	"context"
	"fmt"
	"slices"

	"github.com/pollnet/pollnet/compare/kernel"
	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// Workload is what to run, at which sizes and for how long. It lives in
// package workload so the peers can use it without importing compare.
type Workload = workload.Workload

// DefaultMTU is the MTU of the links the peers create unless a workload
// names another: pollnet's wire MTU.
const DefaultMTU = workload.DefaultMTU

// ErrUnknownWorkload is wrapped by Run when a peer is asked for a workload it
// does not offer.
var ErrUnknownWorkload = workload.ErrUnknown

// Peer is one system measured beside pollnet.
type Peer interface {
	// Name is the Path its scenarios carry in result files, such as
	// "kernel" or "dpdk-testpmd".
	Name() string
	// Workloads lists the workload names Run accepts.
	Workloads() []string
	// Run measures one workload and returns one scenario per
	// configuration (topology, size, vdev), skipped ones included. An
	// error means the request itself was wrong (an unknown workload, a bad
	// duration) or the context ended; a configuration that failed to run
	// is a skipped scenario carrying the failure, so the others survive.
	Run(ctx context.Context, w Workload) ([]result.Scenario, error)
}

// Peers lists the peers this package provides, with their default settings.
func Peers() []Peer {
	return []Peer{&kernel.Peer{}, &kernel.Iperf3{}, &GVisor{}, &testpmd.Peer{}}
}

// Offers reports whether p runs the named workload.
func Offers(p Peer, name string) bool {
	return slices.Contains(p.Workloads(), name)
}

// Run runs w on each peer that offers it, in order, and returns all their
// scenarios. It stops at the first error, returning the scenarios so far.
// Asking for a workload that no peer offers is an error, so a typo does not
// yield an empty result file.
func Run(ctx context.Context, peers []Peer, w Workload) ([]result.Scenario, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	var out []result.Scenario
	ran := false
	for _, p := range peers {
		if !Offers(p, w.Name) {
			continue
		}
		ran = true
		scs, err := p.Run(ctx, w)
		out = append(out, scs...)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Name(), err)
		}
	}
	if !ran {
		return nil, fmt.Errorf("%w: no peer offers %q", ErrUnknownWorkload, w.Name)
	}
	return out, nil
}

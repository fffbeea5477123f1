// Package kernel measures the Linux kernel's own network stack from this
// process, in the result format pollnet's suites use, so the kernel stands
// beside pollnet's poll and interrupt modes in one chart, on the same work:
//
//   - udp_rr: UDP request/response, one request outstanding, write/read,
//     the server echoing (netperf's UDP_RR);
//   - udp_stream: one-way UDP, sendmmsg to recvmmsg, counted as datagrams
//     the receiving application read;
//   - tcp_stream: TCP bulk transfer over 1 or more parallel connections
//     with a named congestion control, counted as goodput the receiving
//     application read;
//   - tcp_crr: a fresh connection per 64-byte request and 64-byte response,
//     the server closing first, 8 connections in flight (netperf's
//     TCP_CRR);
//   - connect_rate: TCP connect + accept + close per second.
//
// Each runs over loopback (127.0.0.1, any user) and, where it applies, over a
// veth pair between two network namespaces the package creates and deletes
// (198.18.0.1 and 198.18.0.2, root only), with pollnet's wire MTU (9000)
// unless the workload names another. Iperf3 runs tcp_stream as a second
// opinion under the path "kernel-iperf3".
//
// Every scenario is Repeat independent runs, each with its own sockets (and
// namespaces) and its own warm-up; each run gives one sample, its events
// over its measured time, and every counter covers measured time only.
//
// Syscalls are slow on small VMs (DESIGN.md: about 270 ns each, 5-6 µs per
// UDP send): compare the kernel with pollnet as ratios taken in one run.
package kernel

import (
	"context"
	"errors"
	"fmt"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// Workload names the kernel peers offer.
const (
	UDPRR       = "udp_rr"
	UDPStream   = "udp_stream"
	TCPStream   = "tcp_stream"
	TCPCRR      = "tcp_crr"
	ConnectRate = "connect_rate"
)

// Path is the result Path of the kernel peer's scenarios.
const Path = "kernel"

// DefaultBatch is the number of datagrams per sendmmsg and recvmmsg in
// udp_stream: the burst size pollnet and DPDK use, so the kernel gets
// batching too and the comparison is against its best syscall interface,
// not its worst. The "batch" knob records it; udp_rr is always 1.
const DefaultBatch = 32

// DefaultCC is the congestion control both ends of a TCP stream use.
const DefaultCC = "cubic"

// DefaultUDPPayloads are the UDP payloads every path runs (pollnet's udp
// scenario, gVisor and the kernel alike): a bare request, a small message,
// a full 1500-MTU frame's worth and a jumbo one that needs the 9000 MTU.
var DefaultUDPPayloads = []int{16, 64, 1400, 8000}

// Peer is the kernel's stack driven with raw socket system calls. The zero
// value runs every workload on both topologies with the defaults above.
type Peer struct {
	// Topologies to run udp_rr, udp_stream, tcp_stream and tcp_crr on:
	// "loopback", "veth". Empty means both. connect_rate runs on loopback
	// only.
	Topologies []string
	// Batch is datagrams per sendmmsg/recvmmsg in udp_stream; 1 uses
	// write/read, one syscall per datagram. 0 means DefaultBatch.
	Batch int
	// CC is the TCP congestion control for tcp_stream and tcp_crr; ""
	// means DefaultCC.
	CC string
}

// Name is the result Path of the peer's scenarios.
func (p *Peer) Name() string { return Path }

// Workloads lists what Run accepts.
func (p *Peer) Workloads() []string {
	return []string{UDPRR, UDPStream, TCPStream, TCPCRR, ConnectRate}
}

// Run measures workload w and returns one scenario per topology (and per
// payload for the UDP workloads, per stream count for tcp_stream). A topology this machine cannot give (veth without root)
// yields skipped scenarios with the reason; a run that fails yields a
// skipped scenario starting "failed:". The error is for a bad workload, an
// ended context, or namespaces that could not be deleted.
func (p *Peer) Run(ctx context.Context, w workload.Workload) ([]result.Scenario, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	switch w.Name {
	case UDPRR:
		return p.eachTopology(ctx, w, p.topologies(), p.udpRRScenarios)
	case UDPStream:
		return p.eachTopology(ctx, w, p.topologies(), p.udpStreamScenarios)
	case TCPStream:
		return p.eachTopology(ctx, w, p.topologies(), p.tcpScenarios)
	case TCPCRR:
		return p.eachTopology(ctx, w, p.topologies(), p.crrScenarios)
	case ConnectRate:
		return p.eachTopology(ctx, w, []string{topoLoopback}, p.connectScenarios)
	}
	return nil, fmt.Errorf("%w: %q (kernel offers %v)", workload.ErrUnknown, w.Name, p.Workloads())
}

func (p *Peer) topologies() []string {
	if len(p.Topologies) > 0 {
		return p.Topologies
	}
	return []string{topoLoopback, topoVeth}
}

func (p *Peer) batch() int {
	if p.Batch <= 0 {
		return DefaultBatch
	}
	return p.Batch
}

func (p *Peer) cc() string {
	if p.CC == "" {
		return DefaultCC
	}
	return p.CC
}

// scenarioFunc runs one workload's scenarios on an open topology, or, when
// topo is nil, returns them skipped with reason.
type scenarioFunc func(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error)

// eachTopology opens each topology in turn, runs fn on it and tears it down
// before the next, so at most one pair of namespaces exists at a time.
func (p *Peer) eachTopology(ctx context.Context, w workload.Workload, topos []string, fn scenarioFunc) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, name := range topos {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		topo, err := openTopology(ctx, name, w.MTUOr())
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			// The skipped scenarios still say what they would have run
			// with, the MTU included.
			mtu := w.MTUOr()
			if name == topoLoopback {
				mtu = loopbackMTU()
			}
			scs, ferr := fn(ctx, &topology{name: name, mtu: mtu}, w, skipReason(err))
			out = append(out, scs...)
			if ferr != nil {
				return out, ferr
			}
			continue
		}
		scs, ferr := runOn(ctx, topo, w, fn)
		out = append(out, scs...)
		if ferr != nil {
			return out, ferr
		}
	}
	return out, nil
}

// runOn runs fn on an open topology and tears the topology down however fn
// ends, a panic included, so no namespace outlives the run.
func runOn(ctx context.Context, topo *topology, w workload.Workload, fn scenarioFunc) (scs []result.Scenario, err error) {
	defer func() {
		if cerr := topo.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("kernel: cleaning up %s topology: %w", topo.name, cerr))
		}
	}()
	return fn(ctx, topo, w, "")
}

package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
	"golang.org/x/sys/unix"
)

// udp_rr is netperf's UDP_RR on the kernel's sockets: a client sends one
// request and blocks for its answer; a server reads it and writes it back;
// the next request leaves when the answer has arrived. One datagram each
// way per transaction, one system call per datagram (write and read on
// connected sockets), as pollnet's udp_rr does through its own sockets.

// Settings of the request/response loop.
const (
	// rrMinPayload is the least payload: the request carries its sequence
	// number, so a late answer to a request given up on is not taken for
	// the answer to the next.
	rrMinPayload = 8
	// rrTimeout is how long the client waits for an answer before it
	// counts the request lost and sends the next: pollnet's udp_rr gives
	// up after 100 ms too.
	rrTimeout = 100 * time.Millisecond
	// rrMaxRate bounds the transactions of one run, far above what one
	// blocking client reaches.
	rrMaxRate = 2e6
)

// udpRRScenarios runs udp_rr for each payload on one topology.
func (p *Peer) udpRRScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, payload := range w.SizesOr(DefaultUDPPayloads...) {
		s := spec{name: UDPRR, path: Path, port: topo.name, metric: "transactions_per_s", unit: "transactions/s",
			knobs: udpKnobs(topo, w, payload, 1, "write/read")}
		s.knobs["outstanding"] = 1
		reason := skip
		if reason == "" {
			reason = payloadReason(payload, rrMinPayload)
		}
		if reason != "" {
			out = append(out, s.skipped(w, reason))
			continue
		}
		sc, rs, err := measure(ctx, w, s, func() (window, error) { return udpRROnce(ctx, topo, w, payload) })
		if err != nil {
			return out, err
		}
		if sc.Skipped == "" && rs.events > 0 {
			sc.Extra["cpu_ns_per_transaction"] = float64(rs.cpu.Nanoseconds()) / float64(rs.events)
			sc.Extra["cpu_ns_per_packet"] = float64(rs.cpu.Nanoseconds()) / float64(2*rs.events)
		}
		out = append(out, sc)
	}
	return out, nil
}

// udpRROnce is one udp_rr run: a client socket in the topology's transmit
// namespace and a server socket in its receive namespace, connected to each
// other, each driven by its own goroutine. The transactions completed over
// the measured window are the events, and each one's round-trip time (write
// of the request to read of its answer) is kept. Its counters, over the
// window only:
//
//   - transactions: the number of requests answered;
//   - timeouts: the number of requests given up on after rrTimeout.
func udpRROnce(ctx context.Context, topo *topology, w workload.Workload, payload int) (window, error) {
	cli, err := socket(topo.txNS, unix.SOCK_DGRAM, func(fd int) error {
		if err := setTimeout(fd, unix.SO_RCVTIMEO, rrTimeout); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.txAddr})
	})
	if err != nil {
		return window{}, fmt.Errorf("client: %w", err)
	}
	defer unix.Close(cli)
	cport, err := boundPort(cli)
	if err != nil {
		return window{}, err
	}
	srv, err := socket(topo.rxNS, unix.SOCK_DGRAM, func(fd int) error {
		if err := setTimeout(fd, unix.SO_RCVTIMEO, udpPollEvery); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.rxAddr}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Addr: topo.txAddr, Port: cport})
	})
	if err != nil {
		return window{}, fmt.Errorf("server: %w", err)
	}
	defer unix.Close(srv)
	sport, err := boundPort(srv)
	if err != nil {
		return window{}, err
	}
	if err := unix.Connect(cli, &unix.SockaddrInet4{Addr: topo.rxAddr, Port: sport}); err != nil {
		return window{}, fmt.Errorf("client: connect: %w", err)
	}

	deadline, limit := loadBounds(w, rrMaxRate)
	loadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var done, timeouts atomic.Uint64
	var stop, measuring atomic.Bool
	var lat []int64 // owned by the client goroutine until clientWG.Wait
	var srvErr, cliErr error
	var srvWG, clientWG sync.WaitGroup
	srvWG.Go(func() {
		srvErr = rrServe(srv, payload, &stop, deadline.Add(udpDrainTime))
		if srvErr != nil {
			cancel(fmt.Errorf("server: %w", srvErr))
		}
	})
	clientWG.Go(func() {
		lat, cliErr = rrClient(cli, payload, &done, &timeouts, &stop, &measuring, deadline, limit)
		if cliErr != nil {
			cancel(fmt.Errorf("client: %w", cliErr))
		}
	})
	win, err := measureWindow(loadCtx, w, probe{
		count: done.Load,
		snap: func() map[string]uint64 {
			return map[string]uint64{"transactions": done.Load(), "timeouts": timeouts.Load()}
		},
		measuring: measuring.Store,
	})
	stop.Store(true)
	clientWG.Wait()
	srvWG.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(srvErr, cliErr); err != nil {
		return window{}, err
	}
	if win.events == 0 {
		return window{}, fmt.Errorf("no transaction completed in %v (%d timeouts)", win.span, win.counters["timeouts"])
	}
	win.lat = lat
	return win, nil
}

// rrServe echoes every request back until stop is set (it then notices
// within SO_RCVTIMEO) or the deadline passes.
func rrServe(fd, payload int, stop *atomic.Bool, deadline time.Time) error {
	buf := make([]byte, max(payload, 2048))
	for !stop.Load() && time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if err == nil {
			_, err = unix.Write(fd, buf[:n])
		}
		if err != nil && !transient(err) {
			return err
		}
	}
	return nil
}

// rrClient runs transactions one after another until stop, the deadline or
// limit, counting each answered one in done and each request given up on
// in timeouts. It returns the round-trip times of the transactions that
// completed while measuring was set (at most maxLatencies).
func rrClient(fd, payload int, done, timeouts *atomic.Uint64, stop, measuring *atomic.Bool, deadline time.Time, limit uint64) ([]int64, error) {
	req := make([]byte, payload)
	resp := make([]byte, max(payload, 2048))
	var lat []int64
	var seq uint64
	for n := uint64(0); !stop.Load() && n < limit && time.Now().Before(deadline); n++ {
		seq++
		binary.LittleEndian.PutUint64(req, seq)
		t0 := time.Now()
		if _, err := unix.Write(fd, req); err != nil {
			if transient(err) {
				continue
			}
			return lat, err
		}
		for {
			k, err := unix.Read(fd, resp)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) {
					timeouts.Add(1) // lost: send the next
					break
				}
				if transient(err) {
					continue
				}
				return lat, err
			}
			if k >= rrMinPayload && binary.LittleEndian.Uint64(resp) == seq {
				rtt := time.Since(t0)
				if measuring.Load() && len(lat) < maxLatencies {
					lat = append(lat, rtt.Nanoseconds())
				}
				done.Add(1)
				break
			} // else a late answer to a request already given up on
		}
	}
	return lat, nil
}

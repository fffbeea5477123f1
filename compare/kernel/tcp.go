package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
	"golang.org/x/sys/unix"
)

// Bounds and sizes of the TCP runs.
const (
	tcpWriteSize  = 128 << 10 // bytes per write: iperf3's default for TCP
	tcpMaxRate    = 50e9      // bytes per second the byte cap allows: far above this machine
	tcpPollEvery  = 100 * time.Millisecond
	tcpSetupLimit = 2 * time.Second // connect and accept
	tcpDrainTime  = 2 * time.Second

	connMaxRate   = 200e3 // connections per second the count cap allows
	connBacklog   = 1024
	connMaxErrors = 1000
)

// tcpScenarios runs tcp_stream (Repeat independent runs) on one topology,
// one scenario per stream count.
func (p *Peer) tcpScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, streams := range w.StreamsOr() {
		s := spec{name: TCPStream, path: Path, port: topo.name, metric: "rx_bps", unit: "bits/s", scale: 8,
			knobs: map[string]any{
				"topology": topo.name, "cc": p.cc(), "mtu": topo.mtu, "write_bytes": tcpWriteSize, "streams": streams,
				"syscalls": "write/read", "duration_s": w.Duration.Seconds(),
			}}
		if skip != "" {
			out = append(out, s.skipped(w, skip))
			continue
		}
		sc, rs, err := measure(ctx, w, s, func() (window, error) { return p.tcpOnce(ctx, topo, w, streams) })
		if err != nil {
			return out, err
		}
		if sc.Skipped == "" {
			sc.Extra["gbps_median"] = sc.Median / 1e9
			if rs.events > 0 { // bytes the receivers read
				sc.Extra["cpu_ns_per_kib"] = float64(rs.cpu.Nanoseconds()) / (float64(rs.events) / 1024)
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// tcpPair is one stream's two ends: the client (sender) and the socket the
// listener accepted for it (receiver).
type tcpPair struct{ cl, srv int }

// tcpConnect opens n connections from the topology's transmit namespace to
// a listener in its receive namespace, every socket with congestion
// control cc, and checks that cc took on every one: a machine whose default
// is bbr must not pass bbr figures off as cubic ones. On error nothing is
// left open.
func tcpConnect(topo *topology, cc string, n int) (pairs []tcpPair, err error) {
	ln, err := socket(topo.rxNS, unix.SOCK_STREAM, func(fd int) error {
		if err := setCongestion(fd, cc); err != nil {
			return err
		}
		if err := setTimeout(fd, unix.SO_RCVTIMEO, tcpSetupLimit); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.rxAddr}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return unix.Listen(fd, n)
	})
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	defer unix.Close(ln)
	port, err := boundPort(ln)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closePairs(pairs)
			pairs = nil
		}
	}()
	for range n {
		cl, err := socket(topo.txNS, unix.SOCK_STREAM, func(fd int) error {
			if err := setCongestion(fd, cc); err != nil {
				return err
			}
			if err := setTimeout(fd, unix.SO_SNDTIMEO, tcpSetupLimit); err != nil {
				return err
			}
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: topo.rxAddr, Port: port}); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			return setTimeout(fd, unix.SO_SNDTIMEO, tcpPollEvery)
		})
		if err != nil {
			return pairs, fmt.Errorf("client: %w", err)
		}
		srv, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			unix.Close(cl)
			return pairs, fmt.Errorf("accept: %w", err)
		}
		pairs = append(pairs, tcpPair{cl: cl, srv: srv})
		if err := setCongestion(srv, cc); err != nil {
			return pairs, err
		}
		if err := setTimeout(srv, unix.SO_RCVTIMEO, tcpPollEvery); err != nil {
			return pairs, err
		}
		for _, fd := range []int{cl, srv} {
			if got, err := congestion(fd); err != nil || got != cc {
				return pairs, fmt.Errorf("congestion control is %q, want %q (%v)", got, cc, err)
			}
		}
	}
	return pairs, nil
}

func closePairs(pairs []tcpPair) {
	for _, p := range pairs {
		unix.Close(p.cl)
		unix.Close(p.srv)
	}
}

// tcpOnce is one tcp_stream run of the given number of parallel
// connections: a listener in the receive namespace, clients in the
// transmit namespace, every socket with the congestion control named, one
// goroutine writing and one reading per connection. The events are the
// bytes the receiving application read over the measured window, summed
// over the connections: goodput, as iperf3's receiver reports it, not
// bytes the senders' kernel accepted. Its counters, over the window only
// and summed over the connections:
//
//   - bytes_sent: the number of bytes the senders' writes handed the kernel;
//   - bytes_received: the number of bytes the receiving application read;
//   - retransmits: the number of segments the senders retransmitted
//     (tcpi_total_retrans of TCP_INFO).
func (p *Peer) tcpOnce(ctx context.Context, topo *topology, w workload.Workload, streams int) (window, error) {
	pairs, err := tcpConnect(topo, p.cc(), streams)
	if err != nil {
		return window{}, err
	}
	defer closePairs(pairs)

	deadline, limit := loadBounds(w, tcpMaxRate/float64(streams))
	loadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var sent, received atomic.Uint64
	var stopSend, stopRecv atomic.Bool
	sendErrs := make([]error, streams)
	recvErrs := make([]error, streams)
	var recvWG, sendWG sync.WaitGroup
	for i, pr := range pairs {
		recvWG.Go(func() {
			recvErrs[i] = tcpReceive(pr.srv, &received, &stopRecv, deadline.Add(tcpDrainTime))
			if recvErrs[i] != nil {
				cancel(fmt.Errorf("receiver %d: %w", i, recvErrs[i]))
			}
		})
		sendWG.Go(func() {
			sendErrs[i] = tcpSend(pr.cl, &sent, &stopSend, deadline, limit)
			if sendErrs[i] != nil {
				cancel(fmt.Errorf("sender %d: %w", i, sendErrs[i]))
			}
		})
	}
	win, err := measureWindow(loadCtx, w, probe{count: received.Load, key: "bytes_received", snap: func() map[string]uint64 {
		c := map[string]uint64{"bytes_sent": sent.Load(), "bytes_received": received.Load()}
		var retrans uint64
		for _, pr := range pairs {
			if info, err := unix.GetsockoptTCPInfo(pr.cl, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				retrans += uint64(info.Total_retrans)
			}
		}
		c["retransmits"] = retrans
		return c
	}})
	stopSend.Store(true)
	sendWG.Wait()
	// The half-close lets each receiver read to the end of its stream.
	for _, pr := range pairs {
		_ = unix.Shutdown(pr.cl, unix.SHUT_WR)
	}
	stopRecv.Store(true)
	recvWG.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(append(sendErrs, recvErrs...)...); err != nil {
		return window{}, err
	}
	if win.events == 0 {
		return window{}, fmt.Errorf("no byte read in %v", win.span)
	}
	return win, nil
}

// tcpSend writes until stop is set, the deadline passes or limit bytes are
// written; a write that times out on a full send buffer just loops.
func tcpSend(fd int, sent *atomic.Uint64, stop *atomic.Bool, deadline time.Time, limit uint64) error {
	buf := make([]byte, tcpWriteSize)
	var n uint64
	for !stop.Load() && n < limit && time.Now().Before(deadline) {
		k, err := unix.Write(fd, buf)
		if k > 0 {
			n += uint64(k)
			sent.Add(uint64(k))
		}
		if err != nil && !transient(err) {
			return err
		}
	}
	return nil
}

// tcpReceive reads until the end of the stream, or, once stop is set, until
// the socket idles for a timeout, or the deadline.
func tcpReceive(fd int, received *atomic.Uint64, stop *atomic.Bool, deadline time.Time) error {
	buf := make([]byte, tcpWriteSize)
	for time.Now().Before(deadline) {
		k, err := unix.Read(fd, buf)
		switch {
		case err == nil && k == 0:
			return nil // end of stream
		case err == nil:
			received.Add(uint64(k))
		case transient(err):
			if stop.Load() {
				return nil
			}
		case errors.Is(err, unix.ECONNRESET):
			return nil
		default:
			return err
		}
	}
	return nil
}

// connectScenarios runs connect_rate (Repeat independent runs) on loopback.
func (p *Peer) connectScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	s := spec{name: ConnectRate, path: Path, port: topo.name, metric: "conn_per_s", unit: "connections/s",
		knobs: map[string]any{
			"topology": topo.name, "mtu": topo.mtu, "clients": 1, "close": "server first, client reads EOF",
			"syscalls":   "socket/setsockopt/connect/read/close, accept4/close",
			"duration_s": w.Duration.Seconds(),
		}}
	if skip != "" {
		return []result.Scenario{s.skipped(w, skip)}, nil
	}
	sc, rs, err := measure(ctx, w, s, func() (window, error) { return connectOnce(ctx, topo, w) })
	if err != nil {
		return nil, err
	}
	if sc.Skipped != "" {
		return []result.Scenario{sc}, nil
	}
	if rs.events > 0 {
		sc.Extra["cpu_us_per_conn"] = float64(rs.cpu.Nanoseconds()) / 1e3 / float64(rs.events)
	}
	return []result.Scenario{sc}, nil
}

// connectOnce is one connect_rate run: one client goroutine opens a
// connection, waits for the server's close (read returns end of stream) and
// closes its own end; one acceptor goroutine accepts and closes at once.
// Its counters, over the measured window only: connections (the number of
// connections the client completed), accepted (the number the acceptor
// took) and connect_errors (the number of connects that failed).
// The server closing first leaves TIME_WAIT on the server's side, so the
// client does not run out of ephemeral ports over repeated runs.
func connectOnce(ctx context.Context, topo *topology, w workload.Workload) (window, error) {
	ln, addr, err := acceptListener(topo, "", udpPollEvery, connBacklog)
	if err != nil {
		return window{}, err
	}
	defer unix.Close(ln)

	deadline, limit := loadBounds(w, connMaxRate)
	loadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var conns, accepted, failures atomic.Uint64
	var stopClient, stopAccept atomic.Bool
	var clientErr, acceptErr error
	var acceptWG, clientWG sync.WaitGroup
	acceptWG.Go(func() {
		acceptErr = acceptLoop(ln, &accepted, &stopAccept, deadline.Add(tcpDrainTime))
		if acceptErr != nil {
			cancel(fmt.Errorf("acceptor: %w", acceptErr))
		}
	})
	clientWG.Go(func() {
		clientErr = connectLoop(topo.txNS, addr, &conns, &failures, &stopClient, deadline, limit)
		if clientErr != nil {
			cancel(fmt.Errorf("client: %w", clientErr))
		}
	})
	win, err := measureWindow(loadCtx, w, probe{count: conns.Load, snap: func() map[string]uint64 {
		return map[string]uint64{"connections": conns.Load(), "accepted": accepted.Load(), "connect_errors": failures.Load()}
	}})
	stopClient.Store(true)
	clientWG.Wait()
	stopAccept.Store(true)
	acceptWG.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(clientErr, acceptErr); err != nil {
		return window{}, err
	}
	if win.events == 0 {
		return window{}, fmt.Errorf("no connection completed in %v (%d connect errors)", win.span, failures.Load())
	}
	return win, nil
}

// connectLoop opens and closes connections to addr one after another until
// stop, the deadline or limit. Failed connects are counted; too many in a
// row end the loop with the last error.
func connectLoop(ns string, addr *unix.SockaddrInet4, conns, failures *atomic.Uint64, stop *atomic.Bool, deadline time.Time, limit uint64) error {
	var one [1]byte
	var n uint64
	inRow := 0
	for !stop.Load() && n < limit && time.Now().Before(deadline) {
		fd, err := socket(ns, unix.SOCK_STREAM, func(fd int) error {
			return setTimeout(fd, unix.SO_RCVTIMEO, time.Second)
		})
		if err != nil {
			return err
		}
		err = unix.Connect(fd, addr)
		if err == nil {
			_, err = unix.Read(fd, one[:]) // 0 bytes: the server has closed
		}
		unix.Close(fd)
		if err != nil {
			failures.Add(1)
			if inRow++; inRow > connMaxErrors {
				return fmt.Errorf("%d connects in a row failed: %w", inRow, err)
			}
			continue
		}
		inRow = 0
		n++
		conns.Add(1)
	}
	return nil
}

// acceptLoop accepts and closes connections until, once stop is set, the
// listener idles for a timeout, or the deadline.
func acceptLoop(ln int, accepted *atomic.Uint64, stop *atomic.Bool, deadline time.Time) error {
	for time.Now().Before(deadline) {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			unix.Close(fd)
			accepted.Add(1)
		case transient(err) || errors.Is(err, unix.ECONNABORTED):
			if stop.Load() {
				return nil
			}
		default:
			return err
		}
	}
	return nil
}

package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
	"golang.org/x/sys/unix"
)

// tcp_crr is netperf's TCP_CRR on the kernel's sockets: each transaction
// is a fresh connection that carries one request and one response. The
// server closes first, so TIME_WAIT lands on the server's side and the
// client's ephemeral ports come free as soon as each connection ends.

// Settings of tcp_crr, the same on every path.
const (
	CRRInFlight      = 8  // client loops running at once: connections in flight
	CRRRequestBytes  = 64 // bytes the client writes
	CRRResponseBytes = 64 // bytes the server writes back before it closes

	crrIOTimeout  = time.Second // bounds every connect, read and write of a transaction
	crrMaxRate    = 200e3       // transactions per second the count cap allows, per client loop
	crrMaxErrors  = 1000        // failed transactions in a row that end a client loop
	crrBacklog    = 1024
	crrPollEvery  = 100 * time.Millisecond // how soon an idle acceptor notices it should stop
	crrStateTW    = "06"                   // TIME_WAIT in /proc/net/tcp's st column
	crrCloserKnob = "server"
)

// crrScenarios runs tcp_crr (Repeat independent runs) on one topology.
func (p *Peer) crrScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	s := spec{name: TCPCRR, path: Path, port: topo.name, metric: "conn_per_s", unit: "connections/s",
		knobs: map[string]any{
			"topology": topo.name, "mtu": topo.mtu, "cc": p.cc(),
			"in_flight": CRRInFlight, "request_bytes": CRRRequestBytes, "response_bytes": CRRResponseBytes,
			"closer":     crrCloserKnob,
			"syscalls":   "socket/setsockopt×3/connect/write/read/read/close, accept4/setsockopt/read/write/close",
			"duration_s": w.Duration.Seconds(),
		}}
	if skip != "" {
		return []result.Scenario{s.skipped(w, skip)}, nil
	}
	sc, rs, err := measure(ctx, w, s, func() (window, error) { return p.crrOnce(ctx, topo, w) })
	if err != nil {
		return nil, err
	}
	if sc.Skipped == "" && rs.events > 0 {
		sc.Extra["cpu_us_per_conn"] = float64(rs.cpu.Nanoseconds()) / 1e3 / float64(rs.events)
	}
	return []result.Scenario{sc}, nil
}

// crrCounters are a tcp_crr run's tallies, shared by its goroutines.
type crrCounters struct {
	transactions atomic.Uint64 // completed by a client: response and EOF read
	accepted     atomic.Uint64 // connections the servers accepted
	served       atomic.Uint64 // responses the servers wrote and closed after
	clientErrors atomic.Uint64 // transactions a client gave up on
	serverErrors atomic.Uint64 // accepted connections a server gave up on
}

// crrOnce is one tcp_crr run: CRRInFlight client loops in the transmit
// namespace, each connecting, writing the request, reading the response and
// then end of stream, and closing; CRRInFlight server loops on one listener
// in the receive namespace, each accepting, reading the request, writing the
// response and closing first. Every socket uses the named congestion
// control. The events are the transactions the clients completed. Its
// counters, over the measured window only: transactions, accepted, served,
// client_errors, server_errors. Two more are states at the end of the run,
// not window counts: time_wait_server and time_wait_client, the run's
// connections in TIME_WAIT on each side (all of them should be on the
// server's).
func (p *Peer) crrOnce(ctx context.Context, topo *topology, w workload.Workload) (window, error) {
	cc := p.cc()
	ln, addr, err := acceptListener(topo, cc, crrPollEvery, crrBacklog)
	if err != nil {
		return window{}, err
	}
	defer unix.Close(ln)

	deadline, limit := loadBounds(w, crrMaxRate)
	loadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var c crrCounters
	var stopClients, stopServers atomic.Bool
	var ccChecked atomic.Bool
	errs := make([]error, 2*CRRInFlight)
	var serverWG, clientWG sync.WaitGroup
	for i := range CRRInFlight {
		serverWG.Go(func() {
			errs[i] = crrServe(ln, cc, &c, &ccChecked, &stopServers, deadline.Add(tcpDrainTime))
			if errs[i] != nil {
				cancel(fmt.Errorf("server %d: %w", i, errs[i]))
			}
		})
		clientWG.Go(func() {
			// The whole loop runs on one thread in the client's
			// namespace: one setns per loop, not two per connection.
			errs[CRRInFlight+i] = inNetns(topo.txNS, func() error {
				return crrClient(addr, cc, &c, &stopClients, deadline, limit)
			})
			if err := errs[CRRInFlight+i]; err != nil {
				cancel(fmt.Errorf("client %d: %w", i, err))
			}
		})
	}
	win, err := measureWindow(loadCtx, w, probe{count: c.transactions.Load, key: "transactions", snap: func() map[string]uint64 {
		return map[string]uint64{
			"transactions": c.transactions.Load(), "accepted": c.accepted.Load(), "served": c.served.Load(),
			"client_errors": c.clientErrors.Load(), "server_errors": c.serverErrors.Load(),
		}
	}})
	stopClients.Store(true)
	clientWG.Wait()
	stopServers.Store(true)
	serverWG.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(errs...); err != nil {
		return window{}, err
	}
	if win.events == 0 {
		return window{}, fmt.Errorf("no transaction completed in %v (%d client errors, %d server errors)",
			win.span, c.clientErrors.Load(), c.serverErrors.Load())
	}
	if !ccChecked.Load() {
		return window{}, fmt.Errorf("no accepted connection's congestion control was checked")
	}
	srvTW, cliTW, err := timeWaits(topo, addr.Port)
	if err != nil {
		return window{}, err
	}
	win.counters["time_wait_server"] = srvTW
	win.counters["time_wait_client"] = cliTW
	return win, nil
}

// crrClient runs transactions one after another until stop, the deadline
// or limit. The first socket's congestion control is read back: it must be
// cc. A failed transaction is counted; too many in a row end the loop with
// the last error.
func crrClient(addr *unix.SockaddrInet4, cc string, c *crrCounters, stop *atomic.Bool, deadline time.Time, limit uint64) error {
	// unix.Connect writes the raw form into the sockaddr it is given:
	// every client needs its own.
	own := *addr
	addr = &own
	req := make([]byte, CRRRequestBytes)
	resp := make([]byte, CRRResponseBytes+1)
	checked := false
	inRow := 0
	for n := uint64(0); !stop.Load() && n < limit && time.Now().Before(deadline); n++ {
		err := crrTransaction(addr, cc, req, resp, !checked)
		var skip *skipError
		if errors.As(err, &skip) {
			return err
		}
		if err != nil {
			c.clientErrors.Add(1)
			if inRow++; inRow > crrMaxErrors {
				return fmt.Errorf("%d transactions in a row failed: %w", inRow, err)
			}
			continue
		}
		checked = true
		inRow = 0
		c.transactions.Add(1)
	}
	return nil
}

// crrTransaction is one client transaction: connect, write the request,
// read the whole response, read end of stream, close.
func crrTransaction(addr *unix.SockaddrInet4, cc string, req, resp []byte, check bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := setCongestion(fd, cc); err != nil {
		return err
	}
	if check {
		if got, err := congestion(fd); err != nil || got != cc {
			return skipf("congestion control is %q, want %q (%v)", got, cc, err)
		}
	}
	// SO_SNDTIMEO bounds connect too.
	if err := setTimeout(fd, unix.SO_SNDTIMEO, crrIOTimeout); err != nil {
		return err
	}
	if err := setTimeout(fd, unix.SO_RCVTIMEO, crrIOTimeout); err != nil {
		return err
	}
	if err := unix.Connect(fd, addr); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if k, err := unix.Write(fd, req); err != nil || k != len(req) {
		return fmt.Errorf("write request: %d bytes, %v", k, err)
	}
	if err := readExactly(fd, resp[:CRRResponseBytes]); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	// The server has closed: the next read is end of stream, nothing more.
	if k, err := unix.Read(fd, resp); err != nil || k != 0 {
		return fmt.Errorf("read end of stream: %d bytes, %v", k, err)
	}
	return nil
}

// crrServe accepts and serves connections until, once stop is set, the
// listener idles for crrPollEvery, or the deadline. The first accepted
// socket whose congestion control it reads back sets checked.
func crrServe(ln int, cc string, c *crrCounters, checked, stop *atomic.Bool, deadline time.Time) error {
	buf := make([]byte, CRRRequestBytes)
	resp := make([]byte, CRRResponseBytes)
	inRow := 0
	for time.Now().Before(deadline) {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case transient(err) || errors.Is(err, unix.ECONNABORTED):
			if stop.Load() {
				return nil
			}
			continue
		default:
			return err
		}
		c.accepted.Add(1)
		if !checked.Load() {
			if got, err := congestion(fd); err != nil || got != cc {
				unix.Close(fd)
				return skipf("accepted socket's congestion control is %q, want %q (%v)", got, cc, err)
			}
			checked.Store(true)
		}
		err = crrAnswer(fd, buf, resp)
		unix.Close(fd) // the server closes first: TIME_WAIT is ours
		if err != nil {
			c.serverErrors.Add(1)
			if inRow++; inRow > crrMaxErrors {
				return fmt.Errorf("%d connections in a row failed: %w", inRow, err)
			}
			continue
		}
		inRow = 0
		c.served.Add(1)
	}
	return nil
}

// crrAnswer reads the whole request and writes the response. The request
// is read to its end before the close, which otherwise would be a reset.
func crrAnswer(fd int, req, resp []byte) error {
	if err := setTimeout(fd, unix.SO_RCVTIMEO, crrIOTimeout); err != nil {
		return err
	}
	if err := readExactly(fd, req); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if k, err := unix.Write(fd, resp); err != nil || k != len(resp) {
		return fmt.Errorf("write response: %d bytes, %v", k, err)
	}
	return nil
}

// readExactly fills buf from a stream socket whose reads time out; end of
// stream or a timeout before it is full is an error.
func readExactly(fd int, buf []byte) error {
	for got := 0; got < len(buf); {
		k, err := unix.Read(fd, buf[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("end of stream after %d of %d bytes", got, len(buf))
		}
		got += k
	}
	return nil
}

// timeWaits counts the TCP sockets in TIME_WAIT in the topology's
// namespaces on each side of the server's port: local port = port is the
// server's side, remote port = port the client's. Only this run's listener
// had that port, so older runs' connections are not counted.
func timeWaits(topo *topology, port int) (server, client uint64, err error) {
	nss := []string{topo.rxNS}
	if topo.txNS != topo.rxNS {
		nss = append(nss, topo.txNS)
	}
	for _, ns := range nss {
		err := inNetns(ns, func() error {
			f, err := os.Open("/proc/thread-self/net/tcp")
			if err != nil {
				return err
			}
			defer f.Close()
			s, c, err := countTimeWait(bufio.NewScanner(f), port)
			server += s
			client += c
			return err
		})
		if err != nil {
			return 0, 0, fmt.Errorf("reading TIME_WAIT sockets in namespace %q: %w", ns, err)
		}
	}
	return server, client, nil
}

// countTimeWait reads lines of /proc/net/tcp ("sl local_address
// rem_address st ...", addresses as HEX_IP:HEX_PORT) and counts the
// TIME_WAIT entries whose local, or else remote, port is port.
func countTimeWait(sc *bufio.Scanner, port int) (local, remote uint64, err error) {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != crrStateTW {
			continue
		}
		if hexPort(f[1]) == port {
			local++
		} else if hexPort(f[2]) == port {
			remote++
		}
	}
	return local, remote, sc.Err()
}

// hexPort is the port of a /proc/net/tcp address, or -1.
func hexPort(addr string) int {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return -1
	}
	v, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}

package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// tcp_crr's settings, the same on every path: a fresh connection per
// 64-byte request and 64-byte response, the server closing first, 8
// connections in flight.
const (
	crrInFlight      = 8
	crrRequestBytes  = 64
	crrResponseBytes = 64
	crrIOTimeout     = time.Second // bounds every connect, read and write of a transaction
	crrMaxRate       = 200e3       // transactions per second the count cap allows, per client loop
	crrMaxErrors     = 1000        // failed transactions in a row that end a client loop
	portCRR          = 5202
)

// crrCounters are a tcp_crr run's tallies, shared by its goroutines.
type crrCounters struct {
	transactions atomic.Uint64 // completed by a client: response and end of stream read
	accepted     atomic.Uint64 // connections the servers accepted
	served       atomic.Uint64 // responses the servers wrote and closed after
	clientErrors atomic.Uint64 // transactions a client gave up on
	serverErrors atomic.Uint64 // accepted connections a server gave up on
}

// tcpCRROnce is one tcp_crr run on a fresh pair of stacks: crrInFlight
// client loops on A, each connecting to B, writing the request, reading the
// response and then end of stream, and closing; crrInFlight server loops on
// one listener on B, each accepting, reading the request, writing the
// response and closing first, so TIME_WAIT (gVisor's default 60 s) lands on
// B. The events are the transactions the clients completed. Its counters,
// over the measured window only: transactions, accepted, served,
// client_errors, server_errors. Two more are states at the end of the run,
// not window counts: time_wait_server and time_wait_client, the endpoints
// in TIME_WAIT on B and on A.
func tcpCRROnce(ctx context.Context, cfg Config, _ int, knobs map[string]any) (window, error) {
	knobs["in_flight"] = crrInFlight
	knobs["request_bytes"] = crrRequestBytes
	knobs["response_bytes"] = crrResponseBytes
	knobs["closer"] = "server"
	knobs["time_wait_s"] = tcp.DefaultTCPTimeWaitTimeout.Seconds()
	p, err := newPair(cfg.CC, cfg.MTU)
	if err != nil {
		return window{}, err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	ln, err := gonet.ListenTCP(p.b, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portCRR}, ipv4.ProtocolNumber)
	if err != nil {
		return window{}, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	// Accept has no deadline: shutting the listener down ends the
	// server loops, when the run is over or its deadline has passed.
	done := make(chan struct{})
	var lnWG sync.WaitGroup
	lnWG.Go(func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
		ln.Shutdown()
	})

	total := cfg.Warmup + cfg.Duration
	limit := uint64((total + time.Second).Seconds() * crrMaxRate)
	var c crrCounters
	var stop atomic.Bool
	errs := make([]error, crrInFlight)
	var serverWG, clientWG sync.WaitGroup
	for i := range crrInFlight {
		serverWG.Go(func() { crrServe(ln, &c) })
		clientWG.Go(func() { errs[i] = crrClient(ctx, p.a, &c, &stop, deadline, limit) })
	}
	w, err := measure(ctx, cfg, probe{count: c.transactions.Load, event: "transactions", snap: func() map[string]uint64 {
		return map[string]uint64{
			"transactions": c.transactions.Load(), "accepted": c.accepted.Load(), "served": c.served.Load(),
			"client_errors": c.clientErrors.Load(), "server_errors": c.serverErrors.Load(),
		}
	}})
	stop.Store(true)
	clientWG.Wait()
	close(done)
	lnWG.Wait()
	serverWG.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(errs...); err != nil {
		return window{}, err
	}
	w.counters["time_wait_server"] = timeWaits(p.b)
	w.counters["time_wait_client"] = timeWaits(p.a)
	return w, nil
}

// crrClient runs transactions one after another until stop, the deadline
// or limit. A failed transaction is counted; too many in a row end the loop
// with the last error.
func crrClient(ctx context.Context, s *stack.Stack, c *crrCounters, stop *atomic.Bool, deadline time.Time, limit uint64) error {
	req := make([]byte, crrRequestBytes)
	resp := make([]byte, crrResponseBytes+1)
	inRow := 0
	for n := uint64(0); !stop.Load() && n < limit && time.Now().Before(deadline); n++ {
		if err := crrTransaction(ctx, s, req, resp); err != nil {
			c.clientErrors.Add(1)
			if inRow++; inRow > crrMaxErrors {
				return fmt.Errorf("%d transactions in a row failed: %w", inRow, err)
			}
			continue
		}
		inRow = 0
		c.transactions.Add(1)
	}
	return nil
}

// crrTransaction is one client transaction: connect, write the request,
// read the whole response, read end of stream, close.
func crrTransaction(ctx context.Context, s *stack.Stack, req, resp []byte) error {
	dctx, cancel := context.WithTimeout(ctx, crrIOTimeout)
	conn, err := gonet.DialContextTCP(dctx, s, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portCRR}, ipv4.ProtocolNumber)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(crrIOTimeout))
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if _, err := io.ReadFull(conn, resp[:crrResponseBytes]); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	// The server has closed: the next read is end of stream, nothing more.
	if k, err := conn.Read(resp); k != 0 || err != io.EOF {
		return fmt.Errorf("read end of stream: %d bytes, %v", k, err)
	}
	return nil
}

// crrServe accepts and serves connections until the listener is shut down.
func crrServe(ln *gonet.TCPListener, c *crrCounters) {
	req := make([]byte, crrRequestBytes)
	resp := make([]byte, crrResponseBytes)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		c.accepted.Add(1)
		conn.SetDeadline(time.Now().Add(crrIOTimeout))
		// The request is read to its end before the close, which
		// otherwise would be a reset.
		_, err = io.ReadFull(conn, req)
		if err == nil {
			_, err = conn.Write(resp)
		}
		conn.Close() // the server closes first: TIME_WAIT is B's
		if err != nil {
			c.serverErrors.Add(1)
			continue
		}
		c.served.Add(1)
	}
}

// timeWaits is the number of s's TCP endpoints in TIME_WAIT.
func timeWaits(s *stack.Stack) uint64 {
	var n uint64
	for _, ep := range s.RegisteredEndpoints() {
		if e, ok := ep.(*tcp.Endpoint); ok && e.EndpointState() == tcp.StateTimeWait {
			n++
		}
	}
	return n
}

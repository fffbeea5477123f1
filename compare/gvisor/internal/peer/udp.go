package peer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// UDP settings: socket buffers as large as the kernel peer's, and the
// Ethernet + IPv4 + UDP header bytes that make a payload a frame size
// (the "size" knob pollnet's suites report; this link itself carries no
// Ethernet header).
const (
	udpSockBuf  = 4 << 20
	udpHeaders  = 14 + 20 + 8
	portServer  = 9000
	portClient  = 9001
	maxLatStore = 1 << 22 // latencies kept per udp_rr scenario
)

// udpConn opens a UDP endpoint on s bound to local and, when remote is not
// nil, connected to it, with both socket buffers at udpSockBuf, and wraps it
// in gonet's net.Conn face.
func udpConn(s *stack.Stack, local tcpip.Address, port uint16, remote *tcpip.FullAddress) (*gonet.UDPConn, error) {
	var wq waiter.Queue
	ep, e := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if e != nil {
		return nil, fmt.Errorf("udp endpoint: %s", e)
	}
	ep.SocketOptions().SetReceiveBufferSize(udpSockBuf, true)
	ep.SocketOptions().SetSendBufferSize(udpSockBuf, true)
	if e := ep.Bind(tcpip.FullAddress{NIC: nicID, Addr: local, Port: port}); e != nil {
		ep.Close()
		return nil, fmt.Errorf("udp bind %s:%d: %s", local, port, e)
	}
	if remote != nil {
		if e := ep.Connect(*remote); e != nil {
			ep.Close()
			return nil, fmt.Errorf("udp connect %s:%d: %s", remote.Addr, remote.Port, e)
		}
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

func udpKnobs(sc *Scenario, payload int) {
	sc.Knobs["payload"] = payload
	sc.Knobs["size"] = payload + udpHeaders
	sc.Knobs["sockbuf"] = udpSockBuf
	sc.Knobs["batch"] = 1 // gVisor's endpoint Write sends one datagram per call
}

// udpPPS: one sender on stack A writes datagrams to stack B as fast as it
// can, one receiver on B reads and counts them; samples are packets
// received per second. Drops are datagrams the sender wrote that the
// receiver never read: link-queue overflow or receive-buffer overflow.
func udpPPS(ctx context.Context, cfg Config, payload int, sc *Scenario) error {
	udpKnobs(sc, payload)
	sc.Knobs["senders"] = 1
	p, err := newPair(cfg.CC)
	if err != nil {
		return err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	rx, err := udpConn(p.b, addrB, portServer, nil)
	if err != nil {
		return err
	}
	defer rx.Close()
	tx, err := udpConn(p.a, addrA, portClient, &tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portServer})
	if err != nil {
		return err
	}
	defer tx.Close()
	rx.SetReadDeadline(deadline)
	tx.SetWriteDeadline(deadline)

	var received, sent, sendErrors atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // receiver
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	go func() { // sender
		defer wg.Done()
		msg := make([]byte, payload)
		var n, errs uint64
		for !stop.Load() {
			for range 64 {
				if _, err := tx.Write(msg); err != nil {
					if !stop.Load() { // errors after stop are the deadline that ends the loop
						errs++
					}
					continue
				}
				n++
			}
			sent.Store(n)
			sendErrors.Store(errs)
			if time.Now().After(deadline) {
				return
			}
		}
	}()

	w, err := measure(ctx, cfg, received.Load, 1, nil)
	stop.Store(true)
	tx.SetWriteDeadline(time.Now())
	// Let what is in flight land before the receiver stops.
	time.Sleep(20 * time.Millisecond)
	rx.SetReadDeadline(time.Now())
	wg.Wait()
	if err != nil {
		return err
	}
	sc.Samples, sc.CPUSeconds = w.samples, w.cpu.Seconds()
	s, r := sent.Load(), received.Load()
	sc.Counters["sent"] = s
	sc.Counters["received"] = r
	sc.Counters["drops"] = s - min(s, r)
	sc.Counters["send_errors"] = sendErrors.Load()
	sc.Counters["link_drops"] = p.linkDrops()
	sc.Counters["rcvbuf_drops"] = p.b.Stats().UDP.ReceiveBufferErrors.Value()
	sc.Extra["measured_seconds"] = w.span.Seconds()
	sc.summarise()
	sc.Extra["mpps_median"] = sc.Median / 1e6
	if w.events > 0 {
		sc.Extra["cpu_ns_per_packet"] = float64(w.cpu.Nanoseconds()) / float64(w.events)
	}
	if s > 0 {
		sc.Extra["loss_ratio"] = float64(sc.Counters["drops"]) / float64(s)
	}
	return nil
}

// udpRR: a client on A sends a request of the payload size to a server on
// B that echoes it back, one request outstanding at a time; samples are
// transactions per second, and the latency of each measured transaction
// gives latency_p50_ns and latency_p99_ns.
func udpRR(ctx context.Context, cfg Config, payload int, sc *Scenario) error {
	udpKnobs(sc, payload)
	sc.Knobs["outstanding"] = 1
	p, err := newPair(cfg.CC)
	if err != nil {
		return err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	srv, err := udpConn(p.b, addrB, portServer, &tcpip.FullAddress{NIC: nicID, Addr: addrA, Port: portClient})
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := udpConn(p.a, addrA, portClient, &tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portServer})
	if err != nil {
		return err
	}
	defer cli.Close()
	for _, c := range []*gonet.UDPConn{srv, cli} {
		c.SetDeadline(deadline)
	}

	var done atomic.Uint64
	var stop, measuring atomic.Bool
	var lats []time.Duration // owned by the client goroutine until wg.Wait
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // server: echo
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				return
			}
			if _, err := srv.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	go func() { // client
		defer wg.Done()
		req := make([]byte, payload)
		resp := make([]byte, 65536)
		for !stop.Load() {
			t := time.Now()
			if _, err := cli.Write(req); err != nil {
				return
			}
			if _, err := cli.Read(resp); err != nil {
				return
			}
			lat := time.Since(t)
			done.Add(1)
			if measuring.Load() && len(lats) < maxLatStore {
				lats = append(lats, lat)
			}
		}
	}()

	w, err := measure(ctx, cfg, done.Load, 1, measuring.Store)
	stop.Store(true)
	// Unblock both loops: a lost datagram would otherwise leave one waiting.
	cli.SetDeadline(time.Now())
	srv.SetDeadline(time.Now())
	wg.Wait()
	if err != nil {
		return err
	}
	sc.Samples, sc.CPUSeconds = w.samples, w.cpu.Seconds()
	sc.Counters["transactions"] = done.Load()
	sc.Counters["link_drops"] = p.linkDrops()
	sc.Extra["measured_seconds"] = w.span.Seconds()
	if w.events > 0 {
		sc.Extra["cpu_ns_per_transaction"] = float64(w.cpu.Nanoseconds()) / float64(w.events)
		sc.Extra["cpu_ns_per_packet"] = float64(w.cpu.Nanoseconds()) / float64(2*w.events)
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		f := make([]float64, len(lats))
		for i, l := range lats {
			f[i] = float64(l.Nanoseconds())
		}
		sc.Extra["latency_p50_ns"] = nearestRank(f, 50)
		sc.Extra["latency_p99_ns"] = nearestRank(f, 99)
		sc.Extra["latency_samples"] = float64(len(f))
	}
	return nil
}

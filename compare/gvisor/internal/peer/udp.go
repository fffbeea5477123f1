package peer

import (
	"context"
	"fmt"
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
	udpSockBuf = 4 << 20
	udpHeaders = 14 + 20 + 8
	portServer = 9000
	portClient = 9001
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

// udpKnobs are the knobs every UDP scenario carries, on every path.
// gVisor's endpoint Write sends one datagram per call and Read returns one,
// so batch (and rx_batch for the stream) is 1.
func udpKnobs(k map[string]any, payload int) {
	k["payload"] = payload
	k["size"] = payload + udpHeaders
	k["sockbuf"] = udpSockBuf
	k["batch"] = 1
}

// udpStreamOnce is one udp_stream run on a fresh pair of stacks: one sender
// on stack A writes datagrams to stack B as fast as it can, one receiver on
// B reads them; the events are datagrams read by the receiving application.
// Its counters, over the measured window only:
//
//   - sent: the number of datagrams the sender's writes accepted;
//   - received: the number of datagrams the receiver read;
//   - send_errors: the number of writes that failed;
//   - link_drops: the number of packets a full link queue dropped;
//   - rcvbuf_drops: the number of datagrams B dropped on a full receive
//     buffer (gVisor's UDP ReceiveBufferErrors).
func udpStreamOnce(ctx context.Context, cfg Config, payload int, knobs map[string]any) (window, error) {
	knobs["senders"] = 1
	knobs["rx_batch"] = 1
	p, err := newPair(cfg.CC, cfg.MTU)
	if err != nil {
		return window{}, err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	rx, err := udpConn(p.b, addrB, portServer, nil)
	if err != nil {
		return window{}, err
	}
	defer rx.Close()
	tx, err := udpConn(p.a, addrA, portClient, &tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portServer})
	if err != nil {
		return window{}, err
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
		for !stop.Load() {
			for range 64 {
				if _, err := tx.Write(msg); err != nil {
					if !stop.Load() { // errors after stop are the deadline that ends the loop
						sendErrors.Add(1)
					}
					continue
				}
				sent.Add(1)
			}
			if time.Now().After(deadline) {
				return
			}
		}
	}()

	w, err := measure(ctx, cfg, probe{count: received.Load, event: "received", snap: func() map[string]uint64 {
		return map[string]uint64{
			"sent": sent.Load(), "received": received.Load(), "send_errors": sendErrors.Load(),
			"link_drops": p.linkDrops(), "rcvbuf_drops": p.b.Stats().UDP.ReceiveBufferErrors.Value(),
		}
	}})
	stop.Store(true)
	tx.SetWriteDeadline(time.Now())
	rx.SetReadDeadline(time.Now())
	wg.Wait()
	return w, err
}

// udpRROnce is one udp_rr run on a fresh pair of stacks: a client on A
// sends a request of the payload size to a server on B that echoes it
// back, one request outstanding at a time; the events are transactions,
// and each measured one's round-trip time is kept. Its counters, over the
// measured window only: transactions (the number of requests answered) and
// link_drops (the number of packets a full link queue dropped).
func udpRROnce(ctx context.Context, cfg Config, payload int, knobs map[string]any) (window, error) {
	knobs["outstanding"] = 1
	p, err := newPair(cfg.CC, cfg.MTU)
	if err != nil {
		return window{}, err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	srv, err := udpConn(p.b, addrB, portServer, &tcpip.FullAddress{NIC: nicID, Addr: addrA, Port: portClient})
	if err != nil {
		return window{}, err
	}
	defer srv.Close()
	cli, err := udpConn(p.a, addrA, portClient, &tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portServer})
	if err != nil {
		return window{}, err
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
			if measuring.Load() && len(lats) < maxLatencies {
				lats = append(lats, lat)
			}
		}
	}()

	w, err := measure(ctx, cfg, probe{
		count: done.Load,
		event: "transactions",
		snap: func() map[string]uint64 {
			return map[string]uint64{"transactions": done.Load(), "link_drops": p.linkDrops()}
		},
		measuring: measuring.Store,
	})
	stop.Store(true)
	// Unblock both loops: a lost datagram would otherwise leave one waiting.
	cli.SetDeadline(time.Now())
	srv.SetDeadline(time.Now())
	wg.Wait()
	w.lat = lats
	return w, err
}

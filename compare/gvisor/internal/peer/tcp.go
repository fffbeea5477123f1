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
)

const (
	portTCP       = 5201
	tcpSetupLimit = 2 * time.Second
)

// tcpKnobs are the knobs every TCP scenario of this peer carries.
func tcpKnobs(k map[string]any, cc string) {
	k["cc"] = cc
	// tcp.NewProtocol's own default is reno: the peer sets cc on both
	// stacks (TCPCongestionControlOption), as the kernel peer sets
	// TCP_CONGESTION on every socket.
	k["cc_set_by"] = "stack option on both stacks (gVisor's library default is reno)"
	k["sack"] = true
	k["moderate_rcvbuf"] = true
	k["gso"] = false
}

// tcpConnect opens n connections from A to a listener on B and returns
// the client and the accepted ends, in pairs. On error nothing is left open.
func tcpConnect(ctx context.Context, p *pair, n int) (cls, srvs []*gonet.TCPConn, err error) {
	ln, err := gonet.ListenTCP(p.b, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portTCP}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	defer func() {
		if err != nil {
			closeAll(cls)
			closeAll(srvs)
			cls, srvs = nil, nil
		}
	}()
	type accepted struct {
		c   *gonet.TCPConn
		err error
	}
	for range n {
		acc := make(chan accepted, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				acc <- accepted{err: err}
				return
			}
			acc <- accepted{c: c.(*gonet.TCPConn)}
		}()
		dctx, dcancel := context.WithTimeout(ctx, tcpSetupLimit)
		cli, err := gonet.DialContextTCP(dctx, p.a, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portTCP}, ipv4.ProtocolNumber)
		dcancel()
		if err != nil {
			ln.Shutdown()
			if a := <-acc; a.c != nil {
				a.c.Close()
			}
			return cls, srvs, fmt.Errorf("connect: %w", err)
		}
		cls = append(cls, cli)
		select {
		case a := <-acc:
			if a.err != nil {
				return cls, srvs, fmt.Errorf("accept: %w", a.err)
			}
			srvs = append(srvs, a.c)
		case <-time.After(tcpSetupLimit):
			ln.Shutdown()
			if a := <-acc; a.c != nil {
				a.c.Close()
			}
			return cls, srvs, fmt.Errorf("accept: nothing within %v", tcpSetupLimit)
		}
	}
	return cls, srvs, nil
}

func closeAll(cs []*gonet.TCPConn) {
	for _, c := range cs {
		c.Close()
	}
}

// tcpStreamOnce is one tcp_stream run on a fresh pair of stacks with the
// given number of parallel connections from A to B; a writer per
// connection on A sends 64 KiB writes, a reader per connection on B reads.
// The events are the bytes the receiving application read, summed over the
// connections (goodput, reported as bits/s), as the kernel peer and
// iperf3's receiver count them. Its counters, over the measured window
// only:
//
//   - bytes_written: the number of bytes A's writes accepted;
//   - bytes_read: the number of bytes B's readers read;
//   - segments_sent, retransmits: the number of TCP segments A sent and
//     retransmitted (gVisor's TCP SegmentsSent and Retransmits);
//   - link_drops: the number of packets a full link queue dropped.
func tcpStreamOnce(ctx context.Context, cfg Config, streams int, knobs map[string]any) (window, error) {
	knobs["write_bytes"] = tcpWriteSize
	knobs["streams"] = streams
	p, err := newPair(cfg.CC, cfg.MTU)
	if err != nil {
		return window{}, err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()
	cls, srvs, err := tcpConnect(ctx, p, streams)
	if err != nil {
		return window{}, err
	}
	defer closeAll(cls)
	defer closeAll(srvs)

	var read, written atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range streams {
		cli, srv := cls[i], srvs[i]
		cli.SetDeadline(deadline)
		srv.SetDeadline(deadline)
		wg.Go(func() { // reader
			buf := make([]byte, 128<<10)
			for {
				n, err := srv.Read(buf)
				read.Add(uint64(n))
				if err != nil {
					return
				}
			}
		})
		wg.Go(func() { // writer
			msg := make([]byte, tcpWriteSize)
			for !stop.Load() {
				n, err := cli.Write(msg)
				written.Add(uint64(n))
				if err != nil {
					return
				}
			}
		})
	}

	st := p.a.Stats().TCP
	w, err := measure(ctx, cfg, probe{count: read.Load, event: "bytes_read", snap: func() map[string]uint64 {
		return map[string]uint64{
			"bytes_written": written.Load(), "bytes_read": read.Load(),
			"segments_sent": st.SegmentsSent.Value(), "retransmits": st.Retransmits.Value(),
			"link_drops": p.linkDrops(),
		}
	}})
	stop.Store(true)
	for i := range streams {
		cls[i].SetDeadline(time.Now())
		srvs[i].SetDeadline(time.Now())
	}
	wg.Wait()
	return w, err
}

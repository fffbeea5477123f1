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

// tcpStreamOnce is one tcp_stream run on a fresh pair of stacks: one
// connection from A to B; a writer on A sends 64 KiB writes, a reader on B
// reads. The events are the bytes the receiving application read (goodput,
// reported as bits/s), as the kernel peer and iperf3's receiver count them.
// Its counters, over the measured window only:
//
//   - bytes_written: the number of bytes A's writes accepted;
//   - bytes_read: the number of bytes B's reader read;
//   - segments_sent, retransmits: the number of TCP segments A sent and
//     retransmitted (gVisor's TCP SegmentsSent and Retransmits);
//   - link_drops: the number of packets a full link queue dropped.
func tcpStreamOnce(ctx context.Context, cfg Config, _ int, knobs map[string]any) (window, error) {
	knobs["cc"] = cfg.CC
	knobs["write_bytes"] = tcpWriteSize
	knobs["streams"] = 1
	knobs["sack"] = true
	knobs["moderate_rcvbuf"] = true
	knobs["gso"] = false
	p, err := newPair(cfg.CC, cfg.MTU)
	if err != nil {
		return window{}, err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()

	ln, err := gonet.ListenTCP(p.b, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portTCP}, ipv4.ProtocolNumber)
	if err != nil {
		return window{}, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	type accepted struct {
		c   *gonet.TCPConn
		err error
	}
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
		ln.Close()
		<-acc
		return window{}, fmt.Errorf("connect: %w", err)
	}
	defer cli.Close()
	var srv *gonet.TCPConn
	select {
	case a := <-acc:
		if a.err != nil {
			return window{}, fmt.Errorf("accept: %w", a.err)
		}
		srv = a.c
	case <-time.After(tcpSetupLimit):
		ln.Close()
		<-acc
		return window{}, fmt.Errorf("accept: nothing within %v", tcpSetupLimit)
	}
	defer srv.Close()
	cli.SetDeadline(deadline)
	srv.SetDeadline(deadline)

	var read, written atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // reader
		defer wg.Done()
		buf := make([]byte, 128<<10)
		for {
			n, err := srv.Read(buf)
			read.Add(uint64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() { // writer
		defer wg.Done()
		msg := make([]byte, tcpWriteSize)
		for !stop.Load() {
			n, err := cli.Write(msg)
			written.Add(uint64(n))
			if err != nil {
				return
			}
		}
	}()

	st := p.a.Stats().TCP
	w, err := measure(ctx, cfg, probe{count: read.Load, snap: func() map[string]uint64 {
		return map[string]uint64{
			"bytes_written": written.Load(), "bytes_read": read.Load(),
			"segments_sent": st.SegmentsSent.Value(), "retransmits": st.Retransmits.Value(),
			"link_drops": p.linkDrops(),
		}
	}})
	stop.Store(true)
	cli.SetDeadline(time.Now())
	srv.SetDeadline(time.Now())
	wg.Wait()
	return w, err
}

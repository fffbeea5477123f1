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

// tcpStream: one connection from A to B; a writer on A sends 64 KiB
// writes, a reader on B counts bytes. Samples are bits per second that
// reached the reader.
func tcpStream(ctx context.Context, cfg Config, sc *Scenario) error {
	sc.Knobs["cc"] = cfg.CC
	sc.Knobs["write_bytes"] = tcpWriteSize
	sc.Knobs["streams"] = 1
	sc.Knobs["sack"] = true
	sc.Knobs["moderate_rcvbuf"] = true
	sc.Knobs["gso"] = false
	p, err := newPair(cfg.CC)
	if err != nil {
		return err
	}
	defer p.close()
	deadline, _ := ctx.Deadline()

	ln, err := gonet.ListenTCP(p.b, tcpip.FullAddress{NIC: nicID, Addr: addrB, Port: portTCP}, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
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
		return fmt.Errorf("connect: %w", err)
	}
	defer cli.Close()
	var srv *gonet.TCPConn
	select {
	case a := <-acc:
		if a.err != nil {
			return fmt.Errorf("accept: %w", a.err)
		}
		srv = a.c
	case <-time.After(tcpSetupLimit):
		ln.Close()
		<-acc
		return fmt.Errorf("accept: nothing within %v", tcpSetupLimit)
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

	w, err := measure(ctx, cfg, read.Load, 8, nil)
	stop.Store(true)
	cli.SetDeadline(time.Now())
	srv.SetDeadline(time.Now())
	wg.Wait()
	if err != nil {
		return err
	}
	sc.Samples, sc.CPUSeconds = w.samples, w.cpu.Seconds()
	st := p.a.Stats().TCP
	sc.Counters["bytes_written"] = written.Load()
	sc.Counters["bytes_read"] = read.Load()
	sc.Counters["segments_sent"] = st.SegmentsSent.Value()
	sc.Counters["retransmits"] = st.Retransmits.Value()
	sc.Counters["link_drops"] = p.linkDrops()
	sc.Extra["measured_seconds"] = w.span.Seconds()
	sc.summarise()
	sc.Extra["gbps_median"] = sc.Median / 1e9
	if bytes := w.events; bytes > 0 { // count is bytes read; samples scale it to bits
		sc.Extra["cpu_ns_per_byte"] = float64(w.cpu.Nanoseconds()) / float64(bytes)
		sc.Extra["cpu_ns_per_kib"] = float64(w.cpu.Nanoseconds()) / (float64(bytes) / 1024)
	}
	return nil
}

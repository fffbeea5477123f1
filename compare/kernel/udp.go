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

// udpHeaders is Ethernet + IPv4 + UDP header bytes: payload + udpHeaders is
// the frame size without FCS, the "size" pollnet's own pps suite reports.
const udpHeaders = 14 + 20 + 8

// Bounds of every UDP run, on top of its time: no more packets than a
// sender could push at 20 Mpps, and a receiver drains for at most this long
// once its sender has stopped.
const (
	udpMaxRate   = 20e6
	udpDrainTime = 500 * time.Millisecond
	udpSockBuf   = 4 << 20
	udpPollEvery = 50 * time.Millisecond // SO_RCVTIMEO/SO_SNDTIMEO: how soon a loop sees its stop flag
)

// udpScenarios runs udp_pps for each payload size on one topology.
func (p *Peer) udpScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, payload := range w.SizesOr(DefaultUDPPayloads...) {
		knobs := map[string]any{
			"topology": topo.name, "payload": payload, "size": payload + udpHeaders,
			"batch": p.batch(), "syscalls": p.syscalls(), "senders": 1,
			"duration_s": w.Duration.Seconds(), "warmup_s": w.Warmup.Seconds(),
		}
		reason := skip
		if reason == "" && payload > 65507 {
			reason = fmt.Sprintf("payload %d over the UDP maximum 65507", payload)
		}
		if reason != "" {
			out = append(out, skipped(UDPPPS, Path, topo.name, knobs, "rx_pps", "packets/s", reason))
			continue
		}
		sc, rs, err := measure(ctx, w.Runs(), UDPPPS, Path, topo.name, knobs, "rx_pps", "packets/s",
			func() (window, map[string]uint64, error) { return p.udpOnce(ctx, topo, w, payload) })
		if err != nil {
			return out, err
		}
		if sc.Skipped != "" {
			out = append(out, sc)
			continue
		}
		sc.Extra["mpps_median"] = sc.Median / 1e6
		if rs.events > 0 {
			sc.Extra["cpu_ns_per_packet"] = float64(rs.cpu.Nanoseconds()) / float64(rs.events)
		}
		if sent := sc.Counters["sent"]; sent > 0 {
			sc.Extra["loss_ratio"] = float64(sc.Counters["drops"]) / float64(sent)
		}
		out = append(out, sc)
	}
	return out, nil
}

func (p *Peer) syscalls() string {
	if p.batch() == 1 {
		return "write/read"
	}
	return "sendmmsg/recvmmsg"
}

// udpOnce is one udp_pps run: a receiver socket in the topology's receive
// namespace, a connected sender in its transmit namespace, each driven by
// its own goroutine, and received packets sampled per interval. Drops are
// what the sender handed the kernel and the receiver never read (socket
// buffer overflows, mostly).
func (p *Peer) udpOnce(ctx context.Context, topo *topology, w workload.Workload, payload int) (window, map[string]uint64, error) {
	rx, err := socket(topo.rxNS, unix.SOCK_DGRAM, func(fd int) error {
		setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, udpSockBuf)
		if err := setTimeout(fd, unix.SO_RCVTIMEO, udpPollEvery); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.rxAddr})
	})
	if err != nil {
		return window{}, nil, fmt.Errorf("receiver: %w", err)
	}
	defer unix.Close(rx)
	port, err := boundPort(rx)
	if err != nil {
		return window{}, nil, err
	}
	tx, err := socket(topo.txNS, unix.SOCK_DGRAM, func(fd int) error {
		setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, udpSockBuf)
		if err := setTimeout(fd, unix.SO_SNDTIMEO, udpPollEvery); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.txAddr}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Addr: topo.rxAddr, Port: port})
	})
	if err != nil {
		return window{}, nil, fmt.Errorf("sender: %w", err)
	}
	defer unix.Close(tx)

	total := w.Warmup + w.Duration
	deadline := time.Now().Add(total + time.Second)
	limit := uint64((total + time.Second).Seconds() * udpMaxRate)
	loadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var sent, received atomic.Uint64
	var stopSend, stopRecv atomic.Bool
	var wg sync.WaitGroup
	var sendErr, recvErr error
	batch := p.batch()
	wg.Go(func() {
		recvErr = udpReceive(rx, batch, max(payload, 2048), &received, &stopRecv, deadline.Add(udpDrainTime))
		if recvErr != nil {
			cancel(fmt.Errorf("receiver: %w", recvErr))
		}
	})
	var sendWG sync.WaitGroup
	sendWG.Go(func() {
		sendErr = udpSend(tx, batch, make([]byte, payload), &sent, &stopSend, deadline, limit)
		if sendErr != nil {
			cancel(fmt.Errorf("sender: %w", sendErr))
		}
	})
	win, err := sampleRates(loadCtx, w, received.Load)
	stopSend.Store(true)
	sendWG.Wait()
	stopRecv.Store(true) // the receiver drains what is queued, then returns
	wg.Wait()
	if err != nil {
		return window{}, nil, err
	}
	if err := errors.Join(sendErr, recvErr); err != nil {
		return window{}, nil, err
	}
	s, r := sent.Load(), received.Load()
	counters := map[string]uint64{"sent": s, "received": r, "drops": s - min(s, r)}
	if win.events == 0 {
		return window{}, nil, fmt.Errorf("no packet arrived in %v (sent %d)", win.span, s)
	}
	return win, counters, nil
}

// udpSend sends payload as fast as the socket takes it, batch datagrams a
// call, until stop is set, the deadline passes or limit packets are sent.
func udpSend(fd, batch int, payload []byte, sent *atomic.Uint64, stop *atomic.Bool, deadline time.Time, limit uint64) error {
	var msgs []mmsghdr
	if batch > 1 {
		msgs = sendBatch(payload, batch)
	}
	var n uint64
	for !stop.Load() && n < limit && time.Now().Before(deadline) {
		var k int
		var err error
		if batch > 1 {
			k, err = sendmmsg(fd, msgs)
		} else if _, err = unix.Write(fd, payload); err == nil {
			k = 1
		}
		if err != nil && !transient(err) {
			return err
		}
		if k > 0 {
			n += uint64(k)
			sent.Add(uint64(k))
		}
	}
	return nil
}

// udpReceive reads datagrams until, once stop is set, a read finds the
// socket idle for a full SO_RCVTIMEO (the queue is drained), or the deadline
// passes.
func udpReceive(fd, batch, bufSize int, received *atomic.Uint64, stop *atomic.Bool, deadline time.Time) error {
	var msgs []mmsghdr
	var buf []byte
	if batch > 1 {
		msgs = recvBatch(bufSize, batch)
	} else {
		buf = make([]byte, bufSize)
	}
	for time.Now().Before(deadline) {
		var k int
		var err error
		if batch > 1 {
			k, err = recvmmsg(fd, msgs, unix.MSG_WAITFORONE)
		} else if _, err = unix.Read(fd, buf); err == nil {
			k = 1
		}
		switch {
		case err == nil:
			received.Add(uint64(k))
		case transient(err):
			if stop.Load() {
				return nil
			}
		default:
			return err
		}
	}
	return nil
}

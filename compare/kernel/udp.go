package kernel

import (
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

// udpKnobs are the knobs of every UDP scenario of the kernel peer: the
// same names, for the same things, as pollnet's and gVisor's.
func udpKnobs(topo *topology, w workload.Workload, payload, batch int, syscalls string) map[string]any {
	return map[string]any{
		"topology": topo.name, "payload": payload, "size": payload + udpHeaders, "mtu": topo.mtu,
		"batch": batch, "syscalls": syscalls, "duration_s": w.Duration.Seconds(),
	}
}

// payloadReason is why a payload cannot run, or "".
func payloadReason(payload, least int) string {
	switch {
	case payload > 65507:
		return fmt.Sprintf("payload %d over the UDP maximum 65507", payload)
	case payload < least:
		return fmt.Sprintf("payload %d under %d bytes: too short for the sequence number", payload, least)
	}
	return ""
}

// udpStreamScenarios runs udp_stream for each payload on one topology.
func (p *Peer) udpStreamScenarios(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, payload := range w.SizesOr(DefaultUDPPayloads...) {
		s := spec{name: UDPStream, path: Path, port: topo.name, metric: "rx_pps", unit: "datagrams/s",
			knobs: udpKnobs(topo, w, payload, p.batch(), p.syscalls())}
		s.knobs["rx_batch"] = p.batch()
		s.knobs["senders"] = 1
		reason := skip
		if reason == "" {
			reason = payloadReason(payload, 1)
		}
		if reason != "" {
			out = append(out, s.skipped(w, reason))
			continue
		}
		sc, rs, err := measure(ctx, w, s, func() (window, error) { return p.udpStreamOnce(ctx, topo, w, payload) })
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
			sc.Extra["loss_ratio"] = float64(sc.Counters["rcvbuf_drops"]) / float64(sent)
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

// udpStreamOnce is one udp_stream run: a receiver socket in the topology's
// receive namespace, a connected sender in its transmit namespace, each
// driven by its own goroutine, and the datagrams the receiver read over the
// measured window counted. Its counters, over the window only:
//
//   - sent: the number of datagrams the sender handed the kernel;
//   - received: the number of datagrams the receiving application read;
//   - rcvbuf_drops: the number of datagrams the receive namespace dropped
//     on a full socket buffer (UDP_MIB_RCVBUFERRORS, RcvbufErrors in
//     /proc/net/snmp; on loopback the host's whole count).
func (p *Peer) udpStreamOnce(ctx context.Context, topo *topology, w workload.Workload, payload int) (window, error) {
	rx, err := socket(topo.rxNS, unix.SOCK_DGRAM, func(fd int) error {
		setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, udpSockBuf)
		if err := setTimeout(fd, unix.SO_RCVTIMEO, udpPollEvery); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.rxAddr})
	})
	if err != nil {
		return window{}, fmt.Errorf("receiver: %w", err)
	}
	defer unix.Close(rx)
	port, err := boundPort(rx)
	if err != nil {
		return window{}, err
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
		return window{}, fmt.Errorf("sender: %w", err)
	}
	defer unix.Close(tx)

	deadline, limit := loadBounds(w, udpMaxRate)
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
	win, err := measureWindow(loadCtx, w, probe{count: received.Load, snap: func() map[string]uint64 {
		return map[string]uint64{"sent": sent.Load(), "received": received.Load(), "rcvbuf_drops": udpRcvbufErrors(topo.rxNS)}
	}})
	stopSend.Store(true)
	sendWG.Wait()
	stopRecv.Store(true) // the receiver drains what is queued, then returns
	wg.Wait()
	if err != nil {
		return window{}, err
	}
	if err := errors.Join(sendErr, recvErr); err != nil {
		return window{}, err
	}
	if win.events == 0 {
		return window{}, fmt.Errorf("no datagram arrived in %v (sent %d)", win.span, win.counters["sent"])
	}
	return win, nil
}

// udpRcvbufErrors is RcvbufErrors from the Udp line of /proc/net/snmp as
// namespace ns sees it; 0 when it cannot be read.
func udpRcvbufErrors(ns string) uint64 {
	var v uint64
	_ = inNetns(ns, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		v = snmpField(string(b), "Udp", "RcvbufErrors")
		return nil
	})
	return v
}

// snmpField reads one field of /proc/net/snmp, where each protocol has a
// line of names and then a line of values, both starting "Proto:".
func snmpField(text, proto, field string) uint64 {
	var names []string
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == field && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
		return 0
	}
	return 0
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

package kernel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// IperfPath is the result Path of iperf3's scenarios.
const IperfPath = "kernel-iperf3"

// Iperf3 runs tcp_stream with iperf3 over the kernel's stack: a tool people
// already trust, as a check on the kernel peer's own tcp_stream figures. It
// starts both processes itself, bound to 127.0.0.1 or to the veth addresses
// inside the namespaces it creates, and ends them by PID.
type Iperf3 struct {
	// Topologies as for Peer; empty means loopback and veth.
	Topologies []string
	// CC is the congestion control passed with -C; "" means DefaultCC.
	CC string
}

// Name is the result Path of the peer's scenarios.
func (p *Iperf3) Name() string { return IperfPath }

// Workloads lists what Run accepts.
func (p *Iperf3) Workloads() []string { return []string{TCPStream} }

// Run measures tcp_stream with iperf3 on each topology. Without iperf3 every
// scenario is skipped with the package to install.
func (p *Iperf3) Run(ctx context.Context, w workload.Workload) ([]result.Scenario, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	if w.Name != TCPStream {
		return nil, fmt.Errorf("%w: %q (kernel-iperf3 offers %v)", workload.ErrUnknown, w.Name, p.Workloads())
	}
	kp := &Peer{Topologies: p.Topologies, CC: p.CC}
	return kp.eachTopology(ctx, w, kp.topologies(), func(ctx context.Context, topo *topology, w workload.Workload, skip string) ([]result.Scenario, error) {
		return p.scenarios(ctx, topo, w, kp.cc(), skip)
	})
}

// iperfSeconds is what iperf3 runs for: its -t and -O take whole seconds,
// so a shorter workload runs one second.
func iperfSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// omitSeconds is the -O warm-up: whole seconds, none for no warm-up.
func omitSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return iperfSeconds(d)
}

// scenarios runs tcp_stream with iperf3 on one topology, one scenario per
// stream count (iperf3's -P).
func (p *Iperf3) scenarios(ctx context.Context, topo *topology, w workload.Workload, cc, skip string) ([]result.Scenario, error) {
	var out []result.Scenario
	for _, streams := range w.StreamsOr() {
		sc, err := p.scenario(ctx, topo, w, cc, streams, skip)
		if err != nil {
			return out, err
		}
		out = append(out, sc)
	}
	return out, nil
}

func (p *Iperf3) scenario(ctx context.Context, topo *topology, w workload.Workload, cc string, streams int, skip string) (result.Scenario, error) {
	s := spec{name: TCPStream, path: IperfPath, port: topo.name, metric: "rx_bps", unit: "bits/s",
		knobs: map[string]any{
			"topology": topo.name, "cc": cc, "mtu": topo.mtu, "streams": streams, "tool": "iperf3",
			"duration_s": float64(iperfSeconds(w.Duration)),
		}}
	if skip == "" {
		if _, err := exec.LookPath("iperf3"); err != nil {
			skip = "iperf3 not installed: apt-get install iperf3"
		}
	}
	if skip != "" {
		return s.skipped(w, skip), nil
	}
	// iperf3's -O takes whole seconds: the warm-up it really had.
	w.Warmup = time.Duration(omitSeconds(w.Warmup)) * time.Second
	var last *iperfReport
	sc, _, err := measure(ctx, w, s, func() (window, error) {
		rep, cpu, err := runIperf(ctx, topo, w, cc, streams)
		if err != nil {
			return window{}, err
		}
		last = rep
		// What iperf3 reports replaces what was asked for.
		if rep.End.SenderCC != "" {
			s.knobs["cc"] = rep.End.SenderCC
			s.knobs["cc_receiver"] = rep.End.ReceiverCC
		}
		s.knobs["tool"] = rep.Start.Version
		recv := rep.End.SumReceived
		return window{rate: recv.BitsPerSecond, events: uint64(recv.Bytes),
			span: time.Duration(recv.Seconds * float64(time.Second)), cpu: cpu,
			counters: map[string]uint64{
				"bytes_sent":     uint64(rep.End.SumSent.Bytes),
				"bytes_received": uint64(recv.Bytes),
				"retransmits":    uint64(rep.End.SumSent.Retransmits),
			}}, nil
	})
	if err != nil {
		return sc, err
	}
	if sc.Skipped != "" {
		return sc, nil
	}
	sc.Extra["gbps_median"] = sc.Median / 1e9
	sc.Extra["cpu_host_percent"] = last.End.CPU.HostTotal
	sc.Extra["cpu_remote_percent"] = last.End.CPU.RemoteTotal
	// CPUSeconds is both processes' whole lives, -O warm-up included.
	sc.Extra["cpu_span_seconds"] = float64(w.Runs() * (iperfSeconds(w.Duration) + omitSeconds(w.Warmup)))
	return sc, nil
}

// runIperf runs one iperf3 server (-1: one test, then exit) and one client
// against it with streams parallel connections (-P), in the topology's
// namespaces, and returns the client's report
// and the CPU time both processes used.
func runIperf(ctx context.Context, topo *topology, w workload.Workload, cc string, streams int) (*iperfReport, time.Duration, error) {
	secs, omit := iperfSeconds(w.Duration), omitSeconds(w.Warmup)
	// The whole exchange is bounded even if iperf3 hangs: both processes
	// are killed by PID when this context ends.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+omit+15)*time.Second)
	defer cancel()

	port, err := freePort(topo)
	if err != nil {
		return nil, 0, err
	}
	rx, tx := addrString(topo.rxAddr), addrString(topo.txAddr)
	var srvOut tailBuffer
	srv := iperfCommand(ctx, topo.rxNS, "-s", "-1", "-B", rx, "-p", strconv.Itoa(port))
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return nil, 0, fmt.Errorf("iperf3 server: %w", err)
	}
	// srvDone is closed once the server has exited and been waited for.
	srvDone := make(chan struct{})
	var srvErr error
	go func() { srvErr = srv.Wait(); close(srvDone) }()
	defer func() {
		select {
		case <-srvDone:
		default:
			_ = srv.Process.Kill() // by PID: the one process we started
			<-srvDone
		}
	}()
	if err := waitListening(ctx, topo.rxNS, port, srvDone); err != nil {
		return nil, 0, fmt.Errorf("iperf3 server did not listen: %w: %s", err, srvOut.String())
	}

	args := []string{"-c", rx, "-p", strconv.Itoa(port), "-t", strconv.Itoa(secs), "-i", "1", "-C", cc, "-P", strconv.Itoa(streams), "-J"}
	if topo.txNS != "" {
		args = append(args, "-B", tx)
	}
	if omit > 0 {
		args = append(args, "-O", strconv.Itoa(omit))
	}
	var out bytes.Buffer
	var cliErr tailBuffer
	cli := iperfCommand(ctx, topo.txNS, args...)
	cli.Stdout, cli.Stderr = &out, &cliErr
	runErr := cli.Run()
	rep, perr := parseIperf3(out.Bytes())
	if perr != nil && strings.Contains(perr.Error(), "TCP_CONGESTION") {
		return nil, 0, skipf("TCP congestion control %q not available here (%v): see /proc/sys/net/ipv4/tcp_allowed_congestion_control", cc, perr)
	}
	if perr != nil {
		msg := perr.Error()
		if runErr != nil {
			msg += " (" + runErr.Error() + ")"
		}
		if e := cliErr.String(); e != "" {
			msg += ": " + e
		}
		return nil, 0, errors.New(msg)
	}
	select {
	case <-srvDone:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("iperf3 server did not exit: %w", ctx.Err())
	}
	if srvErr != nil {
		return nil, 0, fmt.Errorf("iperf3 server: %w: %s", srvErr, srvOut.String())
	}
	cpu := processCPU(cli.ProcessState) + processCPU(srv.ProcessState)
	return rep, cpu, nil
}

// iperfCommand is iperf3 with args, run inside namespace ns through
// `ip netns exec` (which execs, so the PID is iperf3's) and killed by PID
// when ctx ends.
func iperfCommand(ctx context.Context, ns string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ns == "" {
		cmd = exec.CommandContext(ctx, "iperf3", args...)
	} else {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "iperf3"}, args...)...)
	}
	// If this process dies, the children do not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// freePort picks a port for the iperf3 server: one the kernel hands out in
// the server's namespace. Another program could take it before iperf3 binds;
// the server then fails and the scenario says so.
func freePort(topo *topology) (int, error) {
	var port int
	err := inNetns(topo.rxNS, func() error {
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IP(topo.rxAddr[:])})
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	return port, err
}

// waitListening polls the namespace's TCP table until a socket listens on
// port. Polling /proc rather than connecting matters: iperf3 -s -1 would
// take a probe connection for its one test.
func waitListening(ctx context.Context, ns string, port int, exited <-chan struct{}) error {
	want := fmt.Sprintf(":%04X ", port)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		found := false
		err := inNetns(ns, func() error {
			f, err := os.Open("/proc/thread-self/net/tcp")
			if err != nil {
				return err
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				// sl local_address rem_address st ...; st 0A is LISTEN.
				fields := strings.Fields(sc.Text())
				if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", want) && fields[3] == "0A" {
					found = true
				}
			}
			return sc.Err()
		})
		if err != nil || found {
			return err
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// processCPU is the user+system CPU time of an exited process.
func processCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// iperfReport is the part of iperf3's -J output the peer reads.
type iperfReport struct {
	Start struct {
		Version string `json:"version"`
	} `json:"start"`
	End struct {
		SumSent     iperfSum `json:"sum_sent"`
		SumReceived iperfSum `json:"sum_received"`
		CPU         struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
		SenderCC   string `json:"sender_tcp_congestion"`
		ReceiverCC string `json:"receiver_tcp_congestion"`
	} `json:"end"`
	Error string `json:"error"`
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   float64 `json:"retransmits"`
	Omitted       bool    `json:"omitted"`
}

// parseIperf3 reads iperf3's JSON report. A report with an "error" field, or
// without a receiver's figure, is an error: iperf3 -J writes one even when
// it fails.
//
// The figure a run yields is end.sum_received.bits_per_second: the bytes
// the receiving iperf3 read over the measured time (the -O warm-up left
// out), which is goodput as the kernel peer's own tcp_stream and gVisor's
// count it. end.sum_sent is what the sender's kernel accepted, higher by
// whatever was still in flight or in buffers at the end; the per-second
// "intervals" of the client's report are sender-side too.
func parseIperf3(data []byte) (*iperfReport, error) {
	var rep iperfReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("iperf3 JSON: %w", err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("iperf3: %s", rep.Error)
	}
	if r := rep.End.SumReceived; !(r.BitsPerSecond > 0 && r.Seconds > 0 && r.Bytes > 0) {
		return nil, errors.New("iperf3: no receiver figure (end.sum_received) in the report")
	}
	return &rep, nil
}

// tailBuffer keeps the last few kilobytes a process writes: enough for an
// error message, bounded whatever the process prints.
type tailBuffer struct{ b []byte }

const tailMax = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }

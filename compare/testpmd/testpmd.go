// Package testpmd runs DPDK's dpdk-testpmd as the kernel-bypass anchor of a
// comparison: one core forwarding between two in-memory ports (net_null,
// which makes and swallows frames, or net_ring, two rings that frames loop
// through), with no NIC, no hugepages and no root-only setup. Its figure is
// the most a poll-mode forwarder reaches on this machine, and pollnet's PMD
// mode is read against it.
//
// The run is bounded twice: `timeout -s INT` ends testpmd by itself even if
// this process dies, and the peer interrupts it as soon as the statistics it
// needs have been printed. --no-pci is always passed, so testpmd never
// probes the machine's own NIC.
package testpmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/internal/result"
)

// Path is the result Path of testpmd's scenarios.
const Path = "dpdk-testpmd"

// L2Fwd is the one workload: frames in on one port, out of the other,
// untouched (testpmd's io forwarding mode).
const L2Fwd = "l2_fwd"

// The in-memory port kinds the peer knows.
const (
	// VdevNull ports make a frame for every receive and free every sent
	// one: each packet costs an mbuf allocation and free, like a NIC.
	VdevNull = "net_null"
	// VdevRing ports are two rte_rings; --tx-first seeds them with a burst
	// that then loops forever, so only the forwarding loop and ring
	// operations are measured, no mbuf allocation: about a billion packets
	// a second on a 2-vCPU VM, a ceiling of the loop rather than of packet
	// handling, so it runs only when asked for. Give it a warm-up: its first
	// stats period includes the loop getting going.
	VdevRing = "net_ring"
)

// DefaultSizes are frame bytes without FCS.
var DefaultSizes = []int{64, 1514}

// Install is what a machine without testpmd needs (Debian 12): the dpdk
// package lacks the binary; dpdk-dev has it and pulls in the null and ring
// PMDs.
const Install = "apt-get install dpdk-dev"

// Bounds of one run, beyond the workload's warm-up and duration.
const (
	startupLimit = 30 * time.Second // EAL init to the first statistics print
	statsSlack   = 5 * time.Second  // a print may come up to this late
	exitLimit    = 10 * time.Second // from SIGINT to exit; timeout -k kills at 5 s
	killAfter    = 5                // seconds, for timeout -k
)

// Peer runs dpdk-testpmd. The zero value uses dpdk-testpmd from PATH on
// lcores 0-1 with net_null ports.
type Peer struct {
	Binary string   // path of dpdk-testpmd; "" finds it on PATH
	Vdevs  []string // VdevNull, VdevRing; empty means VdevNull
	Lcores string   // EAL -l: the first is the main lcore, the next forwards; "" means "0-1"
	Copy   bool     // net_null copy=1: the PMD copies each frame's bytes in and out
	Memory int      // EAL -m in MB with --no-huge; 0 means 512
	Mbufs  int      // --total-num-mbufs; 0 means 32768
}

// Name is the result Path of the peer's scenarios.
func (p *Peer) Name() string { return Path }

// Workloads lists what Run accepts.
func (p *Peer) Workloads() []string { return []string{L2Fwd} }

func (p *Peer) vdevs() []string {
	if len(p.Vdevs) > 0 {
		return p.Vdevs
	}
	return []string{VdevNull}
}

func (p *Peer) lcores() string {
	if p.Lcores == "" {
		return "0-1"
	}
	return p.Lcores
}

func (p *Peer) memory() int {
	if p.Memory <= 0 {
		return 512
	}
	return p.Memory
}

func (p *Peer) mbufs() int {
	if p.Mbufs <= 0 {
		return 32768
	}
	return p.Mbufs
}

func (p *Peer) copyArg() int {
	if p.Copy {
		return 1
	}
	return 0
}

// Run measures l2_fwd for each port kind and frame size. Without testpmd,
// or when it fails (an EAL that will not start, an unknown vdev), each
// scenario is skipped with the reason or testpmd's own error lines.
func (p *Peer) Run(ctx context.Context, w workload.Workload) ([]result.Scenario, error) {
	if err := w.Check(); err != nil {
		return nil, err
	}
	if w.Name != L2Fwd {
		return nil, fmt.Errorf("%w: %q (dpdk-testpmd offers %v)", workload.ErrUnknown, w.Name, p.Workloads())
	}
	bin, missing := p.tools()
	var out []result.Scenario
	for _, kind := range p.vdevs() {
		for _, size := range w.SizesOr(DefaultSizes...) {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			vdevs, app, err := p.args(kind, size)
			knobs := map[string]any{
				"size": size, "forward_mode": "io", "vdev": strings.Join(vdevs, " "),
				"ports": 2, "fwd_cores": 1, "lcores": p.lcores(), "no_huge": true,
				"memory_mb": p.memory(), "mbufs": p.mbufs(), "burst": 32,
				"duration_s": w.Duration.Seconds(), "warmup_s": w.Warmup.Seconds(),
			}
			sc := result.Scenario{Name: L2Fwd, Path: Path, Port: kind, Knobs: knobs, Metric: "rx_pps", Unit: "packets/s"}
			switch {
			case err != nil:
				sc.Skipped = err.Error()
			case missing != "":
				sc.Skipped = missing
			default:
				err = p.measure(ctx, &sc, bin, vdevs, app, w)
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				if err != nil {
					sc.Skipped = err.Error()
				}
			}
			out = append(out, sc)
		}
	}
	return out, nil
}

// tools finds testpmd and coreutils' timeout and stdbuf, or says which is
// missing and how to get it.
func (p *Peer) tools() (string, string) {
	bin := p.Binary
	if bin == "" {
		bin = "dpdk-testpmd"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Sprintf("dpdk-testpmd not installed: %s", Install)
	}
	if _, err := exec.LookPath("timeout"); err != nil {
		return "", "timeout not found: apt-get install coreutils"
	}
	return path, ""
}

// args are the --vdev arguments and testpmd's own arguments for one port
// kind and frame size.
func (p *Peer) args(kind string, size int) ([]string, []string, error) {
	app := []string{"--forward-mode=io", "--auto-start", "--stats-period", "1",
		"--total-num-mbufs=" + strconv.Itoa(p.mbufs()), "--txpkts=" + strconv.Itoa(size)}
	switch kind {
	case VdevNull:
		v := fmt.Sprintf(",size=%d,copy=%d", size, p.copyArg())
		return []string{"net_null0" + v, "net_null1" + v}, app, nil
	case VdevRing:
		// Nothing arrives on a ring port until something is sent: the
		// first burst from each port starts the loop.
		return []string{"net_ring0", "net_ring1"}, append(app, "--tx-first"), nil
	}
	return nil, nil, fmt.Errorf("unknown vdev kind %q (use %s or %s)", kind, VdevNull, VdevRing)
}

var prefixSeq atomic.Uint64

// run is what one testpmd process gave.
type run struct {
	out     *Output
	samples []Sample
	cpu     time.Duration // testpmd's and timeout's user+system time, start to exit
	wall    time.Duration // start to exit
	fwdSpan time.Duration // from the first statistics print to the interrupt
}

// measure runs testpmd w.Runs() times and fills sc from the pooled samples.
func (p *Peer) measure(ctx context.Context, sc *result.Scenario, bin string, vdevs, app []string, w workload.Workload) error {
	var rs []run
	for range w.Runs() {
		r, err := p.runOnce(ctx, bin, vdevs, app, w)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	var cpu, span, wall time.Duration
	var rx, tx, rxDrop, txDrop, missed uint64
	for _, r := range rs {
		for _, s := range r.samples {
			sc.Samples = append(sc.Samples, s.RxPPS)
		}
		cpu += r.cpu
		span += r.fwdSpan
		wall += r.wall
		if t := r.out.Total; t != nil {
			rx += t.RxPackets
			tx += t.TxPackets
			rxDrop += t.RxDropped
			txDrop += t.TxDropped
		}
		missed += r.out.RxMissed()
	}
	last := rs[len(rs)-1].out
	if last.Version != "" {
		sc.Knobs["dpdk"] = last.Version
	}
	sc.CPUSeconds = cpu.Seconds()
	sc.Counters = map[string]uint64{"rx_packets": rx, "tx_packets": tx, "rx_dropped": rxDrop, "tx_dropped": txDrop, "rx_missed": missed}
	if err := sc.Summarise(); err != nil {
		return err
	}
	// CPUSeconds covers the process's whole life, EAL start-up included
	// (process_seconds of wall time), not only the forwarding.
	sc.Extra = map[string]float64{"mpps_median": sc.Median / 1e6, "forward_seconds": span.Seconds(), "process_seconds": wall.Seconds()}
	if rx > 0 {
		// While forwarding, the forwarding lcore busy-polls (its CPU time
		// is the forwarding time) and the main lcore sleeps, so the cost
		// of a packet is the forwarding time over the packets. The whole
		// process's CPU per packet is kept too, as an upper bound.
		sc.Extra["cpu_ns_per_packet"] = float64(span.Nanoseconds()) / float64(rx)
		sc.Extra["process_cpu_ns_per_packet"] = float64(cpu.Nanoseconds()) / float64(rx)
	}
	return nil
}

// line is one line of testpmd's output and when it was read.
type line struct {
	text string
	at   time.Time
}

// runOnce starts testpmd under timeout, watches its statistics arrive, and
// interrupts it once the warm-up and duration have passed and at least one
// measured print is in (testpmd's one-second period stretches to two on a
// busy VM). It fails, with testpmd's own error lines, when no print came.
func (p *Peer) runOnce(ctx context.Context, bin string, vdevs, app []string, w workload.Workload) (run, error) {
	pr, err := p.start(bin, vdevs, app, startupLimit+w.Warmup+w.Duration+statsSlack, false)
	if err != nil {
		return run{}, err
	}
	defer removeRuntimeDir(pr.prefix)
	cmd, lines, started := pr.cmd, pr.lines, pr.started

	var parser Parser
	var fwdStart, stopAt time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	interrupt := func(now time.Time) {
		if stopAt.IsZero() {
			stopAt = now
			_ = cmd.Process.Signal(syscall.SIGINT) // timeout relays it to testpmd
		}
	}
	cancelled := ctx.Done()
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			parser.Line(l.text, l.at)
		case <-tick.C:
		case <-cancelled:
			cancelled = nil // once is enough; then wait for the exit
			interrupt(time.Now())
		}
		now := time.Now()
		o := parser.Output()
		if fwdStart.IsZero() && len(o.Shows) > 0 {
			fwdStart = o.Shows[0].At
		}
		switch {
		case !stopAt.IsZero():
			if now.Sub(stopAt) > exitLimit {
				_ = cmd.Process.Kill() // the timeout process, by PID
				lines = drain(lines)
			}
		case fwdStart.IsZero():
			if now.Sub(started) > startupLimit {
				interrupt(now)
			}
		default:
			end := fwdStart.Add(w.Warmup + w.Duration)
			measured := len(o.Samples(fwdStart.Add(w.Warmup)))
			if (!now.Before(end) && measured > 0) || now.After(end.Add(statsSlack)) {
				interrupt(now)
			}
		}
	}
	waitErr := cmd.Wait()
	if stopAt.IsZero() {
		stopAt = time.Now()
	}
	o := parser.Output()
	r := run{out: o, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), wall: time.Since(started)}
	if !fwdStart.IsZero() {
		r.fwdSpan = stopAt.Sub(fwdStart)
		r.samples = o.Samples(fwdStart.Add(w.Warmup))
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if len(r.samples) == 0 {
		return r, fmt.Errorf("dpdk-testpmd gave no statistics (%s): %s", exitNote(waitErr), gist(o))
	}
	return r, nil
}

// proc is a running testpmd: its command (the timeout process that runs
// it), its output a line at a time, and its stdin when interactive.
type proc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser // nil unless interactive
	lines   chan line      // stdout and stderr; closed when both end
	started time.Time
	prefix  string // EAL's --file-prefix: the caller removes its runtime directory
}

// start launches testpmd on the peer's lcores with the given vdevs and
// application arguments, under `timeout` with the given limit, its output
// line-buffered so that prints can be timed as they come.
func (p *Peer) start(bin string, vdevs, app []string, limit time.Duration, interactive bool) (*proc, error) {
	prefix := fmt.Sprintf("pollnet-%d-%d", os.Getpid(), prefixSeq.Add(1))
	eal := []string{"--no-pci", "-l", p.lcores(), "--no-huge", "-m", strconv.Itoa(p.memory()),
		"--file-prefix", prefix, "-v"}
	for _, v := range vdevs {
		eal = append(eal, "--vdev="+v)
	}
	args := []string{"-k", strconv.Itoa(killAfter), "-s", "INT", strconv.Itoa(int(math.Ceil(limit.Seconds())))}
	// Line-buffered output lets the prints be timed as they come; without
	// stdbuf they arrive at exit and the run lasts until its limit.
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		args = append(args, sb, "-oL", "-eL")
	}
	args = append(append(append(append(args, bin), eal...), "--"), app...)
	timeoutBin, _ := exec.LookPath("timeout")
	cmd := exec.Command(timeoutBin, args...)
	// timeout relays a SIGTERM to testpmd if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = exitLimit
	pr := &proc{cmd: cmd, prefix: prefix}
	if interactive {
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		pr.stdin = in
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dpdk-testpmd: %w", err)
	}
	pr.started = time.Now()
	pr.lines = make(chan line, 256)
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Go(func() {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				pr.lines <- line{sc.Text(), time.Now()}
			}
		})
	}
	go func() { readers.Wait(); close(pr.lines) }()
	return pr, nil
}

// drain empties and abandons a line channel whose writers may never finish
// (a child that kept the pipe after its parent was killed); WaitDelay then
// closes the pipe.
func drain(ch chan line) chan line {
	go func() {
		for range ch {
		}
	}()
	return nil
}

// exitNote describes how the timeout process ended: 124 means the time
// limit hit, a signal that it was interrupted or killed.
func exitNote(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() == 124 {
			return "time limit reached"
		}
		return ee.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// gist is the few lines that say why testpmd failed: "Cause:" first, then
// the last error lines.
func gist(o *Output) string {
	if len(o.Errors) == 0 {
		return "no error printed"
	}
	var causes []string
	for _, e := range o.Errors {
		if strings.Contains(e, "Cause:") {
			causes = append(causes, e)
		}
	}
	pick := o.Errors
	if len(causes) > 0 {
		pick = causes
	}
	if len(pick) > 3 {
		pick = pick[len(pick)-3:]
	}
	return strings.Join(pick, "; ")
}

// removeRuntimeDir deletes the EAL runtime directory named by our
// --file-prefix (config and fbarray files), in whichever place EAL chose.
// Only that exact directory is touched.
func removeRuntimeDir(prefix string) {
	bases := []string{"/var/run/dpdk", "/run/dpdk", filepath.Join(os.TempDir(), "dpdk")}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		bases = append(bases, filepath.Join(x, "dpdk"))
	}
	for _, b := range bases {
		_ = os.RemoveAll(filepath.Join(b, prefix))
	}
}

package testpmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Forwarding on one net_null port: the peer of pollnet's pps scenario on its
// null port (pmd/null). One forwarding lcore receives bursts from the port's
// only receive queue, does the forwarding mode's work on each frame, and
// sends the burst out of the same port's transmit queue, which frees it.
// Nothing else runs on that core; the main lcore sleeps between commands.
//
// testpmd runs interactively (-i --auto-start), and this package asks for
// the port's statistics itself ("show port stats all"), once at the end of
// the warm-up and then once a second: so the intervals are ours to choose,
// not testpmd's --stats-period loop's (which prints every two seconds on a
// loaded VM). The rate is the RX-packets delta over the intervals, timed by
// testpmd's own clock (see Output.Window).

// MinIntervals is the fewest one-second intervals one launch's rate comes
// from.
const MinIntervals = 3

// Interval is the time between two statistics requests.
const Interval = time.Second

// ModeMacswap is testpmd's macswap forwarding mode: swap each frame's
// destination and source MAC, send it back out.
const ModeMacswap = "macswap"

// NullForward is one testpmd launch forwarding on one net_null port.
type NullForward struct {
	Size     int           // frame bytes without FCS: net_null's size devarg
	Copy     bool          // net_null's copy=1: frames copied in on receive and out on transmit
	Mode     string        // the forwarding mode; "" is ModeMacswap
	Warmup   time.Duration // forwarding before the first statistics request
	Duration time.Duration // measured time; at least MinIntervals intervals are measured
}

func (f NullForward) mode() string {
	if f.Mode == "" {
		return ModeMacswap
	}
	return f.Mode
}

// intervals is how many intervals the launch measures.
func (f NullForward) intervals() int {
	return max(MinIntervals, int((f.Duration+Interval-1)/Interval))
}

func (f NullForward) check() error {
	switch {
	case f.Size <= 0:
		return fmt.Errorf("testpmd: frame size %d must be positive", f.Size)
	case f.Warmup < 0 || f.Warmup > time.Minute:
		return fmt.Errorf("testpmd: warm-up %v out of range 0..1m", f.Warmup)
	case f.Duration < 0 || f.Duration > time.Hour:
		return fmt.Errorf("testpmd: duration %v out of range 0..1h", f.Duration)
	case strings.ContainsAny(f.mode(), " \t\n"):
		return fmt.Errorf("testpmd: forwarding mode %q", f.Mode)
	}
	return nil
}

// NullRate is what one launch measured.
type NullRate struct {
	Window // RX-packets gained after the warm-up, and over how long
	// FwdCPUSeconds is the forwarding lcore's CPU time from the first
	// statistics request to the last, read from the kernel's account of
	// its thread (schedstat); 0 when it could not be read. Over the
	// window's packets it is CPU per packet, which time the machine's
	// other work took from the core does not inflate.
	FwdCPUSeconds  float64
	RxMissed       uint64  // RX-missed in the last print
	Version        string  // "DPDK 22.11.11"
	CPUSeconds     float64 // testpmd's user and system time, start to exit (EAL start-up included)
	ProcessSeconds float64 // start to exit
}

// NullVdev is the --vdev argument of the launch: net_null0 with the frame
// size and copy devargs.
func NullVdev(f NullForward) string {
	c := 0
	if f.Copy {
		c = 1
	}
	return fmt.Sprintf("net_null0,size=%d,copy=%d", f.Size, c)
}

// nullApp is testpmd's own arguments for the launch.
func (p *Peer) nullApp(f NullForward) []string {
	return []string{"-i", "--auto-start", "--forward-mode=" + f.mode(), "--nb-cores=1",
		"--rxq=1", "--txq=1", "--burst=32", "--total-num-mbufs=" + strconv.Itoa(p.mbufs())}
}

// NullKnobs are the launch's settings, for a result file.
func (p *Peer) NullKnobs(f NullForward) map[string]any {
	return map[string]any{
		"size": f.Size, "fwd": f.mode(), "copy": f.Copy, "vdev": NullVdev(f),
		"ports": 1, "fwd_cores": 1, "lcores": p.lcores(), "no_huge": true, "memory_mb": p.memory(),
		"mbufs": p.mbufs(), "burst": 32, "intervals": f.intervals(), "interval_s": Interval.Seconds(),
		"args": strings.Join(p.nullApp(f), " "),
	}
}

// Missing says why testpmd cannot run here ("" when it can): the binary or
// coreutils' timeout is not installed.
func (p *Peer) Missing() string {
	_, missing := p.tools()
	return missing
}

// ForwardNull launches testpmd once and measures its forwarding rate after
// the warm-up. Without testpmd, or when it fails (an EAL that will not
// start, a print that does not come), the error says why, with testpmd's
// own error lines.
func (p *Peer) ForwardNull(ctx context.Context, f NullForward) (NullRate, error) {
	r, _, err := p.forward(ctx, f, []string{NullVdev(f)}, p.nullApp(f), nil)
	return r, err
}

// forward is one interactive launch with the given vdevs and application
// arguments, measured as ForwardNull describes; onLine, if set, sees every
// line of output. It returns the parsed output too.
func (p *Peer) forward(ctx context.Context, f NullForward, vdevs, app []string, onLine func(string)) (NullRate, *Output, error) {
	if err := f.check(); err != nil {
		return NullRate{}, nil, err
	}
	bin, missing := p.tools()
	if missing != "" {
		return NullRate{}, nil, errors.New(missing)
	}
	want := f.intervals()
	measure := time.Duration(want) * Interval
	pr, err := p.start(bin, vdevs, app, startupLimit+f.Warmup+measure+statsSlack+exitLimit, true)
	if err != nil {
		return NullRate{}, nil, err
	}
	defer removeRuntimeDir(pr.prefix)

	var parser Parser
	var fwdStart, next, stopAt, quitAt time.Time
	asked := 0 // statistics requests written
	var cpu0, cpuN time.Duration
	cpuOK := false
	var writeErr error
	send := func(cmds ...string) {
		if writeErr == nil {
			_, writeErr = io.WriteString(pr.stdin, strings.Join(cmds, "\n")+"\n")
		}
	}
	interrupt := func(now time.Time) {
		if stopAt.IsZero() {
			stopAt = now
			_ = pr.cmd.Process.Signal(syscall.SIGINT) // timeout relays it to testpmd
		}
	}
	var failure error
	fail := func(now time.Time, format string, a ...any) {
		if failure == nil {
			failure = fmt.Errorf(format, a...)
		}
		interrupt(now)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	cancelled := ctx.Done()
	lines := pr.lines
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			parser.Line(l.text, l.at)
			if onLine != nil {
				onLine(l.text)
			}
			// Forwarding begins once testpmd names the lcore's streams.
			if fwdStart.IsZero() && strings.Contains(l.text, "packet forwarding - ports=") {
				fwdStart = l.at
				next = fwdStart.Add(f.Warmup)
			}
		case <-tick.C:
		case <-cancelled:
			cancelled = nil
			interrupt(time.Now())
		}
		now := time.Now()
		shows := len(parser.Output().Shows)
		switch {
		case !stopAt.IsZero():
			if now.Sub(stopAt) > exitLimit {
				_ = pr.cmd.Process.Kill() // the timeout process, by PID
				lines = drain(lines)
			}
		case !quitAt.IsZero():
			if now.Sub(quitAt) > exitLimit {
				interrupt(now)
			}
		case writeErr != nil:
			fail(now, "dpdk-testpmd stopped reading commands: %v", writeErr)
		case fwdStart.IsZero():
			if now.Sub(pr.started) > startupLimit {
				fail(now, "dpdk-testpmd did not start forwarding in %v", startupLimit)
			}
		case shows < asked && now.Sub(next.Add(-Interval)) > 2*Interval+statsSlack:
			fail(now, "dpdk-testpmd did not answer statistics request %d of %d", shows+1, want+1)
		case asked <= want && !now.Before(next):
			send("show port stats all")
			if cpu, ok := fwdThreadCPU(pr.cmd.Process.Pid, p.fwdLcore()); ok {
				if asked == 0 {
					cpu0 = cpu
				} else {
					cpuN, cpuOK = cpu, cpu0 > 0
				}
			}
			asked++
			next = next.Add(Interval)
		case asked > want && shows >= asked:
			// Every reading is in: stop forwarding (its totals are
			// printed), leave, and close stdin in case quit is lost.
			send("stop", "quit")
			pr.stdin.Close()
			quitAt = now
		}
	}
	waitErr := pr.cmd.Wait()
	o := parser.Output()
	r := NullRate{Window: o.Window(time.Time{}), RxMissed: o.RxMissed(), Version: o.Version,
		ProcessSeconds: time.Since(pr.started).Seconds()}
	if cpuOK && cpuN >= cpu0 {
		r.FwdCPUSeconds = (cpuN - cpu0).Seconds()
	}
	if st := pr.cmd.ProcessState; st != nil {
		r.CPUSeconds = (st.UserTime() + st.SystemTime()).Seconds()
	}
	if err := ctx.Err(); err != nil {
		return r, o, err
	}
	if failure != nil {
		return r, o, fmt.Errorf("%w (%s): %s", failure, exitNote(waitErr), gist(o))
	}
	if r.Intervals < MinIntervals {
		return r, o, fmt.Errorf("dpdk-testpmd gave %d measured intervals, want %d (%s): %s", r.Intervals, want, exitNote(waitErr), gist(o))
	}
	return r, o, nil
}

// fwdLcore is the forwarding lcore: the second of the peer's lcores (the
// first is the main lcore).
func (p *Peer) fwdLcore() int {
	var cores []int
	for _, part := range strings.Split(p.lcores(), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return -1
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				return -1
			}
		}
		for c := a; c <= b && len(cores) < 2; c++ {
			cores = append(cores, c)
		}
	}
	if len(cores) < 2 {
		return -1
	}
	return cores[1]
}

// fwdThreadCPU reads the CPU time of lcore's thread in the testpmd process
// that parent (the timeout process) runs: the thread EAL names rte-worker-N
// (lcore-worker-N in later releases), its time the first field of
// /proc/PID/task/TID/schedstat, in nanoseconds.
func fwdThreadCPU(parent, lcore int) (time.Duration, bool) {
	if lcore < 0 {
		return 0, false
	}
	pid, ok := childOf(parent)
	if !ok {
		return 0, false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	names := []string{fmt.Sprintf("rte-worker-%d", lcore), fmt.Sprintf("lcore-worker-%d", lcore)}
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, t.Name())
		comm, err := os.ReadFile(dir + "comm")
		if err != nil || !slices.Contains(names, strings.TrimSpace(string(comm))) {
			continue
		}
		b, err := os.ReadFile(dir + "schedstat")
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		return time.Duration(ns), err == nil
	}
	return 0, false
}

// childOf finds the one child of parent (timeout runs testpmd, which stdbuf
// has exec'd into), from the children file where the kernel keeps it, else
// by the parent field of every process's stat.
func childOf(parent int) (int, bool) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, err := strconv.Atoi(f[0])
			return pid, err == nil
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the
		// fields after its closing one are state, then the parent.
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(parent) {
			return pid, true
		}
	}
	return 0, false
}

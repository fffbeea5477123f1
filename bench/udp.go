package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack"
)

// UDPConfig is the UDP scenario: two stack instances joined by a wire pair,
// each driven on its own core, with a client and a server application on
// UDP sockets. It measures request/response (netperf's UDP_RR: one datagram
// each way per transaction, with the round-trip time) and one-way stream
// throughput counted as datagrams the server application read — the same
// work, under the same names, as the kernel and gVisor peers do.
type UDPConfig struct {
	Sizes    []int // UDP payload bytes (16..65507)
	Modes    []Mode
	Duration time.Duration // measured time of each run
	Warmup   time.Duration // unmeasured start of each run
	// Repeat is the number of independent runs of each (workload, size,
	// mode), default 5: each builds its own stacks and warms up on its
	// own, and gives one sample. The modes' runs interleave (pmd, napi,
	// pmd, napi, ...) so that a drift of the machine touches both alike.
	Repeat     int
	ClientCore int
	ServerCore int
	Softirq    engine.SoftirqConfig
	Progress   io.Writer
	Live       func(*Live)
}

// UDP payload bounds: the stamp (sequence and time) must fit.
const (
	MinUDPPayload = 16
	udpServerPort = 7
	// udpBatch is the datagrams per WriteBatchTo of the stream client:
	// the "batch" knob, as the kernel peer's sendmmsg batch.
	udpBatch = 32
	// udpFrameHeaders are Ethernet + IPv4 + UDP header bytes: payload +
	// udpFrameHeaders is the frame size the "size" knob reports, as the
	// peers report it.
	udpFrameHeaders = 14 + 20 + 8
)

// Validate refuses values the scenario cannot run with.
func (c *UDPConfig) Validate() error {
	if len(c.Sizes) == 0 {
		return flagErr("--size: give at least one UDP payload size (%d..%d bytes)", MinUDPPayload, stack.MaxUDPPayload)
	}
	for _, s := range c.Sizes {
		if s < MinUDPPayload || s > stack.MaxUDPPayload {
			return flagErr("--size %d is out of range: UDP payloads are %d..%d bytes", s, MinUDPPayload, stack.MaxUDPPayload)
		}
	}
	if len(c.Modes) == 0 {
		return flagErr("--mode: give pmd, napi or pmd,napi")
	}
	return checkRun(c.Duration, c.Warmup, c.ClientCore, c.ServerCore, slices.Contains(c.Modes, ModePMD))
}

// UDPResult is one (workload, mode, size) measurement.
type UDPResult struct {
	Workload string // "udp_rr" or "udp_stream"
	Mode     Mode
	Size     int
	Scenario result.Scenario
	Latency  *pktgen.Histogram // round trips, for udp_rr
}

var (
	udpClientAddr = netip.MustParsePrefix("198.18.1.1/24")
	udpServerAddr = netip.MustParsePrefix("198.18.1.2/24")
)

// udpRig is the two stacks and their sockets.
type udpRig struct {
	mode           Mode
	wire           *wire.Pair
	client, server *stack.Stack
	cs, ss         *stack.UDPConn
	tick           atomic.Pointer[func(*engine.Worker, int)] // the client's poll-loop application, in PMD mode
}

func newUDPRig(cfg UDPConfig, mode Mode) (*udpRig, error) {
	r := &udpRig{mode: mode}
	var err error
	if r.wire, err = wire.NewPair(wire.Config{Names: [2]string{"udp-client", "udp-server"}}); err != nil {
		return nil, err
	}
	mk := func(name string, port engine.Port, addr netip.Prefix, tick func(*engine.Worker, int)) (*stack.Stack, error) {
		return stack.New(stack.Config{Name: name, Interfaces: []stack.Interface{{Port: port, Addr: addr}},
			UDPRecvBuffer: 4 << 20, PollTick: tick})
	}
	if r.client, err = mk("udp-client", r.wire.Ports[0], udpClientAddr, func(w *engine.Worker, n int) {
		if t := r.tick.Load(); t != nil {
			(*t)(w, n)
		}
	}); err != nil {
		r.close()
		return nil, err
	}
	if r.server, err = mk("udp-server", r.wire.Ports[1], udpServerAddr, nil); err != nil {
		r.close()
		return nil, err
	}
	if r.ss, err = r.server.ListenUDP(netip.AddrPortFrom(udpServerAddr.Addr(), udpServerPort)); err != nil {
		r.close()
		return nil, err
	}
	if r.cs, err = r.client.ListenUDP(netip.AddrPortFrom(udpClientAddr.Addr(), 0)); err != nil {
		r.close()
		return nil, err
	}
	smode := stack.Mode(mode)
	if err := r.server.Start(smode, cfg.ServerCore, cfg.Softirq); err != nil {
		r.close()
		return nil, err
	}
	if err := r.client.Start(smode, cfg.ClientCore, cfg.Softirq); err != nil {
		r.close()
		return nil, err
	}
	// Resolve the server's address once, so no run starts with ARP.
	r.cs.SetBusyPoll(false)
	r.ss.SetBusyPoll(false)
	r.cs.WriteToUDPAddrPort(make([]byte, MinUDPPayload), r.serverAddr())
	r.ss.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := r.ss.ReadFromUDPAddrPort(make([]byte, 64)); err != nil {
		r.close()
		return nil, fmt.Errorf("udp bench: the server never heard the client: %w", err)
	}
	r.ss.SetReadDeadline(time.Time{})
	return r, nil
}

func (r *udpRig) serverAddr() netip.AddrPort {
	return netip.AddrPortFrom(udpServerAddr.Addr(), udpServerPort)
}

func (r *udpRig) live(size int) *Live {
	l := &Live{Mode: r.mode, Size: size, Ports: []engine.Port{r.wire.Ports[0], r.wire.Ports[1]}}
	for _, s := range []*stack.Stack{r.client, r.server} {
		if s == nil {
			continue
		}
		if si := s.Softirq(); si != nil {
			l.Softirqs = append(l.Softirqs, si)
		} else if w := s.Worker(); w != nil {
			l.Workers = append(l.Workers, w)
		}
	}
	return l
}

func (r *udpRig) close() error {
	var errs []error
	for _, s := range []*stack.Stack{r.client, r.server} {
		if s != nil {
			if err := s.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r.wire != nil {
		for _, p := range r.wire.Ports {
			if err := p.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// stamp writes a sequence number and the time at the front of a payload.
func stamp(b []byte, seq uint64, now int64) {
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[8:], uint64(now))
}

func stampTime(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b[8:])) }

// RunUDP runs request/response and stream for every size in every mode:
// for each (workload, size), Repeat rounds of one independent run per mode,
// the modes interleaved, then one result per mode pooling its runs.
func RunUDP(cfg UDPConfig) ([]UDPResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if runtime.GOMAXPROCS(0) < 4 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // two stack workers, apps, sampler
	}
	repeat := cfg.Repeat
	if repeat <= 0 {
		repeat = 5
	}
	var out []UDPResult
	for _, workload := range []string{"udp_rr", "udp_stream"} {
		for _, size := range cfg.Sizes {
			pooled := make([]udpRuns, len(cfg.Modes))
			for i := range repeat {
				for m, mode := range cfg.Modes {
					run, err := runUDP(cfg, workload, mode, size, fmt.Sprintf("%d/%d", i+1, repeat))
					if err != nil {
						return out, fmt.Errorf("%s %s %d bytes, run %d: %w", workload, mode, size, i+1, err)
					}
					pooled[m].add(run)
				}
			}
			for m, mode := range cfg.Modes {
				res, err := pooled[m].result(cfg, workload, mode, size)
				if err != nil {
					return out, fmt.Errorf("%s %s %d bytes: %w", workload, mode, size, err)
				}
				out = append(out, res)
			}
		}
	}
	return out, nil
}

// Request and response payloads, and the buffers the applications read
// into, come from pools (DESIGN.md names bytebufferpool for the harness's
// reused buffers): with independent runs the bench builds its applications
// Repeat times per scenario, and they need not allocate again each time.
// Two pools, because a pool calibrates to one typical size: payloads are
// the run's size, read buffers the largest datagram.
var (
	udpPayloadPool bytebufferpool.Pool
	udpReadPool    bytebufferpool.Pool
)

// udpReadBuf is the size of the applications' read buffers: any datagram.
const udpReadBuf = 65536

// poolBuf takes a zeroed buffer of n bytes from pool.
func poolBuf(pool *bytebufferpool.Pool, n int) *bytebufferpool.ByteBuffer {
	b := pool.Get()
	b.B = slices.Grow(b.B[:0], n)[:n]
	clear(b.B)
	return b
}

// udpApp is the client and server applications of one run and what they
// measure. In poll mode both run in their stacks' loops; in interrupt mode
// they are goroutines parked on their sockets.
type udpApp struct {
	workload string
	size     int
	r        *udpRig
	count    atomic.Uint64 // transactions completed, or datagrams received
	timeouts atomic.Uint64 // requests given up on
	mu       sync.Mutex    // guards lat: written by the client, read at the end
	lat      pktgen.Histogram
	inWindow atomic.Bool // round trips count only while the window is open

	// The poll-mode client's one request in flight; its tick and its read
	// handler both run on the client stack's worker.
	outstanding bool
	sentAt      int64
	seq         uint64
	payload     []byte
	bufs        [udpBatch][]byte
	reply       []byte
	serverBuf   []byte // the server's read buffer, in either mode

	// pooled are the buffers above, given back by release.
	pooled []pooledBuf
}

type pooledBuf struct {
	pool *bytebufferpool.Pool
	b    *bytebufferpool.ByteBuffer
}

func newUDPApp(workload string, size int, r *udpRig) *udpApp {
	a := &udpApp{workload: workload, size: size, r: r}
	take := func(pool *bytebufferpool.Pool, n int) []byte {
		b := poolBuf(pool, n)
		a.pooled = append(a.pooled, pooledBuf{pool, b})
		return b.B
	}
	a.payload = take(&udpPayloadPool, size)
	for i := range a.bufs {
		a.bufs[i] = take(&udpPayloadPool, size)
	}
	a.reply = take(&udpReadPool, udpReadBuf)
	a.serverBuf = take(&udpReadPool, udpReadBuf)
	return a
}

// release gives the buffers back to their pools. Only once nothing runs
// the applications any more: the stacks closed, the goroutines returned.
func (a *udpApp) release() {
	for _, p := range a.pooled {
		p.pool.Put(p.b)
	}
	a.pooled = nil
	a.payload, a.reply, a.serverBuf, a.bufs = nil, nil, nil, [udpBatch][]byte{}
}

// record notes a completed round trip whose request carried the stamp;
// its time is kept if it completed inside the measured window.
func (a *udpApp) record(reply []byte) {
	if a.inWindow.Load() {
		a.mu.Lock()
		a.lat.Record(engine.Nanotime() - stampTime(reply))
		a.mu.Unlock()
	}
	a.count.Add(1)
}

// serve answers (udp_rr) or counts (udp_stream) what is queued, without
// waiting: the poll-mode server's read handler.
func (a *udpApp) serve(c *stack.UDPConn, buf []byte) {
	for {
		n, from, ok := c.TryRead(buf)
		if !ok {
			return
		}
		if a.workload == "udp_rr" {
			c.WriteToUDPAddrPort(buf[:n], from)
		} else {
			a.count.Add(1)
		}
	}
}

// pollTick is the poll-mode client, run after every round of its stack's
// loop: the next request (udp_rr), or a batch of datagrams (udp_stream).
func (a *udpApp) pollTick(*engine.Worker, int) {
	now := engine.Nanotime()
	if a.workload == "udp_stream" {
		a.stampBatch(now)
		a.r.cs.WriteBatchTo(a.bufs[:], a.r.serverAddr())
		return
	}
	if a.outstanding {
		if now-a.sentAt < int64(100*time.Millisecond) {
			return
		}
		a.timeouts.Add(1) // lost: send another
	}
	a.seq++
	stamp(a.payload, a.seq, now)
	a.sentAt, a.outstanding = now, true
	a.r.cs.WriteToUDPAddrPort(a.payload, a.r.serverAddr())
}

// pollReply is the poll-mode client's read handler.
func (a *udpApp) pollReply(c *stack.UDPConn) {
	for {
		n, _, ok := c.TryRead(a.reply)
		if !ok {
			return
		}
		if n >= MinUDPPayload && binary.LittleEndian.Uint64(a.reply) == a.seq {
			a.record(a.reply)
			a.outstanding = false
		}
	}
}

func (a *udpApp) stampBatch(now int64) {
	for i := range a.bufs {
		a.seq++
		stamp(a.bufs[i], a.seq, now)
	}
}

// napiServer is the interrupt-mode server: a goroutine parked on its socket.
func (a *udpApp) napiServer() {
	buf := a.serverBuf
	for {
		n, from, err := a.r.ss.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if a.workload == "udp_rr" {
			a.r.ss.WriteToUDPAddrPort(buf[:n], from)
		} else {
			a.count.Add(1)
		}
	}
}

// napiClient is the interrupt-mode client: it sends, then parks for the
// answer (udp_rr), or sends batches as fast as it can (udp_stream).
func (a *udpApp) napiClient(stop chan struct{}) {
	r := a.r
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := engine.Nanotime()
		if a.workload == "udp_stream" {
			a.stampBatch(now)
			if _, err := r.cs.WriteBatchTo(a.bufs[:], r.serverAddr()); err != nil {
				return
			}
			continue
		}
		a.seq++
		stamp(a.payload, a.seq, now)
		if _, err := r.cs.WriteToUDPAddrPort(a.payload, r.serverAddr()); err != nil {
			return
		}
		r.cs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, _, err := r.cs.ReadFromUDPAddrPort(a.reply)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					a.timeouts.Add(1)
					break
				}
				return
			}
			if n >= MinUDPPayload && binary.LittleEndian.Uint64(a.reply) == a.seq {
				a.record(a.reply)
				break
			} // else a late answer to a request already given up on
		}
	}
}

// udpRun is what one run measured over its measured window.
type udpRun struct {
	rate       float64 // transactions or datagrams per second: the run's sample
	total      uint64  // transactions or datagrams over the window
	cpu        time.Duration
	wall       time.Duration
	counters   map[string]uint64 // over the window only
	lat        pktgen.Histogram  // round trips completed in the window, for udp_rr
	mtu        int
	gomaxprocs int
}

// udpCounters are the run's counters, read as the window opens and as it
// closes. Over the window:
//
//   - timeouts: the number of requests the client gave up on (udp_rr);
//   - rcvbuf_drops: the number of datagrams the server's socket dropped on a
//     full receive queue (Linux's UDP_MIB_RCVBUFERRORS);
//   - parks, wakeups, spins: the number of times the two applications
//     parked on a socket, were woken, and spun before parking.
func (a *udpApp) udpCounters() map[string]uint64 {
	cc, sc := a.r.client.SocketCounters(), a.r.server.SocketCounters()
	return map[string]uint64{
		"timeouts":     a.timeouts.Load(),
		"rcvbuf_drops": a.r.ss.Drops(),
		"parks":        cc.Parks.Load() + sc.Parks.Load(),
		"wakeups":      cc.Wakeups.Load() + sc.Wakeups.Load(),
		"spins":        cc.Spins.Load() + sc.Spins.Load(),
	}
}

// runUDP is one independent run: fresh stacks and applications, a warm-up,
// one measured window, everything torn down.
func runUDP(cfg UDPConfig, workload string, mode Mode, size int, label string) (udpRun, error) {
	r, err := newUDPRig(cfg, mode)
	if err != nil {
		return udpRun{}, err
	}
	a := newUDPApp(workload, size, r)
	run, err := a.run(cfg, mode, label)
	if cerr := r.close(); cerr != nil && err == nil {
		err = fmt.Errorf("after the run: %w", cerr)
	}
	a.release() // the stacks are closed and the goroutines gone
	return run, err
}

func (a *udpApp) run(cfg UDPConfig, mode Mode, label string) (udpRun, error) {
	r, workload, size := a.r, a.workload, a.size
	stop := make(chan struct{})
	var wg sync.WaitGroup
	switch mode {
	case ModePMD:
		// Both applications live in their stacks' poll loops.
		r.ss.SetReadHandler(func(c *stack.UDPConn) { a.serve(c, a.serverBuf) })
		if workload == "udp_rr" {
			r.cs.SetReadHandler(a.pollReply)
		}
		tick := a.pollTick
		r.tick.Store(&tick)
	case ModeNAPI:
		r.cs.SetBusyPoll(false)
		r.ss.SetBusyPoll(false)
		wg.Add(2)
		go func() { defer wg.Done(); a.napiServer() }()
		go func() { defer wg.Done(); a.napiClient(stop) }()
	}
	if cfg.Live != nil {
		cfg.Live(r.live(size))
	}
	var cpu0 time.Duration
	var before map[string]uint64
	sm := sampling{
		Progress: cfg.Progress, Label: fmt.Sprintf("%-10s %-4s %5dB %s", workload, mode, size, label),
		Warmup: cfg.Warmup, Duration: cfg.Duration, Repeat: 1, Count: a.count.Load,
		Avoid: []int{cfg.ServerCore},
		Measuring: func() {
			cpu0 = CPUTime()
			before = a.udpCounters()
			a.inWindow.Store(true)
		},
		Status: func(rate, _ float64) string {
			if workload == "udp_rr" {
				return fmt.Sprintf("%.0f transactions/s", rate)
			}
			return fmt.Sprintf("%.3f M datagrams/s", rate/1e6)
		},
	}.run()
	a.inWindow.Store(false)
	run := udpRun{cpu: CPUTime() - cpu0, wall: sm.Wall, total: sm.Total, mtu: r.wire.Ports[0].Info().MTU,
		gomaxprocs: runtime.GOMAXPROCS(0), counters: a.udpCounters()}
	for k, v := range run.counters {
		run.counters[k] = v - min(v, before[k])
	}
	if len(sm.Rates) > 0 {
		run.rate = sm.Rates[0]
	}
	close(stop)
	r.tick.Store(nil)
	r.cs.SetReadHandler(nil)
	r.ss.SetReadHandler(nil)
	r.cs.Close()
	r.ss.Close()
	wg.Wait()
	if cfg.Live != nil {
		cfg.Live(nil)
	}
	a.mu.Lock()
	run.lat = a.lat
	a.mu.Unlock()
	if sm.Bar != nil {
		sm.Bar.Done(fmt.Sprintf("%.0f/s", run.rate))
	}
	return run, nil
}

// udpRuns pools one (workload, size, mode)'s independent runs.
type udpRuns struct {
	samples    []float64
	total      uint64
	cpu        time.Duration
	wall       time.Duration
	counters   map[string]uint64
	lat        pktgen.Histogram
	mtu        int
	gomaxprocs int
}

func (p *udpRuns) add(r udpRun) {
	p.samples = append(p.samples, r.rate)
	p.total += r.total
	p.cpu += r.cpu
	p.wall += r.wall
	if p.counters == nil {
		p.counters = map[string]uint64{}
	}
	for k, v := range r.counters {
		p.counters[k] += v
	}
	p.lat.Merge(&r.lat)
	p.mtu = r.mtu
	p.gomaxprocs = max(p.gomaxprocs, r.gomaxprocs)
}

// result is the scenario of the pooled runs: one sample per run; counters,
// CPU and round trips summed over their measured windows.
func (p *udpRuns) result(cfg UDPConfig, workload string, mode Mode, size int) (UDPResult, error) {
	batch := 1 // udp_rr: one request at a time
	if workload == "udp_stream" {
		batch = udpBatch
	}
	knobs := map[string]any{
		"payload": size, "size": size + udpFrameHeaders, "mode": string(mode), "mtu": p.mtu,
		"batch": batch, "duration_s": cfg.Duration.Seconds(),
	}
	if workload == "udp_stream" {
		knobs["rx_batch"] = 1 // the server reads one datagram per call
	}
	sc := result.Scenario{
		Name: workload, Path: "pollnet-" + string(mode), Port: "wire", Knobs: knobs,
		Samples: p.samples, CPUSeconds: p.cpu.Seconds(), Counters: p.counters,
		Roles:      map[string]int{"client": cfg.ClientCore, "server": cfg.ServerCore},
		GOMAXPROCS: p.gomaxprocs, WarmupS: cfg.Warmup.Seconds(), Repeat: len(p.samples),
	}
	sc.Counters["total"] = p.total
	if workload == "udp_rr" {
		sc.Metric, sc.Unit = "transactions_per_s", "transactions/s"
	} else {
		sc.Metric, sc.Unit = "rx_pps", "datagrams/s"
	}
	if err := sc.Summarise(); err != nil {
		return UDPResult{}, err
	}
	sc.Extra = map[string]float64{"wall_seconds": p.wall.Seconds()}
	if p.total > 0 {
		sc.Extra["cpu_ns_per_op"] = p.cpu.Seconds() * 1e9 / float64(p.total)
	}
	if workload == "udp_rr" && p.lat.Count() > 0 {
		sc.Extra["latency_p50_ns"] = float64(p.lat.Percentile(50))
		sc.Extra["latency_p99_ns"] = float64(p.lat.Percentile(99))
		sc.Extra["latency_p999_ns"] = float64(p.lat.Percentile(99.9))
		sc.Extra["latency_max_ns"] = float64(p.lat.Max())
		sc.Extra["latency_samples"] = float64(p.lat.Count())
	} else if workload == "udp_stream" {
		sc.Extra["gbps_median"] = sc.Median * float64(size) * 8 / 1e9 // payload only
	}
	lat := p.lat
	return UDPResult{Workload: workload, Mode: mode, Size: size, Scenario: sc, Latency: &lat}, nil
}

// FormatUDP prints the results as a table (the median rate of the runs and
// their spread), then the pmd/napi ratios.
func FormatUDP(w io.Writer, rs []UDPResult) {
	fmt.Fprintf(w, "%-10s %-5s %6s %4s %14s %21s %10s %10s %10s %12s %8s %8s\n",
		"workload", "mode", "size", "runs", "rate/s", "min..max", "rtt p50", "rtt p99", "drops", "cpu ns/op", "parks", "wakeups")
	for _, r := range rs {
		sc := r.Scenario
		p50, p99 := "-", "-"
		if v, ok := sc.Extra["latency_p50_ns"]; ok {
			p50 = roundLatency(time.Duration(v)).String()
			p99 = roundLatency(time.Duration(sc.Extra["latency_p99_ns"])).String()
		}
		spread := fmt.Sprintf("%.0f..%.0f", sc.Min, sc.Max)
		fmt.Fprintf(w, "%-10s %-5s %6d %4d %14.0f %21s %10s %10s %10d %12.0f %8d %8d\n", r.Workload, r.Mode, r.Size, len(sc.Samples),
			sc.Median, spread, p50, p99, sc.Counters["rcvbuf_drops"], sc.Extra["cpu_ns_per_op"], sc.Counters["parks"], sc.Counters["wakeups"])
	}
	for i, a := range rs {
		if a.Mode != ModePMD {
			continue
		}
		for _, b := range rs[i+1:] {
			if b.Mode == ModeNAPI && b.Size == a.Size && b.Workload == a.Workload && b.Scenario.Median > 0 {
				fmt.Fprintf(w, "pmd/napi %s at %d B: rate %.2fx, CPU per op %.2fx\n", a.Workload, a.Size,
					a.Scenario.Median/b.Scenario.Median, a.Scenario.Extra["cpu_ns_per_op"]/max(1, b.Scenario.Extra["cpu_ns_per_op"]))
				break
			}
		}
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/bench/progress"
	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/afpacket"
	"github.com/pollnet/pollnet/pmd/afxdp"
)

// The pps scenario on a kernel interface: a veth pair, gen <-> dut, in a
// namespace the run makes and deletes. The generator is pollnet's pktgen on
// an AF_PACKET port on gen, a pinned worker sending bursts as fast as it can
// and counting what comes back (the sink). The device under test drives dut
// and sends every frame back out of it with its MACs swapped: either
// pollnet's forwarder on an AF_PACKET or AF_XDP port (pmd/afpacket,
// pmd/afxdp), or dpdk-testpmd's macswap on net_af_packet or net_af_xdp.
// Both sides meet the same generator, the same frame size and the same
// veth, and are counted at the same sink; runs are interleaved, pollnet,
// testpmd, pollnet, ... each on a fresh namespace and veth pair (an AF_XDP
// queue just released cannot be bound again at once).

// Kernel-interface port kinds of the pps scenario (--port).
const (
	PortAFPacket = "afpacket"
	PortAFXDP    = "afxdp"
)

// VethConfig is the pps scenario on a veth pair.
type VethConfig struct {
	Port     string        // PortAFPacket, PortAFXDP or PortTAP (pps_tap.go)
	Sizes    []int         // frame sizes without FCS, 60..1514
	Duration time.Duration // measured time of a pollnet run (testpmd measures at least MinIntervals seconds)
	Warmup   time.Duration
	Repeat   int
	GenCore  int // the generator and sink worker; testpmd's main lcore
	FwdCore  int // the device under test: pollnet's worker, testpmd's forwarding lcore
	Progress io.Writer
	Testpmd  *testpmd.Peer // nil: dpdk-testpmd from PATH on lcores GenCore,FwdCore
	// NoSteer leaves each veth end's receive processing on the sending
	// core instead of the reading one (steerVeth).
	NoSteer bool
}

// VethResult is one frame size on both paths.
type VethResult struct {
	Port             string
	Size             int
	Pollnet, Testpmd result.Scenario
}

// Validate refuses values the scenario cannot run with.
func (c *VethConfig) Validate() error {
	if c.Port != PortAFPacket && c.Port != PortAFXDP && c.Port != PortTAP {
		return flagErr("--port %q: the veth scenario runs on %s, %s or %s", c.Port, PortAFPacket, PortAFXDP, PortTAP)
	}
	if len(c.Sizes) == 0 {
		return flagErr("--size: give at least one frame size (%d..1514 bytes)", pktgen.MinFrameSize)
	}
	for _, s := range c.Sizes {
		if s < pktgen.MinFrameSize || s > 1514 {
			return flagErr("--size %d is out of range on a veth of MTU 1500: use %d..1514 bytes", s, pktgen.MinFrameSize)
		}
	}
	if c.Repeat < 1 || c.Repeat > MaxRepeat {
		return flagErr("--repeat %d is out of range: use 1..%d", c.Repeat, MaxRepeat)
	}
	return checkRun(c.Duration, c.Warmup, c.GenCore, c.FwdCore, true)
}

// vethRun is one run's figures over its measured window.
type vethRun struct {
	sinkRx  uint64                        // frames the generator's port received back
	offered uint64                        // frames it sent
	wall    time.Duration                 // the window
	dutRx   uint64                        // frames the device under test received (its own count)
	dutDrop uint64                        // frames its receive queue dropped (pollnet: in the window, every reason; testpmd: RX-missed since start)
	drops   [engine.NumDropReasons]uint64 // pollnet's, by reason
	dutCPU  time.Duration                 // its forwarding thread's CPU time
	polls   uint64                        // its receive polls, and the empty ones (pollnet)
	empty   uint64
	busy    float64 // testpmd: 1 - empty burst share; -1 unknown
	tpRate  float64 // testpmd's own RX rate
	version string
}

// vethRig is one namespace, its veth pair and the generator on it.
type vethRig struct {
	ns   *netns.NS
	gen  *afpacket.Port
	pool *engine.Pool
	tmpl *pktgen.Template
	w    *engine.Worker
	errc chan error
	seq  uint64
	// links are deleted before the namespace (the TAP rig's).
	links []string

	// Pacing and the zero-loss trials' counting (zeroloss_veth.go).
	rate  atomic.Uint64 // the offered rate asked for, math.Float64bits; 0: as fast as it can
	paced float64       // the rate pacer holds to (the generator's goroutine's)
	pacer *pktgen.Pacer
	owed  int          // frames the pacer allowed and not yet sent, at most vethBucket
	win   seqWindow    // the generator's goroutine's
	ctl   atomic.Int32 // a winOp asked of the generator's goroutine
	ctlc  chan winMark // its answer
}

const (
	vethGen = "pn-gen"
	vethDUT = "pn-dut"
)

// newRigNS makes the rig's namespace, with no IPv6 autoconfiguration, so
// that nothing but the generator's frames is on the link.
func newRigNS() (*vethRig, error) {
	if err := netns.Usable(); err != nil {
		return nil, err
	}
	ns, err := netns.New("pnpps")
	if err != nil {
		return nil, err
	}
	r := &vethRig{ns: ns}
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
	} {
		if _, err := ns.Exec(c...); err != nil {
			return nil, errors.Join(err, r.close())
		}
	}
	return r, nil
}

// upWithoutOffloads turns off the offloads that would hand the ports frames
// beyond the MTU and brings the devices up.
func upWithoutOffloads(ns *netns.NS, devs ...string) error {
	if _, err := exec.LookPath("ethtool"); err == nil {
		for _, dev := range devs {
			if _, err := ns.Exec("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"); err != nil {
				return err
			}
		}
	}
	for _, dev := range devs {
		if _, err := ns.Exec("ip", "link", "set", dev, "up"); err != nil {
			return err
		}
	}
	return nil
}

// openGen opens the generator's port on dev and its pool, and builds the
// frames it sends to dutMAC.
func (r *vethRig) openGen(dev string, size int, dutMAC func() ([6]byte, error)) (err error) {
	if err := r.ns.Do(func() (err error) { r.gen, err = afpacket.Open(afpacket.Config{Name: dev}); return err }); err != nil {
		return err
	}
	if r.pool, err = engine.NewPool("rig-gen", 8192, 0); err != nil {
		return err
	}
	fc := pktgen.DefaultFlowConfig(size)
	if fc.DstMAC, err = dutMAC(); err != nil {
		return err
	}
	fc.SrcMAC = r.gen.Info().MAC
	r.tmpl, err = pktgen.NewTemplate(fc)
	return err
}

// newVethRig makes the namespace and the veth pair, steers each end's
// receive processing to its reader's core if steer, and opens the
// generator. It starts nothing.
func newVethRig(size, genCore, fwdCore int, steer bool) (_ *vethRig, err error) {
	r, err := newRigNS()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if _, err := r.ns.Exec("ip", "link", "add", vethGen, "type", "veth", "peer", "name", vethDUT); err != nil {
		return nil, err
	}
	if err := upWithoutOffloads(r.ns, vethGen, vethDUT); err != nil {
		return nil, err
	}
	if steer {
		if err := steerVeth(r.ns, vethDUT, fwdCore); err != nil {
			return nil, err
		}
		if err := steerVeth(r.ns, vethGen, genCore); err != nil {
			return nil, err
		}
	}
	// The device under test answers to its veth end's MAC.
	dutMAC := func() (mac [6]byte, err error) {
		err = r.ns.Do(func() error {
			p, err := afpacket.Open(afpacket.Config{Name: vethDUT, PoolSize: 64})
			if err != nil {
				return err
			}
			mac = p.Info().MAC
			return p.Close()
		})
		return mac, err
	}
	if err := r.openGen(vethGen, size, dutMAC); err != nil {
		return nil, err
	}
	return r, nil
}

// statsWait bounds the wait for a forwarder's fresh poll counts at a
// window's edge: a running worker publishes them only every so many rounds
// unless asked, and a round that waits on the kernel can be slow.
const statsWait = time.Second

// steering names where each veth end's receive processing runs.
func (c *VethConfig) steering() string {
	if c.NoSteer || c.GenCore < 0 || c.FwdCore < 0 {
		return "the sender's core"
	}
	if c.Port == PortTAP {
		return "rps on the tap's kernel side to the generator's core"
	}
	return "rps to the reader's core"
}

// steerVeth makes the kernel's receive processing of frames arriving at dev
// (the stack's and AF_PACKET's or XDP's work, which a veth otherwise does on
// the sender's core) run on core, the core of the process that reads dev:
// RPS, as a NIC's interrupt affinity would place it. Without it the
// generator's core pays for the device under test's receive path, and the
// device under test's core for the sink's. A negative core steers nothing.
func steerVeth(ns *netns.NS, dev string, core int) error {
	if core < 0 {
		return nil
	}
	var mask []string // 32-bit groups, most significant first
	for g := core / 32; g >= 0; g-- {
		w := uint32(0)
		if g == core/32 {
			w = 1 << (core % 32)
		}
		mask = append(mask, fmt.Sprintf("%08x", w))
	}
	path := fmt.Sprintf("/sys/class/net/%s/queues/rx-0/rps_cpus", dev)
	// ip netns exec mounts the namespace's own /sys, where dev is.
	if _, err := ns.Exec("sh", "-c", fmt.Sprintf("echo %s > %s", strings.Join(mask, ","), path)); err != nil {
		return fmt.Errorf("steering %s's receive processing to core %d (RPS): %w", dev, core, err)
	}
	return nil
}

// vethBucket is the most frames the paced generator owes: allowed by the
// pacer and not yet sent, because a round came late (the kernel's receive
// processing of the frames coming back runs on the generator's core) or the
// port took less than a burst. It sends them a burst a round, so that a late
// round does not lower the offered rate. At 1 Mpps it is 128 us of frames.
const vethBucket = 4 * engine.Burst

// startGen starts the generator worker: a burst out each round, as many
// frames as the pacer allows (a whole burst at rate 0), whatever comes back
// freed (the port counts it) and, while a trial's window is open, counted by
// its sequence number.
func (r *vethRig) startGen(core int) error {
	w, err := engine.NewWorker(core)
	if err != nil {
		return flagErr("--gen-core: %v", err)
	}
	r.errc = make(chan error, 1)
	r.ctlc = make(chan winMark, 1)
	r.paced = math.Float64frombits(r.rate.Load())
	r.pacer = pktgen.NewPacer(r.paced, vethBucket)
	free := func(w *engine.Worker, _ engine.QueueRef, pkts []engine.Mbuf) {
		if r.win.open {
			r.win.count(pkts)
		}
		w.Caches.FreeBulk(pkts)
	}
	gen := func(w *engine.Worker, _ int) {
		if op := r.ctl.Load(); op != 0 {
			r.ctl.Store(0)
			r.ctlc <- r.win.mark(winOp(op), r.seq)
		}
		if rate := math.Float64frombits(r.rate.Load()); rate != r.paced {
			r.paced = rate
			r.pacer = pktgen.NewPacer(rate, vethBucket)
			r.owed = 0
		}
		now := engine.Nanotime()
		r.owed = min(r.owed+r.pacer.Allow(now), vethBucket)
		k := min(r.owed, engine.Burst)
		if k == 0 {
			return
		}
		var arr [engine.Burst]engine.Mbuf
		burst := arr[:k]
		if w.Caches.AllocBulk(r.pool, burst) != nil {
			return
		}
		for _, m := range burst {
			buf, _ := m.Append(r.tmpl.Len())
			r.tmpl.Fill(buf, r.seq, now)
			r.seq++
		}
		n := r.gen.TxBurst(0, burst)
		r.owed -= n
		if n < len(burst) {
			w.Caches.FreeBulk(burst[n:])
			// The unsent frames' numbers go to the next ones, so that
			// the numbers sent are consecutive: a trial's offered
			// frames are the numbers between its marks.
			r.seq -= uint64(len(burst) - n)
		}
	}
	if err := w.Start(func(w *engine.Worker) {
		r.errc <- w.Poll(engine.PollConfig{Rx: queues(r.gen), Handler: free, Idle: engine.IdleSpin, Tick: gen})
	}); err != nil {
		return err
	}
	r.w = w
	return nil
}

// counts reads the generator port's frames sent and received back.
func (r *vethRig) counts() (tx, rx uint64) {
	return r.gen.TxStats(0).Packets, r.gen.RxStats(0).Packets
}

func (r *vethRig) close() error {
	var errs []error
	if r.w != nil {
		errs = append(errs, r.w.Stop(), <-r.errc)
		r.w.Caches.Flush()
	}
	if r.gen != nil {
		errs = append(errs, r.gen.Close())
	}
	if r.pool != nil {
		errs = append(errs, r.pool.Close())
	}
	for _, l := range r.links {
		if _, err := r.ns.Exec("ip", "link", "del", l); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.ns.Delete())
	return errors.Join(errs...)
}

// openDUT opens pollnet's port of the configured kind on the DUT end.
func (c *VethConfig) openDUT(r *vethRig) (engine.Port, error) {
	if c.Port == PortTAP {
		return openTapDUT(r)
	}
	var p engine.Port
	err := r.ns.Do(func() error {
		switch c.Port {
		case PortAFXDP:
			// Copy mode, as testpmd's force_copy=1: the same work on both sides.
			x, err := afxdp.Open(afxdp.Config{Interface: vethDUT, Bind: afxdp.BindCopy})
			if err != nil {
				return err
			}
			p = x
		default:
			a, err := afpacket.Open(afpacket.Config{Name: vethDUT})
			if err != nil {
				return err
			}
			p = a
		}
		return nil
	})
	return p, err
}

// pollnetDUT is pollnet's forwarder at work on a rig: a port of the
// configured kind on the device's end, the generator started, and a pinned
// worker forwarding (macswap) in poll mode.
type pollnetDUT struct {
	r       *vethRig
	port    engine.Port
	w       *engine.Worker
	pollErr chan error
}

// startPollnet makes a rig and starts the generator and pollnet's
// forwarder on it; on an error it releases what it made.
func (c *VethConfig) startPollnet(size int) (_ *pollnetDUT, err error) {
	r, err := c.newRig(size, false)
	if err != nil {
		return nil, err
	}
	d := &pollnetDUT{r: r}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.stop())
		}
	}()
	if d.port, err = c.openDUT(r); err != nil {
		return nil, err
	}
	if err := r.startGen(c.GenCore); err != nil {
		return nil, err
	}
	w, err := engine.NewWorker(c.FwdCore)
	if err != nil {
		return nil, flagErr("--fwd-core: %v", err)
	}
	pollErr := make(chan error, 1)
	if err := w.Start(func(w *engine.Worker) {
		pollErr <- w.Poll(engine.PollConfig{Rx: queues(d.port), Handler: nullForward, Idle: engine.IdleSpin})
	}); err != nil {
		return nil, err
	}
	d.w, d.pollErr = w, pollErr
	return d, nil
}

// stop stops the forwarder, closes its port and releases the rig.
func (d *pollnetDUT) stop() error {
	var errs []error
	if d.w != nil {
		errs = append(errs, d.w.Stop(), <-d.pollErr)
		d.w.Caches.Flush()
	}
	if d.port != nil {
		errs = append(errs, d.port.Close())
	}
	return errors.Join(append(errs, d.r.close())...)
}

// runPollnet is one pollnet run.
func (c *VethConfig) runPollnet(size, i int) (vr vethRun, err error) {
	d, err := c.startPollnet(size)
	if err != nil {
		return vr, err
	}
	defer func() { err = errors.Join(err, d.stop()) }()
	r, dut, w := d.r, d.port, d.w
	bar := c.bar(fmt.Sprintf("pps %s pollnet-pmd   %4dB run %d/%d", c.Port, size, i+1, c.Repeat), c.Warmup+c.Duration)
	sleepBar(bar, 0, c.Warmup, func() string { return "warm-up" })
	tx0, rx0 := r.counts()
	q0, st0, cpu0 := dut.RxStats(0), w.FreshStats(statsWait), w.CPUTime()
	start := time.Now()
	sleepBar(bar, c.Warmup, c.Duration, func() string {
		_, rx := r.counts()
		return fmt.Sprintf("%.2f Mpps", float64(rx-rx0)/time.Since(start).Seconds()/1e6)
	})
	tx1, rx1 := r.counts()
	q1, st1, cpu1 := dut.RxStats(0), w.FreshStats(statsWait), w.CPUTime()
	vr = vethRun{sinkRx: rx1 - rx0, offered: tx1 - tx0, wall: time.Since(start), dutRx: q1.Packets - q0.Packets, dutCPU: cpu1 - cpu0,
		polls: st1.Polls - st0.Polls, empty: st1.EmptyPolls - st0.EmptyPolls, busy: -1}
	for i := range q1.Drops {
		vr.drops[i] = q1.Drops[i] - q0.Drops[i]
		vr.dutDrop += vr.drops[i]
	}
	if bar != nil {
		bar.Done(fmt.Sprintf("%.2f Mpps", float64(vr.sinkRx)/vr.wall.Seconds()/1e6))
	}
	return vr, nil
}

// runTestpmd is one testpmd run, the generator sending throughout and the
// sink sampled, so that its rate is taken over testpmd's own window.
func (c *VethConfig) runTestpmd(peer *testpmd.Peer, size, i int) (vr vethRun, err error) {
	r, err := c.newRig(size, true)
	if err != nil {
		return vr, err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if err := r.startGen(c.GenCore); err != nil {
		return vr, err
	}
	type point struct {
		at     time.Time
		tx, rx uint64
	}
	var mu sync.Mutex
	var pts []point
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			tx, rx := r.counts()
			mu.Lock()
			pts = append(pts, point{time.Now(), tx, rx})
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f := c.ifaceForward(size)
	bar := c.bar(fmt.Sprintf("pps %s dpdk-testpmd %4dB run %d/%d", c.Port, size, i+1, c.Repeat),
		f.Warmup+max(f.Duration, testpmd.MinIntervals*testpmd.Interval))
	if bar != nil {
		bar.Update(0, "starting")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+2*(c.Warmup+c.Duration))
	defer cancel()
	var tr testpmd.IfaceRate
	// testpmd inherits the namespace of the thread that starts it.
	err = r.ns.Do(func() (err error) { tr, err = peer.ForwardIface(ctx, f); return err })
	close(stop)
	<-done
	if bar != nil {
		if err != nil {
			bar.Done("failed")
		} else {
			bar.Done(fmt.Sprintf("%.2f Mpps", tr.Rate()/1e6))
		}
	}
	if err != nil {
		return vr, err
	}
	at := func(t time.Time) (tx, rx float64, ok bool) {
		for k := 1; k < len(pts); k++ {
			a, b := pts[k-1], pts[k]
			if !t.Before(a.at) && !t.After(b.at) {
				f := 0.0
				if span := b.at.Sub(a.at); span > 0 {
					f = float64(t.Sub(a.at)) / float64(span)
				}
				return float64(a.tx) + f*float64(b.tx-a.tx), float64(a.rx) + f*float64(b.rx-a.rx), true
			}
		}
		return 0, 0, false
	}
	tx0, rx0, ok0 := at(tr.First)
	tx1, rx1, ok1 := at(tr.Last)
	if !ok0 || !ok1 || !tr.Last.After(tr.First) {
		return vr, errors.New("the sink's samples do not cover testpmd's measured window")
	}
	vr = vethRun{sinkRx: uint64(rx1 - rx0), offered: uint64(tx1 - tx0), wall: tr.Last.Sub(tr.First), dutRx: tr.Packets, dutDrop: tr.RxMissed,
		dutCPU: time.Duration(tr.FwdCPUSeconds * 1e9), busy: -1, tpRate: tr.Rate(), version: tr.Version}
	if tr.RxEmptyShare >= 0 {
		vr.busy = 1 - tr.RxEmptyShare
	}
	return vr, nil
}

func vdevOf(port string) string {
	switch port {
	case PortAFXDP:
		return testpmd.VdevAFXDP
	case PortTAP:
		return testpmd.VdevTAP
	}
	return testpmd.VdevAFPacket
}

func (c *VethConfig) bar(label string, total time.Duration) *progress.Bar {
	if c.Progress == nil {
		return nil
	}
	return progress.New(c.Progress, label, total)
}

// sleepBar sleeps d, updating bar (if any) whose clock is offset by what
// went before.
func sleepBar(bar *progress.Bar, offset, d time.Duration, status func() string) {
	from := time.Now()
	for {
		left := d - time.Since(from)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 100*time.Millisecond))
		if bar != nil {
			bar.Update(offset+time.Since(from), status())
		}
	}
}

// peer is the testpmd to run, or why none can.
func (c *VethConfig) peer() (*testpmd.Peer, string) {
	if c.Testpmd != nil {
		return c.Testpmd, c.Testpmd.Missing()
	}
	p := &testpmd.Peer{}
	if m := p.Missing(); m != "" {
		return p, m
	}
	if c.FwdCore == engine.AnyCore || c.GenCore == engine.AnyCore {
		return p, "testpmd's lcores need pinned cores (--gen-core, --fwd-core)"
	}
	p.Lcores = fmt.Sprintf("%d,%d", c.GenCore, c.FwdCore)
	return p, ""
}

// RunVeth runs the scenario once per frame size.
func RunVeth(cfg VethConfig) ([]VethResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer raiseProcs(3)()
	var out []VethResult
	for _, size := range cfg.Sizes {
		r, err := cfg.runSize(size)
		if err != nil {
			return out, fmt.Errorf("pps %s %d bytes: %w", cfg.Port, size, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// afxdpRest is the pause before an AF_XDP run, after the last one released
// its queue (DESIGN.md: a queue just released may refuse a bind).
const afxdpRest = 2 * time.Second

func (c *VethConfig) runSize(size int) (VethResult, error) {
	peer, whyNot := c.peer()
	var ours, theirs []vethRun
	for i := 0; i < c.Repeat; i++ {
		if c.Port == PortAFXDP && i > 0 {
			time.Sleep(afxdpRest)
		}
		r, err := c.runPollnet(size, i)
		if err != nil {
			return VethResult{}, err
		}
		ours = append(ours, r)
		if whyNot != "" {
			continue
		}
		if c.Port == PortAFXDP {
			time.Sleep(afxdpRest)
		}
		t, err := c.runTestpmd(peer, size, i)
		if err != nil {
			whyNot = err.Error()
			continue
		}
		theirs = append(theirs, t)
	}
	procs := runtime.GOMAXPROCS(0)
	base := func(path string) result.Scenario {
		sc := result.Scenario{Name: "pps", Path: path, Port: c.Port, Metric: "rx_pps", Unit: "packets/s",
			Knobs: map[string]any{"size": size, "fwd": testpmd.ModeMacswap, "queues": 1, "burst": engine.Burst,
				"link": c.link(), "generator": "pollnet pktgen on afpacket", "duration_s": c.Duration.Seconds(),
				"rx_steering": c.steering()},
			Roles: map[string]int{"dut": c.FwdCore, "generator": c.GenCore}, GOMAXPROCS: procs, WarmupS: c.Warmup.Seconds()}
		if c.Port == PortAFXDP {
			sc.Knobs["bind"] = "copy"
		}
		return sc
	}
	res := VethResult{Port: c.Port, Size: size, Pollnet: base("pollnet-pmd"), Testpmd: base(testpmd.Path)}
	if err := fillVeth(&res.Pollnet, ours); err != nil {
		return res, err
	}
	for k, v := range peer.IfaceKnobs(c.ifaceForward(size)) {
		if _, set := res.Testpmd.Knobs[k]; !set {
			res.Testpmd.Knobs[k] = v
		}
	}
	if whyNot != "" {
		res.Testpmd.Skipped = whyNot
	} else {
		if len(theirs) > 0 && theirs[0].version != "" {
			res.Testpmd.Knobs["dpdk"] = theirs[0].version
		}
		res.Testpmd.Knobs["dut_busy_from"] = "1 - empty RX bursts (--record-burst-stats) over the whole forwarding run"
		if err := fillVeth(&res.Testpmd, theirs); err != nil {
			return res, err
		}
	}
	if a, b := res.Pollnet, res.Testpmd; b.Skipped == "" && b.Median > 0 {
		res.Pollnet.Extra["ratio_vs_testpmd"] = a.Median / b.Median
	}
	return res, nil
}

// fillVeth makes a scenario's figures from its runs.
func fillVeth(sc *result.Scenario, rs []vethRun) error {
	var sum vethRun
	var shares, tpRates []float64
	busyN := 0
	busySum := 0.0
	for _, r := range rs {
		sc.Samples = append(sc.Samples, float64(r.sinkRx)/r.wall.Seconds())
		shares = append(shares, r.dutCPU.Seconds()/r.wall.Seconds())
		if r.tpRate > 0 {
			tpRates = append(tpRates, r.tpRate)
		}
		sum.sinkRx += r.sinkRx
		sum.offered += r.offered
		sum.wall += r.wall
		sum.dutRx += r.dutRx
		sum.dutDrop += r.dutDrop
		for i, d := range r.drops {
			sum.drops[i] += d
		}
		sum.dutCPU += r.dutCPU
		sum.polls += r.polls
		sum.empty += r.empty
		if r.busy >= 0 {
			busySum += r.busy
			busyN++
		}
	}
	sc.Repeat = len(rs)
	if err := sc.Summarise(); err != nil {
		return err
	}
	sc.CPUSeconds = sum.dutCPU.Seconds()
	sc.Counters = map[string]uint64{"sink_rx_packets": sum.sinkRx, "offered_packets": sum.offered, "dut_rx_packets": sum.dutRx, "dut_rx_dropped": sum.dutDrop}
	for i, d := range sum.drops {
		if d > 0 {
			sc.Counters["dut_rx_dropped_"+engine.DropReason(i).String()] = d
		}
	}
	sc.Extra = map[string]float64{"mpps_median": sc.Median / 1e6, "offered_pps": float64(sum.offered) / sum.wall.Seconds(),
		"dut_rx_pps": float64(sum.dutRx) / sum.wall.Seconds(), "wall_seconds": sum.wall.Seconds()}
	if share, err := result.Summarise(shares); err == nil {
		sc.Extra["dut_cpu_share"] = share.Median
	}
	if len(tpRates) > 0 {
		if s, err := result.Summarise(tpRates); err == nil {
			sc.Extra["testpmd_rx_pps"] = s.Median
		}
	}
	if sum.dutRx > 0 && sum.dutCPU > 0 {
		// The forwarding thread's CPU time over the frames it received.
		sc.Extra["dut_cpu_ns_per_packet"] = float64(sum.dutCPU.Nanoseconds()) / float64(sum.dutRx)
	}
	if sum.offered > 0 {
		// Frames the generator sent that never reached the device under
		// test: dropped on the way in, by its ring or the kernel before it.
		sc.Extra["dut_input_loss"] = 1 - min(1, float64(sum.dutRx)/float64(sum.offered))
	}
	switch {
	case sum.polls > 0:
		b := 1 - float64(sum.empty)/float64(sum.polls)
		sc.DUTBusy = &b
	case busyN > 0:
		b := busySum / float64(busyN)
		sc.DUTBusy = &b
	}
	return nil
}

// InputLossLimit is the share of offered frames lost on the way into the
// device under test above which the device's side, not the generator, set
// the rate.
const InputLossLimit = 0.02

// vethLimited says whether sc's device side set its rate: it was busy, or
// it lost frames on the way in (with the kernel's receive processing on the
// poller's core, the poller may wait while that falls behind, so dut_busy
// alone would miss it).
func vethLimited(sc result.Scenario) bool {
	return busy(sc) >= BusyThreshold || sc.Extra["dut_input_loss"] >= InputLossLimit
}

// vethVerdict says which side set each rate, and so whether the ratio
// compares the forwarders.
func vethVerdict(a, b result.Scenario) string {
	figures := fmt.Sprintf("input loss %.1f%% and %.1f%%, dut_busy %.2f and %.2f",
		100*a.Extra["dut_input_loss"], 100*b.Extra["dut_input_loss"], busy(a), busy(b))
	switch la, lb := vethLimited(a), vethLimited(b); {
	case la && lb:
		return "both device sides set their rates (" + figures + ")"
	case !la && !lb:
		return "the generator set both rates (" + figures + "): not a forwarder comparison"
	case la:
		return "only pollnet's side was the limit (" + figures + "): testpmd's rate is the generator's, so the ratio is an upper bound"
	default:
		return "only testpmd's side was the limit (" + figures + "): pollnet's rate is the generator's, so the ratio is a lower bound"
	}
}

// FormatVeth prints both paths per frame size and the ratio.
func FormatVeth(w io.Writer, rs []VethResult) {
	fmt.Fprintf(w, "%-9s %-13s %6s %9s %19s %9s %9s %6s %5s\n", "port", "path", "size", "Mpps", "min..max", "offered", "cpu ns/p", "busy", "runs")
	row := func(port string, sc result.Scenario, size int) {
		if sc.Skipped != "" {
			fmt.Fprintf(w, "%-9s %-13s %6d skipped: %s\n", port, sc.Path, size, sc.Skipped)
			return
		}
		fmt.Fprintf(w, "%-9s %-13s %6d %9.3f %8.3f..%-9.3f %9.3f %9.1f %6.2f %5d\n", port, sc.Path, size, sc.Median/1e6,
			sc.Min/1e6, sc.Max/1e6, sc.Extra["offered_pps"]/1e6, sc.Extra["dut_cpu_ns_per_packet"], busy(sc), sc.Repeat)
	}
	for _, r := range rs {
		row(r.Port, r.Pollnet, r.Size)
		row(r.Port, r.Testpmd, r.Size)
	}
	for _, r := range rs {
		a, b := r.Pollnet, r.Testpmd
		if b.Skipped != "" || b.Median <= 0 {
			continue
		}
		link, _ := a.Knobs["link"].(string)
		line := fmt.Sprintf("pollnet/testpmd on %s at %d B, macswap on a %s: %.2fx (%.3f vs %.3f Mpps at the sink)",
			r.Port, r.Size, link, a.Median/b.Median, a.Median/1e6, b.Median/1e6)
		if x, y := a.Extra["dut_cpu_ns_per_packet"], b.Extra["dut_cpu_ns_per_packet"]; x > 0 && y > 0 {
			line += fmt.Sprintf("; CPU per packet %.1f vs %.1f ns, %.2fx", x, y, x/y)
		}
		line += " -- " + vethVerdict(a, b)
		fmt.Fprintln(w, line)
	}
}

// vethRunOverhead is a run's namespace, veth pair and ports being made and
// removed.
const vethRunOverhead = 500 * time.Millisecond

// vethJobs is the pps scenario on a veth pair (--port afpacket or afxdp)
// or a TAP (--port tap):
// 64-byte frames, or the sizes given on the command line when run alone.
func (o Options) vethJobs(single bool) ([]Job, error) {
	c := VethConfig{Port: o.Port, Sizes: []int{64}, Duration: o.Duration, Warmup: o.Warmup, Repeat: max(o.Repeat, 1),
		GenCore: o.GenCore, FwdCore: o.FwdCore, Progress: o.Progress, NoSteer: o.NoRxSteer}
	if single && o.SizesSet {
		c.Sizes = o.Sizes
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := len(c.Sizes) * c.Repeat
	ours := c.Warmup + c.Duration + vethRunOverhead
	theirs := testpmdStartup + vethRunOverhead + c.Warmup + max(c.Duration, testpmd.MinIntervals*testpmd.Interval)
	if c.Port == PortAFXDP {
		ours += afxdpRest
		theirs += afxdpRest
	}
	est := Estimate{Runs: 2 * n, Time: time.Duration(n) * (ours + theirs), Max: time.Duration(n) * (ours + 2*theirs)}
	return []Job{{Name: "pps-" + c.Port, Estimate: est, run: func() ([]result.Scenario, func(io.Writer), error) {
		rs, err := RunVeth(c)
		if err != nil {
			return nil, nil, err
		}
		var scs []result.Scenario
		for _, r := range rs {
			scs = append(scs, r.Pollnet, r.Testpmd)
		}
		return scs, func(w io.Writer) { FormatVeth(w, rs) }, nil
	}}}, nil
}

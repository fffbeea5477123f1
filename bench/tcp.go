package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/pollnet/pollnet/compare"
	"github.com/pollnet/pollnet/compare/kernel"
	"github.com/pollnet/pollnet/compare/workload"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/result"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack"
	"github.com/pollnet/pollnet/stack/transport/tcp"
)

// TCPConfig is the TCP scenario: two stack instances joined by a wire pair
// whose ports and interfaces have the MTU under test, a client application
// on one and a server application on the other, on TCP connections with
// CUBIC. It measures bulk transfer (tcp_stream: goodput the server
// application read, over 1 or more parallel connections) and connection
// rate (tcp_crr: a fresh connection per 64-byte request and response, the
// server closing first, 8 in flight) — the same work, under the same names
// and knobs, as the kernel and gVisor peers, which run in the same rounds
// (compare.Peer, one run each per round).
type TCPConfig struct {
	Workloads []string // "tcp_stream", "tcp_crr"
	MTUs      []int    // the wire's and the interfaces' MTU; a scenario each
	Streams   []int    // tcp_stream's parallel connections; a scenario each
	Modes     []Mode
	Duration  time.Duration // measured time of each run
	Warmup    time.Duration // unmeasured start of each run
	// Repeat is the number of rounds, default 5. A round is one
	// independent run of every scenario on every path, pollnet's modes
	// and the peers interleaved (pmd, napi, kernel, gvisor, pmd, ...), so
	// that a drift of the machine touches every path alike.
	Repeat     int
	ClientCore int
	ServerCore int
	Softirq    engine.SoftirqConfig
	// NoCsumOffload turns off the wire pair's checksum offload, on by
	// default: the kernel peer over veth computes no TCP or UDP checksum
	// between its namespaces (veth keeps CHECKSUM_PARTIAL end to end), so
	// with offload pollnet does the same work. result.json records it as
	// the knob csum_offload. A veth port offers no offload, so there the
	// stacks sum every segment, and the knob says so.
	NoCsumOffload bool
	// Port is the link's kind: PortWire (or ""), or PortAFPacket or
	// PortAFXDP for a veth pair with a port of that kind on each end
	// (stackport.go). An MTU the kind cannot carry is a skipped scenario.
	Port string
	// Peers run beside pollnet, once per round with Repeat 1, their
	// scenarios pooled across rounds. A peer that skips a scenario (no
	// root, a build that failed) is not asked again in later rounds.
	Peers    []compare.Peer
	Progress io.Writer
	Live     func(*Live)
	prof     *profiler // a CPU profile of each pollnet scenario's first window
}

// Workload names and fixed settings of the TCP scenario, the same as the
// peers' (compare/kernel).
const (
	TCPStream = kernel.TCPStream
	TCPCRR    = kernel.TCPCRR

	tcpCC         = kernel.DefaultCC
	tcpWriteBytes = 128 << 10 // bytes per write: iperf3's default, as the kernel peer writes
	tcpServerPort = 5001
	crrServerPort = 5002
	crrInFlight   = kernel.CRRInFlight
	crrRequest    = kernel.CRRRequestBytes
	crrResponse   = kernel.CRRResponseBytes
	crrIOTimeout  = time.Second // bounds every dial, read and write of a transaction
	crrMaxErrors  = 1000        // failed transactions in a row that end a loop
	// tcpMaxMTU is the largest MTU the scenario takes: the wire's default,
	// the largest the peers are compared at.
	tcpMaxMTU = wire.DefaultMTU
	tcpMinMTU = 576
	// tcpPortPool and tcpStackPool are the mbufs of each wire port's
	// receive pool and of each stack's own pool: four streams' receive
	// and send buffers (tcp_rmem and tcp_wmem at most 6 and 4 MiB each)
	// fit, so a pool running dry never sets the rate.
	tcpPortPool  = 32768
	tcpStackPool = 32768
)

// crrClientPorts is the client stack's ephemeral range for tcp_crr: every
// unprivileged port, so that a run reuses a port (and meets the server's
// TIME-WAIT entry for it, which a newer timestamp gets past) as late as it
// can.
var crrClientPorts = stack.PortRange{Low: 1024, High: 65535}

// DefaultTCPMTUs and DefaultTCPStreams are the scenario's defaults: Ethernet's
// MTU and the wire's jumbo one; one and four connections.
var (
	DefaultTCPMTUs    = []int{1500, 9000}
	DefaultTCPStreams = []int{1, 4}
)

// Validate refuses values the scenario cannot run with.
func (c *TCPConfig) Validate() error {
	if len(c.Workloads) == 0 {
		return flagErr("tcp: no workload (tcp_stream, tcp_crr)")
	}
	for _, w := range c.Workloads {
		if w != TCPStream && w != TCPCRR {
			return flagErr("tcp: unknown workload %q: use tcp_stream or tcp_crr", w)
		}
	}
	if len(c.MTUs) == 0 {
		return flagErr("--mtu: give at least one MTU (%d..%d)", tcpMinMTU, tcpMaxMTU)
	}
	for _, m := range c.MTUs {
		if m < tcpMinMTU || m > tcpMaxMTU {
			return flagErr("--mtu %d is out of range: use %d..%d", m, tcpMinMTU, tcpMaxMTU)
		}
	}
	if slices.Contains(c.Workloads, TCPStream) && len(c.Streams) == 0 {
		return flagErr("--streams: give at least one count of parallel connections (1..%d)", workload.MaxStreams)
	}
	for _, n := range c.Streams {
		if n < 1 || n > workload.MaxStreams {
			return flagErr("--streams %d is out of range: use 1..%d", n, workload.MaxStreams)
		}
	}
	if len(c.Modes) == 0 {
		return flagErr("--mode: give pmd, napi or pmd,napi")
	}
	if err := checkStackPort("tcp", c.Port); err != nil {
		return err
	}
	return checkRun(c.Duration, c.Warmup, c.ClientCore, c.ServerCore, slices.Contains(c.Modes, ModePMD))
}

// port is the link's kind, the wire when none is given.
func (c *TCPConfig) port() string {
	if c.Port == "" {
		return PortWire
	}
	return c.Port
}

func (c *TCPConfig) repeat() int {
	if c.Repeat <= 0 {
		return 5
	}
	return c.Repeat
}

// tcpCase is one pollnet scenario: a workload at an MTU, with a stream count
// for tcp_stream (0 for tcp_crr).
type tcpCase struct {
	workload string
	mtu      int
	streams  int
}

func (k tcpCase) String() string {
	if k.workload == TCPStream {
		return fmt.Sprintf("%s mtu %d streams %d", k.workload, k.mtu, k.streams)
	}
	return fmt.Sprintf("%s mtu %d", k.workload, k.mtu)
}

// short names the case's streams (s1) or connections in flight (c8).
func (k tcpCase) short() string {
	if k.workload == TCPStream {
		return fmt.Sprintf("s%d", k.streams)
	}
	return fmt.Sprintf("c%d", crrInFlight)
}

// cases lists the pollnet scenarios at one MTU, in the order they run.
func (c *TCPConfig) cases(mtu int) []tcpCase {
	var out []tcpCase
	for _, w := range c.Workloads {
		if w == TCPStream {
			for _, n := range c.Streams {
				out = append(out, tcpCase{w, mtu, n})
			}
		} else {
			out = append(out, tcpCase{w, mtu, 0})
		}
	}
	return out
}

// runs is the number of runs of pollnet's paths (the peers' are not
// counted: they depend on what is installed).
func (c *TCPConfig) runs() int {
	return len(c.MTUs) * len(c.cases(0)) * len(c.Modes) * c.repeat()
}

var (
	tcpClientAddr = netip.MustParsePrefix("198.18.2.1/24")
	tcpServerAddr = netip.MustParsePrefix("198.18.2.2/24")
)

// tcpRig is the two stacks of one run over their link.
type tcpRig struct {
	mode           Mode
	mtu            int
	link           *stackLink
	client, server *stack.Stack
}

func newTCPRig(cfg *TCPConfig, mode Mode, mtu int) (*tcpRig, error) {
	r := &tcpRig{mode: mode, mtu: mtu}
	var err error
	if r.link, err = newStackLink(stackLinkConfig{kind: cfg.port(), names: [2]string{"tcp-client", "tcp-server"}, mtu: mtu,
		poolSize: tcpPortPool, csumOffload: !cfg.NoCsumOffload}); err != nil {
		return nil, err
	}
	mk := func(name string, port engine.Port, addr netip.Prefix, ports stack.PortRange) (*stack.Stack, error) {
		return stack.New(stack.Config{Name: name, Interfaces: []stack.Interface{{Port: port, Addr: addr, MTU: mtu}},
			PoolSize: tcpStackPool, LocalPortRange: ports, TCP: stack.TCPConfig{Congestion: tcpCC}})
	}
	if r.client, err = mk("tcp-client", r.link.ports[0], tcpClientAddr, crrClientPorts); err != nil {
		r.close()
		return nil, err
	}
	if r.server, err = mk("tcp-server", r.link.ports[1], tcpServerAddr, stack.PortRange{}); err != nil {
		r.close()
		return nil, err
	}
	smode := stack.Mode(mode)
	err = r.server.Start(smode, cfg.ServerCore, cfg.Softirq)
	if err == nil {
		err = r.client.Start(smode, cfg.ClientCore, cfg.Softirq)
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *tcpRig) close() error {
	return closeStackPair(r.link, r.client, r.server)
}

// live is what `pollnet stat` shows of the run.
func (r *tcpRig) live() *Live {
	return stackPairLive(r.mode, r.mtu, r.link, r.client, r.server)
}

// tcpCounterNames are the TCP counters (Linux's names) each scenario keeps
// of both stacks over the measured window, as client_NAME and server_NAME.
var tcpCounterNames = []string{"InSegs", "OutSegs", "RetransSegs", "TCPSackRecovery", "TCPLossProbes", "TCPTimeouts",
	"DelayedACKs", "TCPOFOQueue", "ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "OutRsts",
	"ListenOverflows", "TCPTimeWaitOverflow", "TW"}

func tcpCounterOf(c *stack.TCPCounters, name string) uint64 {
	switch name {
	case "InSegs":
		return c.InSegs
	case "OutSegs":
		return c.OutSegs
	case "RetransSegs":
		return c.RetransSegs
	case "TCPSackRecovery":
		return c.TCPSackRecovery
	case "TCPLossProbes":
		return c.TCPLossProbes
	case "TCPTimeouts":
		return c.TCPTimeouts
	case "DelayedACKs":
		return c.DelayedACKs
	case "TCPOFOQueue":
		return c.TCPOFOQueue
	case "ActiveOpens":
		return c.ActiveOpens
	case "PassiveOpens":
		return c.PassiveOpens
	case "AttemptFails":
		return c.AttemptFails
	case "EstabResets":
		return c.EstabResets
	case "OutRsts":
		return c.OutRsts
	case "ListenOverflows":
		return c.ListenOverflows
	case "TCPTimeWaitOverflow":
		return c.TCPTimeWaitOverflow
	case "TW":
		return c.TW
	}
	return 0
}

// stackCounters are the run's stack counters: each side's TCP counters
// (tcpCounterNames), its shards' frames in and out and transmit drops, the
// applications' parks and wake-ups, and its port's receive drops: rx_missed
// (the ring full) and rx_nombuf (the receive pool dry).
func (r *tcpRig) stackCounters() map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range []struct {
		name string
		st   *stack.Stack
		port engine.Port
	}{{"client", r.client, r.link.ports[0]}, {"server", r.server, r.link.ports[1]}} {
		tc := s.st.Stats().TCP
		for _, n := range tcpCounterNames {
			m[s.name+"_"+n] = tcpCounterOf(&tc, n)
		}
		for _, sh := range s.st.ShardStats() {
			p := fmt.Sprintf("%s_shard%d_", s.name, sh.Shard)
			m[p+"rx_frames"] = sh.RxFrames
			m[p+"tx_frames"] = sh.TxFrames
			m[p+"tx_dropped"] = sh.TxDropped
		}
		sc := s.st.SocketCounters()
		m[s.name+"_parks"] = sc.Parks.Load()
		m[s.name+"_wakeups"] = sc.Wakeups.Load()
		for q := range s.port.Info().RxQueues {
			st := s.port.RxStats(q)
			m[s.name+"_rx_missed"] += st.Drops[engine.DropRingFull]
			m[s.name+"_rx_nombuf"] += st.Drops[engine.DropNoMbuf]
		}
	}
	return m
}

// tcpApp is one run's applications: tcp_stream's writers and readers, or
// tcp_crr's client and server loops.
type tcpApp interface {
	count() uint64               // bytes read (stream) or transactions (crr)
	counters() map[string]uint64 // the applications' own tallies
	stop() error                 // ends the load, waits for it, reports what failed
}

// tcpFlow is one stream's two ends and their tallies, each on its own
// cache line: flows run on different cores.
type tcpFlow struct {
	cl, srv  *stack.TCPConn
	received atomic.Uint64
	_        [56]byte
	sent     atomic.Uint64
	_        [56]byte
	werr     error // the writer's failure, if any
	rerr     error // the reader's failure, if any
}

// tcpStreamApp is tcp_stream's applications: per connection one goroutine
// writing 128 KiB at a time on the client stack and one reading on the
// server stack.
type tcpStreamApp struct {
	flows    []*tcpFlow
	stopping atomic.Bool
	writers  sync.WaitGroup
	readers  sync.WaitGroup
}

// startStream opens the connections (each checked to run CUBIC) and starts
// the load; it stops by itself at deadline.
func startStream(r *tcpRig, streams int, deadline time.Time) (*tcpStreamApp, error) {
	o := stack.TCPOptions{Congestion: tcpCC}
	ln, err := r.server.ListenTCPWith(netip.AddrPortFrom(tcpServerAddr.Addr(), tcpServerPort), o)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	a := &tcpStreamApp{}
	fail := func(err error) (*tcpStreamApp, error) {
		for _, f := range a.flows {
			f.cl.Close()
			f.srv.Close()
		}
		return nil, err
	}
	for i := range streams {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := r.client.DialTCPWith(ctx, netip.AddrPort{}, ln.AddrPort(), o)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("connection %d: dial: %w", i, err))
		}
		ln.SetDeadline(time.Now().Add(5 * time.Second))
		srv, err := ln.AcceptTCP()
		if err != nil {
			cl.Close()
			return fail(fmt.Errorf("connection %d: accept: %w", i, err))
		}
		a.flows = append(a.flows, &tcpFlow{cl: cl, srv: srv})
		for _, c := range []*stack.TCPConn{cl, srv} {
			if got := c.Info().Congestion; got != tcpCC {
				return fail(fmt.Errorf("connection %d runs congestion control %q, want %q", i, got, tcpCC))
			}
		}
	}
	for _, f := range a.flows {
		a.readers.Go(func() { f.read(deadline.Add(5 * time.Second)) })
		a.writers.Go(func() { f.write(&a.stopping, deadline) })
	}
	return a, nil
}

// write writes until stopped (a write deadline in the past wakes a write
// blocked on a full send buffer) or the deadline.
func (f *tcpFlow) write(stopping *atomic.Bool, deadline time.Time) {
	buf := make([]byte, tcpWriteBytes)
	f.cl.SetWriteDeadline(deadline)
	for !stopping.Load() {
		n, err := f.cl.Write(buf)
		f.sent.Add(uint64(n))
		if err != nil {
			if !stopping.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
				f.werr = fmt.Errorf("write: %w", err)
			}
			return
		}
	}
}

// read reads to the end of the stream, or until the deadline.
func (f *tcpFlow) read(deadline time.Time) {
	buf := make([]byte, tcpWriteBytes)
	f.srv.SetReadDeadline(deadline)
	for {
		n, err := f.srv.Read(buf)
		f.received.Add(uint64(n))
		if err == io.EOF {
			return
		}
		if err != nil {
			f.rerr = fmt.Errorf("read: %w", err)
			return
		}
	}
}

func (a *tcpStreamApp) count() uint64 {
	var n uint64
	for _, f := range a.flows {
		n += f.received.Load()
	}
	return n
}

func (a *tcpStreamApp) counters() map[string]uint64 {
	var sent, received uint64
	for _, f := range a.flows {
		sent += f.sent.Load()
		received += f.received.Load()
	}
	return map[string]uint64{"bytes_sent": sent, "bytes_received": received}
}

// stop ends the writers, half-closes each connection so its reader reads
// to the end, and closes everything.
func (a *tcpStreamApp) stop() error {
	a.stopping.Store(true)
	for _, f := range a.flows {
		f.cl.SetWriteDeadline(time.Now())
	}
	a.writers.Wait()
	for _, f := range a.flows {
		f.cl.CloseWrite()
	}
	a.readers.Wait()
	var errs []error
	for i, f := range a.flows {
		defer f.cl.Close()
		defer f.srv.Close()
		if f.werr != nil || f.rerr != nil {
			// Both ends' state, for a stall's post-mortem.
			errs = append(errs, fmt.Errorf("connection %d: %w (sent %d, read %d; client %+v; server %+v)", i, errors.Join(f.werr, f.rerr),
				f.sent.Load(), f.received.Load(), f.cl.Info(), f.srv.Info()))
		}
	}
	return errors.Join(errs...)
}

// crrTally is one tcp_crr loop's counts, on its own cache line.
type crrTally struct {
	n      atomic.Uint64 // transactions completed (client) or served (server)
	errs   atomic.Uint64 // transactions given up on
	accept atomic.Uint64 // connections accepted (server)
	_      [40]byte
}

// tcpCRRApp is tcp_crr's applications: crrInFlight client loops on the
// client stack, crrInFlight server loops on one listener on the server
// stack.
type tcpCRRApp struct {
	r        *tcpRig
	ln       *stack.TCPListener
	clients  [crrInFlight]crrTally
	servers  [crrInFlight]crrTally
	stopping atomic.Bool
	cwg, swg sync.WaitGroup
	errs     [2 * crrInFlight]error
}

func startCRR(r *tcpRig, deadline time.Time) (*tcpCRRApp, error) {
	o := stack.TCPOptions{Congestion: tcpCC}
	ln, err := r.server.ListenTCPWith(netip.AddrPortFrom(tcpServerAddr.Addr(), crrServerPort), o)
	if err != nil {
		return nil, err
	}
	a := &tcpCRRApp{r: r, ln: ln}
	for i := range crrInFlight {
		a.swg.Go(func() { a.errs[i] = a.serve(&a.servers[i]) })
		a.cwg.Go(func() { a.errs[crrInFlight+i] = a.client(&a.clients[i], deadline, i == 0) })
	}
	return a, nil
}

// client runs transactions one after another until stopped or the
// deadline: connect, write the request, read the response and then end of
// stream, close. The first loop checks its first connection's congestion
// control.
func (a *tcpCRRApp) client(t *crrTally, deadline time.Time, check bool) error {
	req, resp := make([]byte, crrRequest), make([]byte, crrResponse+1)
	to := a.ln.AddrPort()
	o := stack.TCPOptions{Congestion: tcpCC}
	inRow := 0
	for !a.stopping.Load() && time.Now().Before(deadline) {
		err := crrTransaction(a.r.client, to, o, req, resp, check)
		if err != nil {
			if a.stopping.Load() {
				return nil
			}
			if check {
				return err // the congestion control, or the first connection
			}
			t.errs.Add(1)
			if inRow++; inRow > crrMaxErrors {
				return fmt.Errorf("%d transactions in a row failed: %w", inRow, err)
			}
			continue
		}
		check, inRow = false, 0
		t.n.Add(1)
	}
	return nil
}

func crrTransaction(s *stack.Stack, to netip.AddrPort, o stack.TCPOptions, req, resp []byte, check bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), crrIOTimeout)
	c, err := s.DialTCPWith(ctx, netip.AddrPort{}, to, o)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if check {
		if got := c.Info().Congestion; got != tcpCC {
			return fmt.Errorf("congestion control is %q, want %q", got, tcpCC)
		}
	}
	c.SetDeadline(time.Now().Add(crrIOTimeout))
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if _, err := io.ReadFull(c, resp[:crrResponse]); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	// The server has closed: the next read is end of stream, nothing more.
	if n, err := c.Read(resp); n != 0 || err != io.EOF {
		return fmt.Errorf("read end of stream: %d bytes, %v", n, err)
	}
	return nil
}

// serve accepts and answers connections until the listener closes: read
// the whole request, write the response, close first (TIME-WAIT is ours).
func (a *tcpCRRApp) serve(t *crrTally) error {
	req, resp := make([]byte, crrRequest), make([]byte, crrResponse)
	inRow := 0
	for {
		c, err := a.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		t.accept.Add(1)
		c.SetDeadline(time.Now().Add(crrIOTimeout))
		_, err = io.ReadFull(c, req)
		if err == nil {
			_, err = c.Write(resp)
		}
		c.Close()
		if err != nil {
			if a.stopping.Load() {
				continue
			}
			t.errs.Add(1)
			if inRow++; inRow > crrMaxErrors {
				return fmt.Errorf("%d connections in a row failed: %w", inRow, err)
			}
			continue
		}
		inRow = 0
		t.n.Add(1)
	}
}

func (a *tcpCRRApp) count() uint64 {
	var n uint64
	for i := range a.clients {
		n += a.clients[i].n.Load()
	}
	return n
}

func (a *tcpCRRApp) counters() map[string]uint64 {
	m := map[string]uint64{}
	for i := range crrInFlight {
		m["transactions"] += a.clients[i].n.Load()
		m["client_errors"] += a.clients[i].errs.Load()
		m["served"] += a.servers[i].n.Load()
		m["server_errors"] += a.servers[i].errs.Load()
		m["accepted"] += a.servers[i].accept.Load()
	}
	return m
}

func (a *tcpCRRApp) stop() error {
	a.stopping.Store(true)
	a.cwg.Wait()
	a.ln.Close()
	a.swg.Wait()
	var errs []error
	for i, err := range a.errs {
		if err != nil {
			side := "server"
			if i >= crrInFlight {
				side, i = "client", i-crrInFlight
			}
			errs = append(errs, fmt.Errorf("%s %d: %w", side, i, err))
		}
	}
	return errors.Join(errs...)
}

// tcpRun is what one run measured over its measured window.
type tcpRun struct {
	rate     float64 // bits/s read, or transactions/s: the run's sample
	total    uint64  // bytes read, or transactions, over the window
	cpu      time.Duration
	wall     time.Duration
	counters map[string]uint64
	csum     bool // the ports filled the checksums (the link's offload)
}

// runTCPOnce is one independent run of a pollnet scenario: fresh stacks
// and connections, a warm-up, one measured window, everything torn down.
// Its counters are over the window, but for time_wait_server and
// time_wait_client (tcp_crr): the TIME-WAIT entries each stack holds at the
// end of the run.
func runTCPOnce(cfg *TCPConfig, k tcpCase, mode Mode, label string) (tcpRun, error) {
	r, err := newTCPRig(cfg, mode, k.mtu)
	if err != nil {
		return tcpRun{}, err
	}
	run, err := measureTCP(cfg, r, k, mode, label)
	run.csum = r.link.csumOffload()
	if cerr := r.close(); cerr != nil && err == nil {
		err = fmt.Errorf("after the run: %w", cerr)
	}
	return run, err
}

func measureTCP(cfg *TCPConfig, r *tcpRig, k tcpCase, mode Mode, label string) (tcpRun, error) {
	// The load stops by itself a while after the window should have
	// closed, however late the sampler is.
	deadline := time.Now().Add(cfg.Warmup + cfg.Duration + 5*time.Second)
	var a tcpApp
	var err error
	if k.workload == TCPStream {
		a, err = startStream(r, k.streams, deadline)
	} else {
		a, err = startCRR(r, deadline)
	}
	if err != nil {
		return tcpRun{}, err
	}
	if cfg.Live != nil {
		cfg.Live(r.live())
	}
	snap := func() map[string]uint64 {
		m := r.stackCounters()
		maps.Copy(m, a.counters())
		return m
	}
	var cpu0, cpu1 time.Duration
	var before, after map[string]uint64
	stopProf := func() {}
	sm := sampling{
		Progress: cfg.Progress, Label: fmt.Sprintf("%-10s %-4s mtu %4d %s %s", k.workload, mode, k.mtu, k.short(), label),
		Warmup: cfg.Warmup, Duration: cfg.Duration, Repeat: 1, Count: a.count,
		Avoid: []int{cfg.ServerCore},
		Measuring: func() {
			stopProf = cfg.prof.start(fmt.Sprintf("%s/pollnet-%s/mtu%d/streams%d", k.workload, mode, k.mtu, k.streams))
			cpu0 = CPUTime()
			before = snap()
		},
		Measured: func() {
			cpu1 = CPUTime()
			after = snap()
		},
		Status: func(rate, _ float64) string {
			if k.workload == TCPStream {
				return fmt.Sprintf("%.3f Gbit/s", rate*8/1e9)
			}
			return fmt.Sprintf("%.0f connections/s", rate)
		},
	}.run()
	run := tcpRun{cpu: cpu1 - cpu0, wall: sm.Wall, total: sm.Total, counters: after}
	stopProf()
	for k, v := range run.counters {
		run.counters[k] = v - min(v, before[k])
	}
	if len(sm.Rates) > 0 {
		run.rate = sm.Rates[0]
	}
	if k.workload == TCPStream {
		run.rate *= 8
	}
	err = a.stop()
	if cfg.Live != nil {
		cfg.Live(nil)
	}
	if k.workload == TCPCRR {
		_, srv := r.server.TCPConns()
		_, cl := r.client.TCPConns()
		run.counters["time_wait_server"], run.counters["time_wait_client"] = uint64(srv), uint64(cl)
	}
	if sm.Bar != nil {
		sm.Bar.Done(fmt.Sprintf("%.4g/s", run.rate))
	}
	if err != nil {
		return run, err
	}
	if run.total == 0 {
		return run, fmt.Errorf("nothing %s in the %v window", map[string]string{TCPStream: "read", TCPCRR: "completed"}[k.workload], sm.Wall)
	}
	return run, nil
}

// tcpRuns pools one pollnet scenario's runs.
type tcpRuns struct {
	samples  []float64
	total    uint64
	cpu      time.Duration
	wall     time.Duration
	counters map[string]uint64
	csum     bool
	skipped  string // why the link could not run the scenario
}

func (p *tcpRuns) add(r tcpRun) {
	p.csum = r.csum
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
}

// scenario is the pooled runs as a result: one sample per run; counters
// and CPU summed over the measured windows (the TIME-WAIT counts summed
// over the runs' ends, as the kernel peer sums them).
func (p *tcpRuns) scenario(cfg *TCPConfig, k tcpCase, mode Mode) (result.Scenario, error) {
	knobs := map[string]any{"mode": string(mode), "mtu": k.mtu, "cc": tcpCC, "duration_s": cfg.Duration.Seconds(),
		"csum_offload": p.csum}
	if cfg.port() != PortWire {
		knobs["link"] = "veth"
	}
	sc := result.Scenario{Name: k.workload, Path: "pollnet-" + string(mode), Port: cfg.port(), Knobs: knobs,
		Samples: p.samples, CPUSeconds: p.cpu.Seconds(), Counters: p.counters,
		Roles:      map[string]int{"client": cfg.ClientCore, "server": cfg.ServerCore},
		GOMAXPROCS: runtime.GOMAXPROCS(0), WarmupS: cfg.Warmup.Seconds(), Repeat: len(p.samples)}
	sc.Extra = map[string]float64{"measured_seconds": p.wall.Seconds()}
	if k.workload == TCPStream {
		knobs["streams"], knobs["write_bytes"] = k.streams, tcpWriteBytes
		sc.Metric, sc.Unit = "rx_bps", "bits/s"
		if p.total > 0 {
			sc.Extra["cpu_ns_per_kib"] = float64(p.cpu.Nanoseconds()) / (float64(p.total) / 1024)
		}
	} else {
		knobs["in_flight"], knobs["request_bytes"], knobs["response_bytes"], knobs["closer"] = crrInFlight, crrRequest, crrResponse, "server"
		knobs["time_wait_s"], knobs["local_ports"] = tcp.DefaultTimeWait.Seconds(), crrClientPorts.String()
		sc.Metric, sc.Unit = "conn_per_s", "connections/s"
		if p.total > 0 {
			sc.Extra["cpu_us_per_conn"] = float64(p.cpu.Nanoseconds()) / 1e3 / float64(p.total)
		}
	}
	if p.skipped != "" {
		sc.Skipped, sc.Extra, sc.Samples, sc.Counters, sc.Repeat = p.skipped, nil, nil, nil, 0
		return sc, nil
	}
	if err := sc.Summarise(); err != nil {
		return sc, err
	}
	if k.workload == TCPStream {
		sc.Extra["gbps_median"] = sc.Median / 1e9
	}
	return sc, nil
}

// peerPool pools one peer scenario's rounds.
type peerPool struct {
	sc     result.Scenario
	rounds int
	// weights are the measured seconds behind each Extra figure so far.
	seconds float64
}

// add pools one round's scenario: samples appended, CPU, counters and
// measured seconds summed, the other Extra figures averaged weighted by
// measured seconds. A skipped round skips the whole scenario, as a failed
// run skips it within a peer.
func (p *peerPool) add(sc result.Scenario) {
	p.rounds++
	if p.rounds == 1 {
		p.sc = sc
		p.sc.Samples = slices.Clone(sc.Samples)
		p.sc.Counters = maps.Clone(sc.Counters)
		p.sc.Extra = maps.Clone(sc.Extra)
		p.seconds = sc.Extra["measured_seconds"]
		return
	}
	if p.sc.Skipped != "" {
		return
	}
	if sc.Skipped != "" {
		p.sc.Skipped = fmt.Sprintf("round %d: %s", p.rounds, sc.Skipped)
		return
	}
	p.sc.Samples = append(p.sc.Samples, sc.Samples...)
	p.sc.CPUSeconds += sc.CPUSeconds
	if p.sc.Counters == nil {
		p.sc.Counters = map[string]uint64{}
	}
	for k, v := range sc.Counters {
		p.sc.Counters[k] += v
	}
	s := sc.Extra["measured_seconds"]
	if p.sc.Extra == nil {
		p.sc.Extra = map[string]float64{}
	}
	for k, v := range sc.Extra {
		if k == "measured_seconds" {
			continue
		}
		if p.seconds+s > 0 {
			p.sc.Extra[k] = (p.sc.Extra[k]*p.seconds + v*s) / (p.seconds + s)
		}
	}
	p.seconds += s
	p.sc.Extra["measured_seconds"] = p.seconds
}

func (p *peerPool) scenario() (result.Scenario, error) {
	sc := p.sc
	sc.Repeat = p.rounds
	if sc.Skipped != "" {
		sc.Samples, sc.Counters, sc.Extra = nil, nil, nil
		sc.Median, sc.Mean, sc.Min, sc.Max, sc.Stddev, sc.P99 = 0, 0, 0, 0, 0, nil
		return sc, nil
	}
	if err := sc.Summarise(); err != nil {
		return sc, err
	}
	if _, ok := sc.Extra["gbps_median"]; ok {
		sc.Extra["gbps_median"] = sc.Median / 1e9
	}
	return sc, nil
}

// peerKey tells a peer's scenarios apart across rounds.
func peerKey(sc result.Scenario) string {
	return fmt.Sprintf("%s/%s/%s/%v/%v", sc.Name, sc.Path, sc.Port, sc.Knobs["mtu"], sc.Knobs["streams"])
}

// peerRound runs every workload once (Repeat 1) on every peer that offers
// it and has not skipped it, and pools the scenarios into pools (keys in
// order of first appearance).
func peerRound(cfg *TCPConfig, mtu, round int, pools map[string]*peerPool, order *[]string, skipped map[string]bool) error {
	for _, name := range cfg.Workloads {
		w := compare.Workload{Name: name, Duration: cfg.Duration, Warmup: cfg.Warmup, Repeat: 1, MTU: mtu}
		if name == TCPStream {
			w.Streams = cfg.Streams
		}
		for _, p := range cfg.Peers {
			if !compare.Offers(p, name) || skipped[p.Name()+"/"+name] {
				continue
			}
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "%-10s %-6s mtu %4d %d/%d (peer)\n", name, p.Name(), mtu, round, cfg.repeat())
			}
			limit := 5*time.Minute + time.Duration(len(cfg.Streams)+1)*(3*w.Duration+w.Warmup+10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			scs, err := p.Run(ctx, w)
			cancel()
			if err != nil {
				return fmt.Errorf("%s %s: %w", p.Name(), name, err)
			}
			for _, sc := range scs {
				if sc.Skipped != "" {
					skipped[p.Name()+"/"+name] = true
				}
				k := peerKey(sc)
				if pools[k] == nil {
					pools[k] = &peerPool{}
					*order = append(*order, k)
				}
				pools[k].add(sc)
			}
		}
	}
	return nil
}

// RunTCP runs every scenario on every path: for each MTU, Repeat rounds of
// one independent run per scenario and mode, then one run of each workload
// on each peer; then one result per scenario and path pooling its rounds.
func RunTCP(cfg TCPConfig) ([]result.Scenario, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Both stacks' workers, a writer and a reader per stream (or the
	// crr loops), the sampler.
	if runtime.GOMAXPROCS(0) < 4 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	}
	repeat := cfg.repeat()
	var out []result.Scenario
	for _, mtu := range cfg.MTUs {
		cases := cfg.cases(mtu)
		pooled := make([][]tcpRuns, len(cases))
		// A link that cannot carry the MTU skips pollnet's runs at it; the
		// peers, on links of their own, still run.
		why := linkCarries(cfg.port(), mtu)
		for i := range pooled {
			pooled[i] = make([]tcpRuns, len(cfg.Modes))
			for m := range pooled[i] {
				pooled[i][m].skipped = why
			}
		}
		peers := map[string]*peerPool{}
		var order []string
		skipped := map[string]bool{}
		for round := range repeat {
			label := fmt.Sprintf("%d/%d", round+1, repeat)
			for c, k := range cases {
				for m, mode := range cfg.Modes {
					if why != "" {
						continue
					}
					run, err := runTCPOnce(&cfg, k, mode, label)
					if err != nil {
						return out, fmt.Errorf("%s %s, run %d: %w", k, mode, round+1, err)
					}
					pooled[c][m].add(run)
				}
			}
			if err := peerRound(&cfg, mtu, round+1, peers, &order, skipped); err != nil {
				return out, err
			}
		}
		for c, k := range cases {
			for m, mode := range cfg.Modes {
				sc, err := pooled[c][m].scenario(&cfg, k, mode)
				if err != nil {
					return out, fmt.Errorf("%s %s: %w", k, mode, err)
				}
				out = append(out, sc)
			}
			// The peers' scenarios of this case beside pollnet's.
			for _, key := range order {
				p := peers[key]
				if p.sc.Name != k.workload || (k.workload == TCPStream && fmt.Sprint(p.sc.Knobs["streams"]) != fmt.Sprint(k.streams)) {
					continue
				}
				sc, err := p.scenario()
				if err != nil {
					return out, fmt.Errorf("%s %s: %w", key, p.sc.Path, err)
				}
				out = append(out, sc)
			}
		}
	}
	return out, nil
}

// TCPPeers are the peers --peers names: the kernel over veth (not loopback:
// the wire pair is a link, as veth is), iperf3 over the same veth, and
// gVisor's netstack.
func TCPPeers(names []string) ([]compare.Peer, error) {
	var out []compare.Peer
	for _, n := range names {
		switch n {
		case "kernel":
			out = append(out, &kernel.Peer{Topologies: []string{"veth"}, CC: tcpCC})
		case "iperf3":
			out = append(out, &kernel.Iperf3{Topologies: []string{"veth"}, CC: tcpCC})
		case "gvisor":
			out = append(out, &compare.GVisor{})
		case "none", "":
		default:
			return nil, flagErr("--peers: unknown peer %q: use kernel, iperf3, gvisor (comma-separated) or none", n)
		}
	}
	return out, nil
}

// ParsePeers splits a --peers value.
func ParsePeers(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// FormatTCP prints the scenarios as a table (median of the runs and their
// spread, retransmissions, CPU per unit), then each path's ratio to the
// kernel's figure and pmd/napi, per scenario.
func FormatTCP(w io.Writer, scs []result.Scenario) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tpath\tmtu\tstreams\truns\tmedian\tmin..max\tretrans\tcpu\t")
	rate := func(sc result.Scenario, v float64) string {
		if sc.Name == TCPStream {
			return fmt.Sprintf("%.3f Gbit/s", v/1e9)
		}
		return fmt.Sprintf("%.0f conn/s", v)
	}
	for _, sc := range scs {
		streams := "-"
		if v, ok := sc.Knobs["streams"]; ok {
			streams = fmt.Sprint(v)
		}
		if sc.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t\tskipped: %s\t\t\t\t\n", sc.Name, sc.Path, sc.Knobs["mtu"], streams, sc.Skipped)
			continue
		}
		retrans := sc.Counters["client_RetransSegs"] + sc.Counters["server_RetransSegs"]
		if v, ok := sc.Counters["retransmits"]; ok {
			retrans = v
		}
		cpu := "-"
		if v, ok := sc.Extra["cpu_ns_per_kib"]; ok {
			cpu = fmt.Sprintf("%.0f ns/KiB", v)
		} else if v, ok := sc.Extra["cpu_us_per_conn"]; ok {
			cpu = fmt.Sprintf("%.1f µs/conn", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%s\t%s..%s\t%d\t%s\t\n", sc.Name, sc.Path, sc.Knobs["mtu"], streams, len(sc.Samples),
			rate(sc, sc.Median), rate(sc, sc.Min), rate(sc, sc.Max), retrans, cpu)
	}
	tw.Flush()
	same := func(a, b result.Scenario) bool {
		return a.Name == b.Name && fmt.Sprint(a.Knobs["mtu"]) == fmt.Sprint(b.Knobs["mtu"]) &&
			fmt.Sprint(a.Knobs["streams"]) == fmt.Sprint(b.Knobs["streams"])
	}
	for _, a := range scs {
		if a.Skipped != "" || a.Median <= 0 || !strings.HasPrefix(a.Path, "pollnet-") {
			continue
		}
		for _, b := range scs {
			if b.Skipped != "" || b.Median <= 0 || !same(a, b) || b.Path == a.Path || !(b.Path == kernel.Path || b.Path == "pollnet-napi" && a.Path == "pollnet-pmd") {
				continue
			}
			fmt.Fprintf(w, "%s/%s %s mtu %v", a.Path, b.Path, a.Name, a.Knobs["mtu"])
			if s, ok := a.Knobs["streams"]; ok {
				fmt.Fprintf(w, " streams %v", s)
			}
			fmt.Fprintf(w, ": %.2fx\n", a.Median/b.Median)
		}
	}
}

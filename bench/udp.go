package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
	"github.com/pollnet/pollnet/stack"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// UDPConfig is the UDP scenario: two stack instances joined by a wire pair
// (or a veth pair, Port), each driven on its own core, with a client and a server application on
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
	Repeat int
	// Queues is the receive queues of each wire port and so the shards of
	// each stack, MinQueues..MaxQueues (the --queues flag, default 1).
	// With q queues the applications run q flows, flow i on shard i at
	// both ends. One queue keeps the client stack on ClientCore and the
	// server on ServerCore; more run every shard unpinned, so on a machine
	// with fewer cores than the 2q shards their workers time-share (the
	// engine's warning lands in result.json's machine.warnings) and the
	// figures measure the shards' overheads rather than their scaling.
	Queues     int
	ClientCore int
	ServerCore int
	Softirq    engine.SoftirqConfig
	// NoCsumOffload turns off the wire pair's checksum offload, on by
	// default as in TCPConfig: the kernel over veth sums nothing either.
	// A veth port offers none, so there the stacks sum every datagram;
	// the knob csum_offload records what the ports did.
	NoCsumOffload bool
	// Port is the link's kind: PortWire (or ""), or PortAFPacket or
	// PortAFXDP for a veth pair with a port of that kind on each end
	// (stackport.go).
	Port     string
	Progress io.Writer
	Live     func(*Live)
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
	if err := checkStackPort("udp", c.Port); err != nil {
		return err
	}
	if c.port() != PortWire && c.Queues > 1 {
		return flagErr("--queues %d with --port %s: a veth link carries one queue per stack here; give --queues 1", c.Queues, c.Port)
	}
	// Only one queue pins the stacks; more leave every shard unpinned.
	if err := checkRun(c.Duration, c.Warmup, c.ClientCore, c.ServerCore, slices.Contains(c.Modes, ModePMD) && c.Queues <= 1); err != nil {
		return err
	}
	if c.Queues < MinQueues || c.Queues > MaxQueues {
		return flagErr("--queues %d is out of range: give %d..%d receive queues per port (each stack runs a shard per queue)", c.Queues, MinQueues, MaxQueues)
	}
	return nil
}

// port is the link's kind, the wire when none is given.
func (c *UDPConfig) port() string {
	if c.Port == "" {
		return PortWire
	}
	return c.Port
}

// UDPResult is one (workload, mode, size) measurement.
type UDPResult struct {
	Workload string // "udp_rr" or "udp_stream"
	Mode     Mode
	Size     int
	Queues   int
	Scenario result.Scenario
	Latency  *pktgen.Histogram // round trips, for udp_rr
}

var (
	udpClientAddr = netip.MustParsePrefix("198.18.1.1/24")
	udpServerAddr = netip.MustParsePrefix("198.18.1.2/24")
)

// udpRig is the two stacks and their sockets: flow i's client socket cs[i]
// and server socket ss[i], both on shard i of their stacks.
type udpRig struct {
	mode           Mode
	link           *stackLink
	client, server *stack.Stack
	cs, ss         []*stack.UDPConn
	tick           atomic.Pointer[func(*engine.Worker, int)] // the client's poll-loop application, in PMD mode
}

// Client source ports of the flows when there are several: the first port
// tried, and how many are tried before giving up.
const (
	udpFirstClientPort = 20000
	udpClientPortScan  = 8192
)

func newUDPRig(cfg UDPConfig, mode Mode) (*udpRig, error) {
	r := &udpRig{mode: mode}
	q := cfg.Queues
	var err error
	if r.link, err = newStackLink(stackLinkConfig{kind: cfg.port(), names: [2]string{"udp-client", "udp-server"}, queues: q,
		csumOffload: !cfg.NoCsumOffload}); err != nil {
		return nil, err
	}
	mk := func(name string, port engine.Port, addr netip.Prefix, tick func(*engine.Worker, int)) (*stack.Stack, error) {
		return stack.New(stack.Config{Name: name, Interfaces: []stack.Interface{{Port: port, Addr: addr}},
			Shards: q, UDPRecvBuffer: 4 << 20, PollTick: tick})
	}
	if r.client, err = mk("udp-client", r.link.ports[0], udpClientAddr, func(w *engine.Worker, n int) {
		if t := r.tick.Load(); t != nil {
			(*t)(w, n)
		}
	}); err != nil {
		r.close()
		return nil, err
	}
	if r.server, err = mk("udp-server", r.link.ports[1], udpServerAddr, nil); err != nil {
		r.close()
		return nil, err
	}
	if err := r.open(q); err != nil {
		r.close()
		return nil, err
	}
	smode := stack.Mode(mode)
	if q == 1 {
		err = r.server.Start(smode, cfg.ServerCore, cfg.Softirq)
		if err == nil {
			err = r.client.Start(smode, cfg.ClientCore, cfg.Softirq)
		}
	} else {
		// Every shard unpinned: 2q busy workers cannot have a core each
		// on most machines, and pinning some would starve the others.
		err = r.server.StartOn(smode, nil, cfg.Softirq)
		if err == nil {
			err = r.client.StartOn(smode, nil, cfg.Softirq)
		}
	}
	if err != nil {
		r.close()
		return nil, err
	}
	if err := r.exchange(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// open opens the flows' sockets. One flow is the scenario as it was before
// shards: a server socket on port 7 and a client socket on an ephemeral
// port. Several share port 7 as a reuseport group whose member i is bound
// to shard i, and client socket i takes a source port whose datagrams land
// on shard i of the server and whose answers land on shard i of the client.
func (r *udpRig) open(q int) error {
	if q == 1 {
		ss, err := r.server.ListenUDP(r.serverAddr())
		if err != nil {
			return err
		}
		r.ss = append(r.ss, ss)
		cs, err := r.client.ListenUDP(netip.AddrPortFrom(udpClientAddr.Addr(), 0))
		if err != nil {
			return err
		}
		r.cs = append(r.cs, cs)
		return nil
	}
	for i := range q {
		ss, err := r.server.ListenUDPWith(r.serverAddr(), stack.UDPOptions{ReusePort: true, Shard: i})
		if err != nil {
			return err
		}
		r.ss = append(r.ss, ss)
	}
	ports, err := udpFlowPorts(r.client, r.server, q)
	if err != nil {
		return err
	}
	for i, p := range ports {
		cs, err := r.client.ListenUDPWith(netip.AddrPortFrom(udpClientAddr.Addr(), p), stack.UDPOptions{Shard: i})
		if err != nil {
			return err
		}
		r.cs = append(r.cs, cs)
	}
	return nil
}

// udpFlowPorts picks, for each shard i of q, a client source port whose
// datagrams to the server's port 7 arrive on the server's shard i and whose
// answers arrive on the client's shard i.
func udpFlowPorts(client, server *stack.Stack, q int) ([]uint16, error) {
	c, s := udpClientAddr.Addr().As4(), udpServerAddr.Addr().As4()
	ports := make([]uint16, q)
	found := 0
	last := udpFirstClientPort + udpClientPortScan - 1
	for p := udpFirstClientPort; p <= last && found < q; p++ {
		port := uint16(p)
		i := server.ShardOf(ipv4.ProtoUDP, c, s, port, udpServerPort)
		if ports[i] == 0 && client.ShardOf(ipv4.ProtoUDP, s, c, udpServerPort, port) == i {
			ports[i] = port
			found++
		}
	}
	for i, p := range ports {
		if p == 0 {
			return nil, fmt.Errorf("udp bench: no client port in %d..%d lands on shard %d of both stacks; use fewer --queues",
				udpFirstClientPort, last, i)
		}
	}
	return ports, nil
}

// exchange sends one datagram each way on every flow before any run, so no
// run starts with ARP, and checks that flow i lives on shard i at both ends:
// the applications of a flow count on running on one goroutine.
func (r *udpRig) exchange() error {
	buf := make([]byte, 64)
	for i := range r.cs {
		cs, ss := r.cs[i], r.ss[i]
		cs.SetBusyPoll(false)
		ss.SetBusyPoll(false)
		cs.WriteToUDPAddrPort(make([]byte, MinUDPPayload), r.serverAddr())
		ss.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := ss.ReadFromUDPAddrPort(buf)
		if err != nil {
			return fmt.Errorf("udp bench: the server never heard the client (flow %d): %w", i, err)
		}
		ss.SetReadDeadline(time.Time{})
		if from != cs.LocalAddrPort() {
			return fmt.Errorf("udp bench: flow %d's server socket heard %v, not its client %v", i, from, cs.LocalAddrPort())
		}
		ss.WriteToUDPAddrPort(buf[:n], from)
		cs.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := cs.ReadFromUDPAddrPort(buf); err != nil {
			return fmt.Errorf("udp bench: the client never heard the server (flow %d): %w", i, err)
		}
		cs.SetReadDeadline(time.Time{})
	}
	if len(r.cs) == 1 {
		return nil
	}
	for _, s := range []*stack.Stack{r.server, r.client} {
		for _, st := range s.ShardStats() {
			if st.Stats.UDPInDatagrams != 1 {
				return fmt.Errorf("udp bench: shard %d of %s received %d datagrams of the %d flows' first exchange, want 1: the flows are not one per shard",
					st.Shard, s.Name(), st.Stats.UDPInDatagrams, len(r.cs))
			}
		}
	}
	return nil
}

func (r *udpRig) serverAddr() netip.AddrPort {
	return netip.AddrPortFrom(udpServerAddr.Addr(), udpServerPort)
}

// live is what `pollnet stat` shows of the run: the ports' queues and every
// shard's worker or softirq.
func (r *udpRig) live(size int) *Live {
	return stackPairLive(r.mode, size, r.link, r.client, r.server)
}

func (r *udpRig) close() error {
	return closeStackPair(r.link, r.client, r.server)
}

// stackPairLive is what `pollnet stat` shows of two stacks over a link:
// the ports' queues and every shard's worker or softirq.
func stackPairLive(mode Mode, size int, link *stackLink, client, server *stack.Stack) *Live {
	l := &Live{Mode: mode, Size: size, Ports: []engine.Port{link.ports[0], link.ports[1]}}
	for _, s := range []*stack.Stack{client, server} {
		if s == nil {
			continue
		}
		if sis := s.Softirqs(); len(sis) > 0 {
			l.Softirqs = append(l.Softirqs, sis...)
		} else {
			l.Workers = append(l.Workers, s.Workers()...)
		}
	}
	return l
}

// closeStackPair closes the stacks, then the link; any may be nil (a rig
// that failed half way), and every error is kept.
func closeStackPair(link *stackLink, client, server *stack.Stack) error {
	var errs []error
	for _, s := range []*stack.Stack{client, server} {
		if s != nil {
			if err := s.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, link.close())
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
	// Every shard's worker of both stacks, the applications, the sampler:
	// below that, busy workers would wait for a processor rather than a
	// core.
	if procs := max(4, 2*cfg.Queues+2); runtime.GOMAXPROCS(0) < procs {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
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

// udpApp is the client and server applications of one run: a flow per
// shard. In poll mode each flow's client and server run in the loops of
// their stacks' shard i; in interrupt mode they are goroutines parked on
// their sockets.
type udpApp struct {
	workload string
	size     int
	r        *udpRig
	flows    []*udpFlow
	inWindow atomic.Bool // round trips count only while the window is open

	// pooled are the flows' buffers, given back by release.
	pooled []pooledBuf
}

// udpFlow is one flow's client and server, and what they measure. Its
// counters are its own, so that flows on different shards share no cache
// line on the per-datagram path.
type udpFlow struct {
	a        *udpApp
	cs, ss   *stack.UDPConn
	rr       bool           // udp_rr, or else udp_stream
	to       netip.AddrPort // the server's address
	count    atomic.Uint64  // transactions completed, or datagrams received
	timeouts atomic.Uint64  // requests given up on
	// sendErrors are the interrupt-mode client's sends that failed (no
	// buffer, say): it counts them and goes on, as a poll-mode one does.
	sendErrors atomic.Uint64
	mu         sync.Mutex // guards lat: written by the client, read at the end
	lat        pktgen.Histogram

	// The poll-mode client's one request in flight; its tick and its read
	// handler both run on its shard of the client stack.
	outstanding bool
	sentAt      int64
	seq         uint64
	payload     []byte
	bufs        [udpBatch][]byte
	reply       []byte
	serverBuf   []byte // the server's read buffer, in either mode
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
	for i := range r.cs {
		f := &udpFlow{a: a, cs: r.cs[i], ss: r.ss[i], rr: workload == "udp_rr", to: r.serverAddr()}
		f.payload = take(&udpPayloadPool, size)
		for i := range f.bufs {
			f.bufs[i] = take(&udpPayloadPool, size)
		}
		f.reply = take(&udpReadPool, udpReadBuf)
		f.serverBuf = take(&udpReadPool, udpReadBuf)
		a.flows = append(a.flows, f)
	}
	return a
}

// release gives the buffers back to their pools. Only once nothing runs
// the applications any more: the stacks closed, the goroutines returned.
func (a *udpApp) release() {
	for _, p := range a.pooled {
		p.pool.Put(p.b)
	}
	a.pooled = nil
	for _, f := range a.flows {
		f.payload, f.reply, f.serverBuf, f.bufs = nil, nil, nil, [udpBatch][]byte{}
	}
}

// count is the transactions completed, or datagrams received, over all
// flows.
func (a *udpApp) count() uint64 {
	var n uint64
	for _, f := range a.flows {
		n += f.count.Load()
	}
	return n
}

// record notes a completed round trip whose request carried the stamp;
// its time is kept if it completed inside the measured window.
func (f *udpFlow) record(reply []byte) {
	if f.a.inWindow.Load() {
		f.mu.Lock()
		f.lat.Record(engine.Nanotime() - stampTime(reply))
		f.mu.Unlock()
	}
	f.count.Add(1)
}

// serve answers (udp_rr) or counts (udp_stream) what is queued, without
// waiting: the poll-mode server's read handler.
func (f *udpFlow) serve(c *stack.UDPConn) {
	buf := f.serverBuf
	for {
		n, from, ok := c.TryRead(buf)
		if !ok {
			return
		}
		if f.rr {
			c.WriteToUDPAddrPort(buf[:n], from)
		} else {
			f.count.Add(1)
		}
	}
}

// pollTick is the poll-mode client, run after every round of its shard's
// loop: the next request (udp_rr), or a batch of datagrams (udp_stream).
func (f *udpFlow) pollTick(*engine.Worker, int) {
	now := engine.Nanotime()
	if !f.rr {
		f.stampBatch(now)
		f.cs.WriteBatchTo(f.bufs[:], f.to)
		return
	}
	if f.outstanding {
		if now-f.sentAt < int64(100*time.Millisecond) {
			return
		}
		f.timeouts.Add(1) // lost: send another
	}
	f.seq++
	stamp(f.payload, f.seq, now)
	f.sentAt, f.outstanding = now, true
	f.cs.WriteToUDPAddrPort(f.payload, f.to)
}

// pollReply is the poll-mode client's read handler.
func (f *udpFlow) pollReply(c *stack.UDPConn) {
	for {
		n, _, ok := c.TryRead(f.reply)
		if !ok {
			return
		}
		if n >= MinUDPPayload && binary.LittleEndian.Uint64(f.reply) == f.seq {
			f.record(f.reply)
			f.outstanding = false
		}
	}
}

func (f *udpFlow) stampBatch(now int64) {
	for i := range f.bufs {
		f.seq++
		stamp(f.bufs[i], f.seq, now)
	}
}

// napiServer is the interrupt-mode server: a goroutine parked on its socket.
func (f *udpFlow) napiServer() {
	buf := f.serverBuf
	for {
		n, from, err := f.ss.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if f.rr {
			f.ss.WriteToUDPAddrPort(buf[:n], from)
		} else {
			f.count.Add(1)
		}
	}
}

// napiClient is the interrupt-mode client: it sends, then parks for the
// answer (udp_rr), or sends batches as fast as it can (udp_stream).
func (f *udpFlow) napiClient(stop chan struct{}) {
	cs, to := f.cs, f.to
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := engine.Nanotime()
		if !f.rr {
			f.stampBatch(now)
			if _, err := cs.WriteBatchTo(f.bufs[:], to); err != nil && !f.sendFailed(err) {
				return
			}
			continue
		}
		f.seq++
		stamp(f.payload, f.seq, now)
		if _, err := cs.WriteToUDPAddrPort(f.payload, to); err != nil {
			if !f.sendFailed(err) {
				return
			}
			continue
		}
		cs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, _, err := cs.ReadFromUDPAddrPort(f.reply)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					f.timeouts.Add(1)
					break
				}
				return
			}
			if n >= MinUDPPayload && binary.LittleEndian.Uint64(f.reply) == f.seq {
				f.record(f.reply)
				break
			} // else a late answer to a request already given up on
		}
	}
}

// sendFailed counts a failed send and reports whether the client should go
// on: it stops only once its socket is closed. A transient failure (the
// pool empty for a moment) must not end a flow for the rest of the run.
func (f *udpFlow) sendFailed(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	f.sendErrors.Add(1)
	return true
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
	csum       bool // the ports filled the checksums (the link's offload)
	gomaxprocs int
}

// udpCounters are the run's counters, read as the window opens and as it
// closes. Over the window:
//
//   - timeouts: the number of requests the clients gave up on (udp_rr);
//   - send_errors: the number of sends that failed in interrupt mode (in
//     poll mode a failed send is simply not counted by the server);
//   - rcvbuf_drops: the number of datagrams the server's sockets dropped on
//     a full receive queue (Linux's UDP_MIB_RCVBUFERRORS);
//   - parks, wakeups, spins: the number of times the applications parked
//     on a socket, were woken, and spun before parking;
//   - client_shardI_... and server_shardI_...: shard I's own counters in
//     each stack (stack.ShardStats): rx_frames and tx_frames its queues
//     took and gave, tx_dropped, udp_in the datagrams it delivered to
//     sockets, steered_out and steered_in the frames it passed to and took
//     from other shards, handed_off the datagrams applications queued for
//     it while it was busy, direct_sends those they sent through it
//     themselves.
func (a *udpApp) udpCounters() map[string]uint64 {
	cc, sc := a.r.client.SocketCounters(), a.r.server.SocketCounters()
	var timeouts, sendErrors, drops uint64
	for _, f := range a.flows {
		timeouts += f.timeouts.Load()
		sendErrors += f.sendErrors.Load()
		drops += f.ss.Drops()
	}
	m := map[string]uint64{
		"timeouts":     timeouts,
		"send_errors":  sendErrors,
		"rcvbuf_drops": drops,
		"parks":        cc.Parks.Load() + sc.Parks.Load(),
		"wakeups":      cc.Wakeups.Load() + sc.Wakeups.Load(),
		"spins":        cc.Spins.Load() + sc.Spins.Load(),
	}
	for _, s := range []struct {
		name string
		st   *stack.Stack
	}{{"client", a.r.client}, {"server", a.r.server}} {
		for _, sh := range s.st.ShardStats() {
			p := fmt.Sprintf("%s_shard%d_", s.name, sh.Shard)
			m[p+"rx_frames"] = sh.RxFrames
			m[p+"tx_frames"] = sh.TxFrames
			m[p+"tx_dropped"] = sh.TxDropped
			m[p+"udp_in"] = sh.Stats.UDPInDatagrams
			m[p+"steered_out"] = sh.SteeredOut
			m[p+"steered_in"] = sh.SteeredIn
			m[p+"handed_off"] = sh.HandedOff
			m[p+"direct_sends"] = sh.DirectSends
		}
	}
	return m
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
		// Every flow's applications live in the poll loops of its shards.
		for _, f := range a.flows {
			f.ss.SetReadHandler(f.serve)
			if workload == "udp_rr" {
				f.cs.SetReadHandler(f.pollReply)
			}
		}
		tick := a.flows[0].pollTick
		if len(a.flows) > 1 {
			// Every client shard's loop runs the tick: each runs its flow.
			flows, client := a.flows, r.client
			tick = func(w *engine.Worker, n int) {
				if i := client.ShardOfWorker(w); i >= 0 && i < len(flows) {
					flows[i].pollTick(w, n)
				}
			}
		}
		r.tick.Store(&tick)
	case ModeNAPI:
		for _, f := range a.flows {
			f.cs.SetBusyPoll(false)
			f.ss.SetBusyPoll(false)
			wg.Add(2)
			go func() { defer wg.Done(); f.napiServer() }()
			go func() { defer wg.Done(); f.napiClient(stop) }()
		}
	}
	if cfg.Live != nil {
		cfg.Live(r.live(size))
	}
	var avoid []int
	if cfg.Queues == 1 {
		avoid = []int{cfg.ServerCore}
	}
	var cpu0, cpu1 time.Duration
	var before, after map[string]uint64
	sm := sampling{
		Progress: cfg.Progress, Label: fmt.Sprintf("%-10s %-4s %5dB q%d %s", workload, mode, size, cfg.Queues, label),
		Warmup: cfg.Warmup, Duration: cfg.Duration, Repeat: 1, Count: a.count,
		Avoid: avoid,
		Measuring: func() {
			cpu0 = CPUTime()
			before = a.udpCounters()
			a.inWindow.Store(true)
		},
		Measured: func() {
			a.inWindow.Store(false)
			cpu1 = CPUTime()
			after = a.udpCounters()
		},
		Status: func(rate, _ float64) string {
			if workload == "udp_rr" {
				return fmt.Sprintf("%.0f transactions/s", rate)
			}
			return fmt.Sprintf("%.3f M datagrams/s", rate/1e6)
		},
	}.run()
	run := udpRun{cpu: cpu1 - cpu0, wall: sm.Wall, total: sm.Total, mtu: r.link.ports[0].Info().MTU,
		csum: r.link.csumOffload(), gomaxprocs: runtime.GOMAXPROCS(0), counters: after}
	for k, v := range run.counters {
		run.counters[k] = v - min(v, before[k])
	}
	if len(sm.Rates) > 0 {
		run.rate = sm.Rates[0]
	}
	close(stop)
	r.tick.Store(nil)
	for _, f := range a.flows {
		f.cs.SetReadHandler(nil)
		f.ss.SetReadHandler(nil)
		f.cs.Close()
		f.ss.Close()
	}
	wg.Wait()
	if cfg.Live != nil {
		cfg.Live(nil)
	}
	for _, f := range a.flows {
		f.mu.Lock()
		run.lat.Merge(&f.lat)
		f.mu.Unlock()
	}
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
	csum       bool
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
	p.mtu, p.csum = r.mtu, r.csum
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
		"batch": batch, "duration_s": cfg.Duration.Seconds(), "csum_offload": p.csum,
	}
	if cfg.port() != PortWire {
		knobs["link"] = "veth"
	}
	if workload == "udp_stream" {
		knobs["rx_batch"] = 1 // the server reads one datagram per call
	}
	roles := map[string]int{"client": cfg.ClientCore, "server": cfg.ServerCore}
	if cfg.Queues > 1 {
		// A knob only above one queue: one queue is the scenario as it was
		// before shards, and its rows still match older results in
		// `pollnet compare`; any other count is a scenario of its own.
		knobs["queues"] = cfg.Queues
		roles = map[string]int{"client": engine.AnyCore, "server": engine.AnyCore}
	}
	sc := result.Scenario{
		Name: workload, Path: "pollnet-" + string(mode), Port: cfg.port(), Knobs: knobs,
		Samples: p.samples, CPUSeconds: p.cpu.Seconds(), Counters: p.counters,
		Roles: roles, GOMAXPROCS: p.gomaxprocs, WarmupS: cfg.Warmup.Seconds(), Repeat: len(p.samples),
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
	return UDPResult{Workload: workload, Mode: mode, Size: size, Queues: cfg.Queues, Scenario: sc, Latency: &lat}, nil
}

// FormatUDP prints the results as a table (the median rate of the runs and
// their spread), then the pmd/napi ratios, then, with several queues, each
// shard's counters over the measured windows.
func FormatUDP(w io.Writer, rs []UDPResult) {
	fmt.Fprintf(w, "%-10s %-5s %6s %3s %4s %14s %21s %10s %10s %10s %12s %8s %8s\n",
		"workload", "mode", "size", "q", "runs", "rate/s", "min..max", "rtt p50", "rtt p99", "drops", "cpu ns/op", "parks", "wakeups")
	for _, r := range rs {
		sc := r.Scenario
		p50, p99 := "-", "-"
		if v, ok := sc.Extra["latency_p50_ns"]; ok {
			p50 = roundLatency(time.Duration(v)).String()
			p99 = roundLatency(time.Duration(sc.Extra["latency_p99_ns"])).String()
		}
		spread := fmt.Sprintf("%.0f..%.0f", sc.Min, sc.Max)
		fmt.Fprintf(w, "%-10s %-5s %6d %3d %4d %14.0f %21s %10s %10s %10d %12.0f %8d %8d\n", r.Workload, r.Mode, r.Size, max(1, r.Queues),
			len(sc.Samples), sc.Median, spread, p50, p99, sc.Counters["rcvbuf_drops"], sc.Extra["cpu_ns_per_op"], sc.Counters["parks"],
			sc.Counters["wakeups"])
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
	header := false
	for _, r := range rs {
		if r.Queues <= 1 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "per shard, over the measured windows (rx/tx frames, datagrams to sockets, frames steered out/in, sends handed off/direct):")
			header = true
		}
		c := r.Scenario.Counters
		for _, st := range []string{"client", "server"} {
			fmt.Fprintf(w, "  %-10s %-4s %5d B %s:", r.Workload, r.Mode, r.Size, st)
			for i := range r.Queues {
				p := fmt.Sprintf("%s_shard%d_", st, i)
				fmt.Fprintf(w, " [%d] rx %d tx %d udp_in %d steer %d/%d send %d/%d", i, c[p+"rx_frames"], c[p+"tx_frames"],
					c[p+"udp_in"], c[p+"steered_out"], c[p+"steered_in"], c[p+"handed_off"], c[p+"direct_sends"])
			}
			fmt.Fprintln(w)
		}
	}
}

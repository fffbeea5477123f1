// Package stack is pollnet's protocol stack instance: devices, addresses and
// routes, the receive path from a burst of frames up to sockets, and the
// transmit path from sockets down to ports. One instance serves a set of
// ports; several can live in one process (tests join two with a wire pair).
//
// The stack's state is guarded by one lock, taken once per received burst
// and once per send. The receive path runs on whatever drives the ports: a
// poll-mode worker (Start with ModePMD) or a NAPI softirq (ModeNAPI).
// Sockets hand readiness to applications after the lock is released.
package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/frag"
	icmpnet "github.com/pollnet/pollnet/stack/network/icmp"
	ipv4net "github.com/pollnet/pollnet/stack/network/ipv4"
	"github.com/pollnet/pollnet/stack/network/neigh"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/udp"
)

// Mode is how the stack is driven, and so how its sockets wait.
type Mode string

// The modes.
const (
	// ModePMD: a worker busy-polls every queue; applications run in its
	// loop (read handlers) or poll their sockets without parking.
	ModePMD Mode = "pmd"
	// ModeNAPI: interrupts schedule a softirq; readers park on wait queues
	// and are woken by the data-ready callback.
	ModeNAPI Mode = "napi"
)

// Interface attaches a port to the stack with an address.
type Interface struct {
	Port engine.Port
	Addr netip.Prefix // the interface's IPv4 address and subnet
	MTU  int          // default: the port's MTU
	MAC  eth.MAC      // default: the port's MAC
}

// Route is a static route (`ip route add Prefix via Via dev Dev`).
type Route struct {
	Prefix netip.Prefix
	Via    netip.Addr // zero for a directly connected route
	Dev    int        // interface index (1 is the first in Config.Interfaces; 0 is loopback)
	Metric int
}

// Config describes a stack instance.
type Config struct {
	Name       string
	Interfaces []Interface
	Routes     []Route
	Forwarding bool        // route datagrams not addressed to us (net.ipv4.ip_forward)
	PoolSize   int         // mbufs for locally built packets (default 8192)
	Idle       engine.Idle // what the poll-mode worker does when idle
	// PollTick, in poll mode, runs after every round of the stack's worker
	// on its goroutine: an application living in the poll loop sends from
	// it (a generator, a client). It must not block.
	PollTick func(w *engine.Worker, received int)

	UDPRecvBuffer int // bytes a UDP socket may queue (default 212992, rmem_default)
	Backlog       int // loopback backlog (default 1000, netdev_max_backlog)
	// HeldLimit is how many mbufs packets waiting for something (for an
	// address, for the rest of their datagram) may hold together (default
	// an eighth of the smallest receive pool among the interfaces' ports).
	HeldLimit int

	// LocalPortRange is where ephemeral ports come from (default
	// 32768-60999, net.ipv4.ip_local_port_range).
	LocalPortRange PortRange

	ARP   ARPConfig
	Reasm frag.ReasmConfig
}

// device is an interface as the stack sees it.
type device struct {
	*link.Device
	txq []engine.Mbuf // frames to send at the end of the burst or call
}

// Stack is one instance of the protocol stack.
type Stack struct {
	mu     sync.Mutex
	name   string
	devs   []*device
	routes *route.Routes
	fwd    bool
	pool   *engine.Pool
	cs     engine.Caches // used under mu
	neigh  *neigh.Table
	reasm  *frag.Reassembler
	udp    *udp.Table
	stats  Stats
	ready  []*UDPConn // sockets that got data during this burst or call

	// secret keys every hash an off-path host must not predict; the
	// tables below hold a copy.
	secret siphash.Key
	idents ipv4net.Idents
	icmpRL icmpnet.Limiter
	loop   *link.Loopback

	held     heldMemory  // buffers held by packets that wait
	sockFree socketFrees // where sockets free what they have read

	idle     engine.Idle
	pollTick func(*engine.Worker, int)
	mode     atomic.Pointer[Mode] // set by Start, read by sockets on any goroutine
	counters socket.Counters

	worker  *engine.Worker
	softirq *engine.Softirq
	ticker  *time.Ticker
	tickEnd chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup
}

// New builds a stack instance; Start drives it.
func New(cfg Config) (*Stack, error) {
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 8192
	}
	if cfg.UDPRecvBuffer == 0 {
		cfg.UDPRecvBuffer = 212992
	}
	if cfg.UDPRecvBuffer < 256 || cfg.UDPRecvBuffer > 1<<30 {
		return nil, fmt.Errorf("stack: UDP receive buffer %d out of range 256..%d", cfg.UDPRecvBuffer, 1<<30)
	}
	if cfg.LocalPortRange == (PortRange{}) {
		cfg.LocalPortRange = defaultPortRange
	}
	if err := cfg.LocalPortRange.Validate(); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name = "stack"
	}
	pool, err := engine.NewPool(name+"-tx", cfg.PoolSize, 0)
	if err != nil {
		return nil, err
	}
	loop, err := link.NewLoopback(cfg.Backlog, 0)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Stack{name: name, routes: route.NewRoutes(), fwd: cfg.Forwarding, pool: pool, loop: loop, idle: cfg.Idle, pollTick: cfg.PollTick}
	s.secret = siphash.NewKey()
	s.idents.Init(s.secret)
	s.icmpRL.Init(s.secret, engine.Nanotime)
	if s.udp, err = newUDPTable(cfg, s.secret); err != nil {
		loop.Close()
		pool.Close()
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	cfg.Reasm.Account = &s.held
	s.reasm = frag.NewReassembler(&s.cs, pool, cfg.Reasm)
	lo := &device{Device: &link.Device{ID: 0, Port: loop, Queues: 1, MTU: engine.MaxPacket, Loopback: true,
		Addr: netip.MustParsePrefix("127.0.0.1/8")}}
	s.devs = append(s.devs, lo)
	if err := s.routes.AddLoopback(lo.Addr, 0); err != nil {
		s.release()
		return nil, err
	}
	for i, ifc := range cfg.Interfaces {
		if err := s.addInterface(ifc); err != nil {
			s.release()
			return nil, fmt.Errorf("stack %s: interface %d: %w", name, i+1, err)
		}
	}
	for _, r := range cfg.Routes {
		if err := s.AddRoute(r); err != nil {
			s.release()
			return nil, fmt.Errorf("stack %s: route %v: %w", name, r.Prefix, err)
		}
	}
	s.held.limit = cfg.HeldLimit
	if s.held.limit <= 0 {
		s.held.limit = s.heldLimit()
	}
	if s.neigh, err = neigh.New(cfg.ARP, s.routes, &s.held, s.held.limit, s.secret, engine.Nanotime()); err != nil {
		s.release()
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	return s, nil
}

func (s *Stack) addInterface(ifc Interface) error {
	if ifc.Port == nil {
		return errors.New("no port")
	}
	if !ifc.Addr.IsValid() || !ifc.Addr.Addr().Is4() {
		return fmt.Errorf("address %v is not an IPv4 prefix", ifc.Addr)
	}
	info := ifc.Port.Info()
	d := &device{Device: &link.Device{ID: len(s.devs), Port: ifc.Port, Queues: info.RxQueues, MAC: ifc.MAC, MTU: ifc.MTU, Addr: ifc.Addr}}
	if d.MAC == (eth.MAC{}) {
		d.MAC = eth.MAC(info.MAC)
	}
	if d.MTU == 0 {
		d.MTU = info.MTU
	}
	if d.MTU < ipv4.MinMTU || d.MTU > engine.MaxPacket-eth.HeaderLen {
		return fmt.Errorf("MTU %d out of range %d..%d", d.MTU, ipv4.MinMTU, engine.MaxPacket-eth.HeaderLen)
	}
	if d.Queues < 1 {
		d.Queues = 1
	}
	s.devs = append(s.devs, d)
	return s.routes.AddAddress(ifc.Addr, d.ID)
}

// AddRoute adds a static route.
func (s *Stack) AddRoute(r Route) error {
	if r.Dev < 0 || r.Dev >= len(s.devs) {
		return fmt.Errorf("no interface %d (have 0..%d)", r.Dev, len(s.devs)-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := route.Route{Prefix: r.Prefix.Masked(), Kind: route.KindConnected, Dev: r.Dev, Metric: r.Metric}
	if r.Via.IsValid() {
		rt.Kind, rt.NextHop = route.KindGateway, r.Via
	}
	return s.routes.Main.AddRoute(rt)
}

// Name is the instance's name.
func (s *Stack) Name() string { return s.name }

// Queues lists every receive queue the stack's driver must poll: the
// loopback backlog and each queue of each interface.
func (s *Stack) Queues() []engine.QueueRef {
	var qs []engine.QueueRef
	for _, d := range s.devs {
		for q := 0; q < d.Queues; q++ {
			qs = append(qs, engine.QueueRef{Port: d.Port, Queue: q})
		}
	}
	return qs
}

// Start drives the stack in mode on a worker pinned to core (engine.AnyCore
// for none): a poll loop, or a softirq woken by the ports' interrupts. It
// also starts the stack's timers (ARP retries, reassembly timeouts).
func (s *Stack) Start(mode Mode, core int, softirq engine.SoftirqConfig) error {
	if s.worker != nil {
		return errors.New("stack: already started")
	}
	w, err := engine.NewWorker(core)
	if err != nil {
		return err
	}
	var run func() error
	switch mode {
	case ModePMD:
		// Claim the core now, so a second busy worker on it is refused
		// here and not inside a loop whose error nobody reads.
		if err := w.ClaimBusy(); err != nil {
			return fmt.Errorf("stack %s: %w", s.name, err)
		}
		run = func() error {
			return w.Poll(engine.PollConfig{Rx: s.Queues(), Handler: s.Input, Idle: s.idle, Tick: s.pollTick})
		}
	case ModeNAPI:
		si, err := engine.NewSoftirq(w, softirq)
		if err != nil {
			return err
		}
		for _, q := range s.Queues() {
			if _, err := si.Add(engine.NAPIConfig{Port: q.Port, Queue: q.Queue, Handler: s.Input}); err != nil {
				return err
			}
		}
		s.softirq = si
		run = si.Run
	default:
		return fmt.Errorf("stack: mode %q unknown: use pmd or napi", mode)
	}
	s.worker = w
	s.mode.Store(&mode)
	errc := make(chan error, 1)
	if err := w.Start(func(*engine.Worker) { errc <- run() }); err != nil {
		return err
	}
	s.ticker = time.NewTicker(100 * time.Millisecond)
	s.tickEnd = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.tickEnd:
				return
			case <-s.ticker.C:
				s.tick()
			}
		}
	}()
	return nil
}

// Mode is how the stack is driven ("" before Start).
func (s *Stack) Mode() Mode {
	if m := s.mode.Load(); m != nil {
		return *m
	}
	return ""
}

// Worker is the worker driving the stack, nil before Start.
func (s *Stack) Worker() *engine.Worker { return s.worker }

// Softirq is the softirq driving the stack in NAPI mode.
func (s *Stack) Softirq() *engine.Softirq { return s.softirq }

// SocketCounters are the parks, wake-ups and spins of this stack's sockets.
func (s *Stack) SocketCounters() *socket.Counters { return &s.counters }

// tick runs the timers: the neighbour table's, reassembly timeouts.
func (s *Stack) tick() { s.tickAt(engine.Nanotime()) }

func (s *Stack) tickAt(now int64) {
	s.mu.Lock()
	s.neigh.Advance(s.neighLink(), now)
	s.stats.ReasmTimeouts += uint64(s.reasm.Expire(now))
	s.flushTx()
	s.mu.Unlock()
	s.udp.Tick()
}

// Close stops the driver, closes every socket and frees every packet the
// stack holds. The ports themselves stay open: they belong to the caller.
func (s *Stack) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.ticker != nil {
		s.ticker.Stop()
		close(s.tickEnd)
		s.wg.Wait()
	}
	if s.worker != nil {
		s.worker.Stop()
	}
	// Once every socket is closed, none touches the pool again.
	s.udp.CloseAll()
	return s.release()
}

func (s *Stack) release() error {
	s.mu.Lock()
	if s.neigh != nil {
		s.neigh.Clear(s.neighLink())
	}
	s.reasm.Clear()
	for _, d := range s.devs {
		s.cs.FreeBulk(d.txq)
		d.txq = d.txq[:0]
		// Sent frames of ours that the port has not yet reaped.
		if r, ok := d.Port.(engine.TxReaper); ok {
			r.ReapTx(0)
		}
	}
	s.mu.Unlock()
	s.loop.Close()
	s.cs.Close() // the ports' pools outlive the stack: retire its caches
	s.sockFree.flush()
	if s.worker != nil {
		s.worker.Caches.Close()
	}
	return s.pool.Close()
}

// Stats are the stack's counters, named after the SNMP MIB counters that
// `netstat -s` prints where there is one.
type Stats struct {
	EthInFrames, EthInErrors, EthNotForUs, EthUnknownType uint64
	// EthVLANDropped is the number of frames dropped for carrying an
	// 802.1Q or 802.1ad tag: there are no VLAN devices, so no tagged frame
	// is ours (Linux counts them in the device's rx_dropped).
	EthVLANDropped uint64

	ARPInRequests, ARPInReplies, ARPOutRequests, ARPOutReplies uint64
	ARPInErrors                                                uint64

	// The neighbour table, as Linux's /proc/net/stat/arp_cache.
	ARPEntries             uint64 // the number of entries now (entries)
	ARPAllocs              uint64 // the number of entries made (allocs)
	ARPResolveFailed       uint64 // the number of addresses given up as unanswered (res_failed)
	ARPQueueDrops          uint64 // the number of packets dropped while waiting for an address: past the queue's bytes (unres_discards), past the held-memory cap, or when the address was given up
	ARPTableFulls          uint64 // the number of entries refused because the table was full (table_fulls)
	ARPForcedGCRuns        uint64 // the number of forced collections (forced_gc_runs)
	ARPForcedGCEvictions   uint64 // the number of entries a forced collection removed
	ARPPeriodicGCRuns      uint64 // the number of periodic collections (periodic_gc_runs)
	ARPPeriodicGCEvictions uint64 // the number of entries a periodic collection removed

	HeldMbufs    uint64 // the number of mbufs held now by packets waiting (for an address, for reassembly)
	HeldRefusals uint64 // the number of packets refused because waiting packets held all HeldLimit mbufs

	IPInReceives, IPInHdrErrors, IPInAddrErrors, IPInUnknownProtos uint64
	IPInDelivers, IPForwDatagrams, IPOutRequests, IPOutNoRoutes    uint64
	IPInDiscards, IPFragOKs, IPFragFails, IPFragCreates            uint64
	ReasmReqds, ReasmOKs, ReasmFails, ReasmTimeouts                uint64
	IPInTooBig, IPOutDiscards                                      uint64
	// IPInMartianSrc and IPInMartianDst are the number of datagrams from
	// the wire dropped for a source or a destination that cannot be real
	// there (loopback, zero network, broadcast or multicast source, our
	// own address as source): Linux's in_martian_src and in_martian_dst
	// (ip_route_input_slow). A martian destination counts in
	// IPInAddrErrors too.
	IPInMartianSrc, IPInMartianDst uint64

	ICMPInMsgs, ICMPInErrors, ICMPInEchos, ICMPOutEchoReps, ICMPOutDestUnreachs uint64
	ICMPOutTimeExcds, ICMPOutMsgs                                               uint64
	// ICMPOutRateLimitGlobal and ICMPOutRateLimitHost are the number of
	// ICMP errors not sent because the stack's budget (icmp_msgs_per_sec)
	// or the destination's (icmp_ratelimit) was spent: Linux's ICMP
	// OutRateLimitGlobal and OutRateLimitHost.
	ICMPOutRateLimitGlobal, ICMPOutRateLimitHost uint64

	UDPInDatagrams, UDPNoPorts, UDPInErrors, UDPInCsumErrors, UDPRcvbufErrors, UDPOutDatagrams uint64

	NoMbuf uint64 // packets not built for want of a buffer
}

// Stats returns a copy of the counters.
func (s *Stack) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	copyNeighStats(&st, s.neigh.Stats())
	st.HeldMbufs, st.HeldRefusals = uint64(s.held.held), s.held.refused
	rc := s.reasm.Counters()
	st.ReasmReqds, st.ReasmOKs, st.ReasmFails = rc.ReasmReqds, rc.ReasmOKs, rc.ReasmFails
	s.addUDPStats(&st)
	return st
}

// Loopback is the stack's loopback device.
func (s *Stack) Loopback() *link.Loopback { return s.loop }

// SetForwarding switches routing between interfaces on or off
// (net.ipv4.ip_forward).
func (s *Stack) SetForwarding(on bool) {
	s.mu.Lock()
	s.fwd = on
	s.mu.Unlock()
}

// Package stack is pollnet's protocol stack instance: devices, addresses and
// routes, the receive path from a burst of frames up to sockets, and the
// transmit path from sockets down to ports. One instance serves a set of
// ports; several can live in one process (tests join two with a wire pair).
//
// A stack runs as shards, one per receive queue (shard.go): each drives its
// queues on its own poll-mode worker (ModePMD) or NAPI softirq (ModeNAPI),
// runs every burst to completion under a lock of its own, and tells the
// sockets that got data once it lets go. What the shards share (devices,
// routes, the neighbour and socket tables, IP IDs) is read without locks.
// docs/ARCHITECTURE.md follows a packet through the packages.
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
	"github.com/pollnet/pollnet/stack/transport/tcp"
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
	Forwarding bool // route datagrams not addressed to us (net.ipv4.ip_forward)
	// Shards is the number of shards (default: the most receive queues
	// any interface has). Shard i polls queue i of each interface; a port
	// with fewer queues than shards has its flows steered in software.
	Shards   int
	PoolSize int         // mbufs for locally built packets (default 8192)
	Idle     engine.Idle // what the poll-mode worker does when idle
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
	TCP   TCPConfig
}

// Stack is one instance of the protocol stack: what its shards share. The
// devices and the configuration are fixed by New; routes are published
// snapshots; the neighbour table, the socket tables, the ID counters and
// the ICMP limiter are safe for every shard at once. Per-packet state lives
// in the shards.
type Stack struct {
	name   string
	devs   []*link.Device // by interface index; 0 is loopback
	routes *route.Routes
	fwd    atomic.Bool
	pool   *engine.Pool // locally built packets; every shard and socket has caches on it
	neigh  *neigh.Table
	udp    *udp.Table
	tcp    *tcp.Table
	shards []*shard
	steer  []steering // by device index
	// txLocks guard the transmit queues several shards share; fixed by New.
	txLocks map[txLockKey]*sync.Mutex

	// secret keys every hash an off-path host must not predict.
	secret siphash.Key
	idents ipv4net.Idents
	icmpRL icmpnet.Limiter
	loop   *link.Loopback
	clock  func() int64 // engine.Nanotime; tests stop it

	app      appCounters // counters of sends before a shard takes them
	held     heldMemory  // buffers held by packets that wait, across shards
	sockFree socketFrees // where sockets free what they have read

	idle     engine.Idle
	pollTick func(*engine.Worker, int)
	mode     atomic.Pointer[Mode] // set by Start, read by sockets on any goroutine
	counters socket.Counters

	started bool
	closed  atomic.Bool
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
	if cfg.Shards < 0 || cfg.Shards > MaxShards {
		return nil, fmt.Errorf("stack: %d shards out of range 1..%d (0 takes one per receive queue)", cfg.Shards, MaxShards)
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
	s := &Stack{name: name, routes: route.NewRoutes(), pool: pool, loop: loop,
		idle: cfg.Idle, pollTick: cfg.PollTick, clock: engine.Nanotime}
	s.fwd.Store(cfg.Forwarding)
	s.secret = siphash.NewKey()
	s.idents.Init(s.secret)
	s.icmpRL.Init(s.secret, engine.Nanotime)
	lo := &link.Device{ID: 0, Port: loop, Queues: 1, MTU: engine.MaxPacket, Loopback: true,
		Addr: netip.MustParsePrefix("127.0.0.1/8"), TxChecksum: loop.Info().Features.TxChecksum}
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
	s.held.limit.Store(int64(cfg.HeldLimit))
	if cfg.HeldLimit <= 0 {
		s.held.limit.Store(int64(s.heldLimit()))
	}
	if s.neigh, err = neigh.New(cfg.ARP, s.routes, &s.held, int(s.held.limit.Load()), s.secret, s.clock()); err != nil {
		s.release()
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	if s.udp, err = newUDPTable(cfg, s.secret); err != nil {
		s.release()
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	n := cfg.Shards
	if n == 0 {
		for _, d := range s.devs {
			n = max(n, d.Queues)
		}
	}
	cfg.Reasm.Account = &s.held
	for i := range n {
		sh, err := newShard(s, i, n, cfg.Reasm)
		if err != nil {
			s.release()
			return nil, fmt.Errorf("stack %s: shard %d: %w", name, i, err)
		}
		s.shards = append(s.shards, sh)
	}
	if err := s.initSteering(); err != nil {
		s.release()
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	if s.tcp, err = s.newTCPTable(cfg); err != nil {
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
	d := &link.Device{ID: len(s.devs), Port: ifc.Port, Queues: info.RxQueues, MAC: ifc.MAC, MTU: ifc.MTU, Addr: ifc.Addr,
		TxChecksum: info.Features.TxChecksum}
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

// AddRoute adds a static route. Sockets that cached a route see the change
// at their next send: the route table's generation moves on.
func (s *Stack) AddRoute(r Route) error {
	if r.Dev < 0 || r.Dev >= len(s.devs) {
		return fmt.Errorf("no interface %d (have 0..%d)", r.Dev, len(s.devs)-1)
	}
	rt := route.Route{Prefix: r.Prefix.Masked(), Kind: route.KindConnected, Dev: r.Dev, Metric: r.Metric}
	if r.Via.IsValid() {
		rt.Kind, rt.NextHop = route.KindGateway, r.Via
	}
	return s.routes.Main.AddRoute(rt)
}

// DeleteRoute removes a static route added with AddRoute.
func (s *Stack) DeleteRoute(r Route) error {
	return s.routes.Main.Delete(r.Prefix.Masked(), r.Metric)
}

// Name is the instance's name.
func (s *Stack) Name() string { return s.name }

// Shards is the number of shards.
func (s *Stack) Shards() int { return len(s.shards) }

// Queues lists every receive queue the stack's shards poll between them:
// the loopback backlog and each queue of each interface.
func (s *Stack) Queues() []engine.QueueRef {
	var qs []engine.QueueRef
	for _, d := range s.devs {
		for q := 0; q < d.Queues; q++ {
			qs = append(qs, engine.QueueRef{Port: d.Port, Queue: q})
		}
	}
	return qs
}

// Start drives the stack in mode, its first shard on a worker pinned to core
// (engine.AnyCore for none) and any others unpinned; StartOn places every
// shard.
func (s *Stack) Start(mode Mode, core int, softirq engine.SoftirqConfig) error {
	return s.StartOn(mode, []int{core}, softirq)
}

// StartOn drives the stack in mode: shard i on a worker pinned to cores[i]
// (engine.AnyCore, or an index past the list, for an unpinned worker),
// busy-polling its queues or woken by their interrupts. Two poll-mode
// shards pinned to one core are refused; unpinned shards time-share the
// cores, with a warning from the engine when busy workers outnumber them.
func (s *Stack) StartOn(mode Mode, cores []int, softirq engine.SoftirqConfig) error {
	if s.started {
		return errors.New("stack: already started")
	}
	if mode != ModePMD && mode != ModeNAPI {
		return fmt.Errorf("stack: mode %q unknown: use pmd or napi", mode)
	}
	s.started = true
	s.mode.Store(&mode)
	for i, sh := range s.shards {
		core := engine.AnyCore
		if i < len(cores) {
			core = cores[i]
		}
		if err := sh.start(mode, core, softirq); err != nil {
			return fmt.Errorf("stack %s: shard %d: %w", s.name, i, err)
		}
	}
	return nil
}

// Mode is how the stack is driven ("" before Start).
func (s *Stack) Mode() Mode {
	if m := s.mode.Load(); m != nil {
		return *m
	}
	return ""
}

// Worker is the worker driving the first shard, nil before Start.
func (s *Stack) Worker() *engine.Worker { return s.shards[0].worker }

// Softirq is the softirq driving the first shard in NAPI mode.
func (s *Stack) Softirq() *engine.Softirq { return s.shards[0].softirq }

// Workers are the workers driving the shards, in shard order, nil before
// Start.
func (s *Stack) Workers() []*engine.Worker {
	var ws []*engine.Worker
	for _, sh := range s.shards {
		if sh.worker != nil {
			ws = append(ws, sh.worker)
		}
	}
	return ws
}

// Softirqs are the softirqs driving the shards in NAPI mode.
func (s *Stack) Softirqs() []*engine.Softirq {
	var ss []*engine.Softirq
	for _, sh := range s.shards {
		if sh.softirq != nil {
			ss = append(ss, sh.softirq)
		}
	}
	return ss
}

// ShardOfWorker is the index of the shard w drives, or -1: an application
// living in the poll loop (Config.PollTick) learns on which shard it runs.
func (s *Stack) ShardOfWorker(w *engine.Worker) int {
	for i, sh := range s.shards {
		if sh.worker == w {
			return i
		}
	}
	return -1
}

// SocketCounters are the parks, wake-ups and spins of this stack's sockets.
func (s *Stack) SocketCounters() *socket.Counters { return &s.counters }

// advanceTimers runs every shard's due timers at now, as their loops do:
// for tests that drive a stack that was not started.
func (s *Stack) advanceTimers(now int64) {
	for _, sh := range s.shards {
		sh.Advance(now)
	}
}

// Close stops the shards, closes every socket and frees every packet the
// stack holds. The ports themselves stay open: they belong to the caller.
func (s *Stack) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, sh := range s.shards {
		sh.stop()
	}
	// Senders that find the stack closed stop before taking a shard; wait
	// for those already past that point, so that nothing uses a shard or
	// the pool once they are released.
	for _, sh := range s.shards {
		for sh.senders.Load() != 0 {
			time.Sleep(10 * time.Microsecond)
		}
	}
	s.udp.CloseAll()
	s.tcp.Close()
	return s.release()
}

func (s *Stack) release() error {
	if s.neigh != nil && len(s.shards) > 0 {
		s.neigh.Clear(s.shards[0])
	}
	for _, sh := range s.shards {
		sh.release()
	}
	s.loop.Close()
	s.sockFree.flush()
	return s.pool.Close()
}

// Loopback is the stack's loopback device.
func (s *Stack) Loopback() *link.Loopback { return s.loop }

// SetForwarding switches routing between interfaces on or off
// (net.ipv4.ip_forward).
func (s *Stack) SetForwarding(on bool) { s.fwd.Store(on) }

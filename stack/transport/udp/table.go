package udp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/transport/ephemeral"
)

// Config configures a Table.
type Config struct {
	// Ports is where ephemeral ports come from (default
	// ephemeral.DefaultRange, net.ipv4.ip_local_port_range).
	Ports ephemeral.Range
	// Key is the stack's secret, for ephemeral port offsets and for the
	// flow hash that spreads datagrams over a reuseport group when the
	// port gave none (each hashes in its siphash tag).
	Key siphash.Key
	// RecvBuffer is a socket's receive buffer unless its Options say
	// otherwise (default 212992, net.core.rmem_default).
	RecvBuffer int
}

// DefaultRecvBuffer is Linux's rmem_default.
const DefaultRecvBuffer = 212992

// Bounds of a receive buffer.
const (
	MinRecvBuffer = 256
	MaxRecvBuffer = 1 << 30
)

// Table is a stack's bound UDP sockets, by local port (Linux's udp_table).
//
// Readers (the shards' receive paths, ICMP errors) look sockets up in a
// published snapshot without a lock: each port has an immutable list of
// its bindings behind an atomic pointer, replaced whole when a socket binds
// or closes on that port, under the table's mutex. A lookup loads two
// pointers and scans the bindings of one port, which only local binds
// create: nothing a packet carries can grow it. The ports are a two-level
// array (256 blocks of 256), a block made when a port in it is first bound.
type Table struct {
	mu      sync.Mutex
	closed  bool              // guarded by mu: CloseAll ran; Open fails
	picker  *ephemeral.Picker // guarded by mu
	closing sync.WaitGroup    // Conn.Close calls releasing a socket they took out

	blocks [256]atomic.Pointer[portBlock] // by port>>8; written under mu

	key    siphash.Key
	rcvbuf int

	noRoutes  atomic.Uint64 // sends refused for want of a route to pick a source by
	noBuffers atomic.Uint64 // datagrams not built for want of a buffer

	starvedMu sync.Mutex
	starved   []*Conn // guarded by starvedMu: sockets whose send found no buffer

	heldMu sync.Mutex
	held   []*Conn // guarded by heldMu: sockets that took send buffers since the last trim
}

// portBlock is the bindings of 256 consecutive ports.
type portBlock struct {
	ports [256]atomic.Pointer[portEntry]
}

// portEntry is the bindings on one port: immutable once published.
type portEntry struct {
	binds []*binding
}

// binding is one local address (and peer, when connected) that sockets are
// bound to on a port: a socket alone, or a reuseport group. Immutable once
// published; a change makes a new one.
type binding struct {
	laddr     uint32 // the local address, when !lany
	lany      bool   // bound to every address (0.0.0.0)
	raddr     uint32 // the peer, when connected
	rport     uint16
	connected bool
	reuse     bool      // every member set ReusePort
	members   []*Conn   // in bind order
	byShard   [][]*Conn // members bound to each shard (SO_INCOMING_CPU)
}

// NewTable returns an empty table.
func NewTable(cfg Config) (*Table, error) {
	if cfg.Ports == (ephemeral.Range{}) {
		cfg.Ports = ephemeral.DefaultRange
	}
	if cfg.RecvBuffer == 0 {
		cfg.RecvBuffer = DefaultRecvBuffer
	}
	if cfg.RecvBuffer < MinRecvBuffer || cfg.RecvBuffer > MaxRecvBuffer {
		return nil, fmt.Errorf("udp: receive buffer %d out of range %d..%d", cfg.RecvBuffer, MinRecvBuffer, MaxRecvBuffer)
	}
	p, err := ephemeral.NewPicker(cfg.Ports, cfg.Key)
	if err != nil {
		return nil, err
	}
	return &Table{picker: p, key: cfg.Key, rcvbuf: cfg.RecvBuffer}, nil
}

// Counters are the table's failures that a stack adds to its own counts.
type Counters struct {
	OutNoRoutes  uint64 // the number of sends refused for want of a route to the destination (IPSTATS_MIB_OUTNOROUTES)
	OutNoBuffers uint64 // the number of datagrams not built for want of a buffer
}

// Counters returns the table's counters.
func (t *Table) Counters() Counters {
	return Counters{OutNoRoutes: t.noRoutes.Load(), OutNoBuffers: t.noBuffers.Load()}
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// entry is the published bindings of port, or nil.
func (t *Table) entry(port uint16) *portEntry {
	b := t.blocks[port>>8].Load()
	if b == nil {
		return nil
	}
	return b.ports[port&0xff].Load()
}

// setEntry publishes e (nil: none) for port. Under mu.
func (t *Table) setEntry(port uint16, e *portEntry) {
	b := t.blocks[port>>8].Load()
	if b == nil {
		if e == nil {
			return
		}
		b = new(portBlock)
		t.blocks[port>>8].Store(b)
	}
	if e != nil && len(e.binds) == 0 {
		e = nil
	}
	b.ports[port&0xff].Store(e)
}

// Open binds a socket to laddr and, when raddr is valid, connects it there
// (udp_lib_get_port, then ip4_datagram_connect). An unspecified address
// binds every address; port 0 picks an ephemeral port (package
// ephemeral). A connected socket bound to no address gets the source
// address of its route, as Linux's connect sets inet_saddr.
//
// A bind fails with ErrAddrInUse when another socket holds the port on an
// overlapping address (the same, or either unspecified), unless both set
// ReusePort; sockets on the very same addresses then form a group that
// shares the datagrams.
func (t *Table) Open(st Stack, laddr, raddr netip.AddrPort, o Options) (*Conn, error) {
	op := "listen udp"
	if raddr.IsValid() {
		op = "dial udp"
		if !raddr.Addr().Is4() || raddr.Port() == 0 {
			return nil, fmt.Errorf("%s %v: need an IPv4 address and a port", op, raddr)
		}
	}
	addr := laddr.Addr()
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	if !addr.Is4() {
		return nil, fmt.Errorf("%s %v: IPv4 only", op, laddr)
	}
	if o.Shard < AnyShard || o.Shard >= st.Shards() {
		return nil, fmt.Errorf("%s %v: shard %d of %d: %w", op, laddr, o.Shard, st.Shards(), ErrBadShard)
	}
	rcvbuf := o.RecvBuffer
	if rcvbuf == 0 {
		rcvbuf = t.rcvbuf
	}
	if rcvbuf < MinRecvBuffer || rcvbuf > MaxRecvBuffer {
		return nil, fmt.Errorf("%s %v: receive buffer %d out of range %d..%d", op, laddr, rcvbuf, MinRecvBuffer, MaxRecvBuffer)
	}
	rs := st.Routes()
	if !addr.IsUnspecified() {
		if r, ok := rs.Lookup(addr); !ok || r.Kind != route.KindLocal {
			return nil, fmt.Errorf("%s %v: %w", op, laddr, ErrAddrNotAvail)
		}
	}
	src := addr // the address the socket is bound to once open
	if raddr.IsValid() && addr.IsUnspecified() {
		dst := raddr.Addr().As4()
		r, ok := rs.Lookup4(dst)
		if !ok {
			t.noRoutes.Add(1)
			return nil, fmt.Errorf("%s %v: %w", op, raddr, ErrNoRoute)
		}
		src = netip.AddrFrom4(st.Source(r, dst))
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("%s %v: %w", op, laddr, net.ErrClosed)
	}
	port := laddr.Port()
	if port == 0 {
		var err error
		free := func(p uint16) bool { return t.entry(p) == nil }
		if raddr.IsValid() && o.Shard != AnyShard && st.Shards() > 1 {
			// A connected socket bound to a shard takes a port whose
			// replies land on that shard, as an active open does, so
			// both directions of its flow stay on one shard; if the
			// range has none free, any port.
			ra, la := raddr.Addr().As4(), src.As4()
			port, err = t.picker.Pick(addr, raddr, func(p uint16) bool {
				return free(p) && st.ShardOf(ra, la, raddr.Port(), p) == o.Shard
			})
		}
		if port == 0 {
			port, err = t.picker.Pick(addr, raddr, free)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %v: %w %v (ip_local_port_range): %w", op, laddr, err, t.picker.Range(), ErrAddrInUse)
		}
	}
	e := t.entry(port)
	var join *binding // the group the socket joins, if any
	want := binding{lany: src.IsUnspecified(), connected: raddr.IsValid()}
	if !want.lany {
		want.laddr = addr4(src)
	}
	if want.connected {
		want.raddr, want.rport = addr4(raddr.Addr()), raddr.Port()
	}
	if e != nil {
		reqAny, req := addr.IsUnspecified(), addr4(addr)
		for _, g := range e.binds {
			if !g.lany && !reqAny && g.laddr != req {
				continue // addresses apart: no conflict
			}
			if !o.ReusePort || !g.reuse {
				return nil, fmt.Errorf("%s %v: %w", op, netip.AddrPortFrom(addr, port), ErrAddrInUse)
			}
			if g.lany == want.lany && g.laddr == want.laddr && g.connected == want.connected &&
				g.raddr == want.raddr && g.rport == want.rport {
				join = g
			}
		}
	}
	c := newConn(st, t, netip.AddrPortFrom(src, port), raddr, o, rcvbuf)
	var binds []*binding
	if e != nil {
		binds = make([]*binding, 0, len(e.binds)+1)
		for _, g := range e.binds {
			if g == join {
				g = g.with(c)
			}
			binds = append(binds, g)
		}
	}
	if join == nil {
		g := want
		g.reuse = o.ReusePort
		binds = append(binds, g.with(c))
	}
	t.setEntry(port, &portEntry{binds: binds})
	return c, nil
}

// with is a copy of g with c added.
func (g *binding) with(c *Conn) *binding {
	n := *g
	n.members = append(append(make([]*Conn, 0, len(g.members)+1), g.members...), c)
	n.index()
	return &n
}

// without is a copy of g with c taken out, or nil when none is left.
func (g *binding) without(c *Conn) *binding {
	if len(g.members) == 1 {
		return nil
	}
	n := *g
	n.members = make([]*Conn, 0, len(g.members)-1)
	for _, m := range g.members {
		if m != c {
			n.members = append(n.members, m)
		}
	}
	n.index()
	return &n
}

// index fills byShard from members.
func (g *binding) index() {
	g.byShard = nil
	for _, m := range g.members {
		if m.shard < 0 {
			continue
		}
		for len(g.byShard) <= m.shard {
			g.byShard = append(g.byShard, nil)
		}
		g.byShard[m.shard] = append(g.byShard[m.shard], m)
	}
}

// remove takes c out of the table, reporting whether it was there; if it
// was, the caller releases c and then calls t.closing.Done.
func (t *Table) remove(c *Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	port := c.laddr.Port()
	e := t.entry(port)
	if e == nil {
		return false
	}
	for i, g := range e.binds {
		for _, m := range g.members {
			if m != c {
				continue
			}
			binds := make([]*binding, 0, len(e.binds))
			binds = append(binds, e.binds[:i]...)
			if n := g.without(c); n != nil {
				binds = append(binds, n)
			}
			binds = append(binds, e.binds[i+1:]...)
			t.setEntry(port, &portEntry{binds: binds})
			t.closing.Add(1)
			return true
		}
	}
	return false
}

// CloseAll closes every socket and frees what they hold, and makes every
// later Open fail: the stack is closing. When it returns no socket of the
// table touches the stack's pool again, nor holds a packet.
func (t *Table) CloseAll() {
	t.mu.Lock()
	t.closed = true
	var cs []*Conn
	for i := range t.blocks {
		b := t.blocks[i].Load()
		if b == nil {
			continue
		}
		for j := range b.ports {
			e := b.ports[j].Load()
			if e == nil {
				continue
			}
			for _, g := range e.binds {
				cs = append(cs, g.members...)
			}
			b.ports[j].Store(nil)
		}
	}
	t.mu.Unlock()
	for _, c := range cs {
		c.closed.Store(true)
		c.release()
	}
	t.closing.Wait() // sockets a Conn.Close took out before us
}

// Len is the number of bound sockets. It walks the table: for tests and
// statistics, not for a hot path.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for i := range t.blocks {
		b := t.blocks[i].Load()
		if b == nil {
			continue
		}
		for j := range b.ports {
			if e := b.ports[j].Load(); e != nil {
				for _, g := range e.binds {
					n += len(g.members)
				}
			}
		}
	}
	return n
}

// starve lists c as short of buffers. Only a failed send calls it, once
// until Tick takes c off, so the lock is off the hot path.
func (t *Table) starve(c *Conn) {
	t.starvedMu.Lock()
	t.starved = append(t.starved, c)
	t.starvedMu.Unlock()
}

// Tick runs the table's periodic work; the stack calls it from its timer
// tick (every 100 ms), holding none of its locks. It gives back the free
// buffers that sockets keep for sending (trim), and tells the pollers of
// each socket whose send found the pool empty that it is writable again
// once buffers are back: the sk_write_space that Linux runs as sent
// buffers are freed, for which the pool has no callback.
func (t *Table) Tick() {
	t.trim(nil)
	t.starvedMu.Lock()
	cs := t.starved
	t.starved = nil
	t.starvedMu.Unlock()
	var still []*Conn
	for _, c := range cs {
		switch {
		case c.closed.Load():
			c.starved.Store(false)
		case c.writable():
			c.starved.Store(false)
			c.n.WriteSpace()
		default:
			still = append(still, c)
		}
	}
	if len(still) > 0 {
		t.starvedMu.Lock()
		t.starved = append(t.starved, still...)
		t.starvedMu.Unlock()
	}
}

// Each sending socket keeps its own cache of the send pool, which a refill
// fills with up to the pool's cache size of free buffers (256 by default):
// forty sockets that each sent once could hold a whole pool of 8192 out of
// everyone's reach, as private receive caches once did. So the caches are
// trimmed. A socket lists itself (held) at its first send after a trim;
// every Tick gives back what the listed sockets keep (one burst to the
// pool's ring, and one refill at the socket's next send: nothing against
// 100 ms of sending), and so does a send that finds the pool empty, before
// it gives up. A trim visits only the sockets that took buffers since the
// last one, so sends failing in a row cost little after the first.

// hold lists c as keeping send buffers. Under c.sendMu, once per trim.
func (t *Table) hold(c *Conn) {
	t.heldMu.Lock()
	t.held = append(t.held, c)
	t.heldMu.Unlock()
}

// trim gives back the free send buffers cached by the listed sockets. A
// socket in the middle of a send (its lock taken: skip's is, by the
// caller) keeps its own and stays listed. It reports whether it gave back
// anything.
func (t *Table) trim(skip *Conn) bool {
	t.heldMu.Lock()
	cs := t.held
	t.held = nil
	t.heldMu.Unlock()
	busy := 0 // the busy ones, kept at the front of cs
	for _, c := range cs {
		if c == skip || !c.sendMu.TryLock() {
			cs[busy] = c
			busy++
			continue
		}
		if c.tx != nil {
			c.tx.cs.For(c.tx.pool).Flush()
			c.tx.held = false
		}
		c.sendMu.Unlock()
	}
	trimmed := busy < len(cs)
	clear(cs[busy:])
	t.heldMu.Lock()
	t.held = append(cs[:busy], t.held...) // and those listed meanwhile; the array is reused
	t.heldMu.Unlock()
	return trimmed
}

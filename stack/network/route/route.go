package route

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Kind says what to do with a datagram that matched a route, like the
// route types of Linux (RTN_LOCAL, RTN_BROADCAST, RTN_UNICAST with and
// without a gateway).
type Kind uint8

const (
	// KindGateway sends the datagram to the route's next hop.
	KindGateway Kind = iota + 1
	// KindConnected sends it straight to the destination on the device's
	// link (a subnet route: the destination is its own next hop).
	KindConnected
	// KindLocal delivers it to this host.
	KindLocal
	// KindBroadcast delivers it locally and, on output, sends it as a link
	// broadcast.
	KindBroadcast
)

func (k Kind) String() string {
	switch k {
	case KindGateway:
		return "gateway"
	case KindConnected:
		return "connected"
	case KindLocal:
		return "local"
	case KindBroadcast:
		return "broadcast"
	}
	return "none"
}

// Route is one entry of a table.
type Route struct {
	Prefix  netip.Prefix
	Kind    Kind
	NextHop netip.Addr // the gateway, for KindGateway only
	Dev     int        // device (port) index
	Src     netip.Addr // preferred source address, or the zero Addr
	Metric  int        // lower wins among routes to the same prefix
}

// Result is the outcome of a lookup, kept small (24 bytes) and copied
// straight out of the table because it is returned on every packet.
// Addresses are [4]byte, the form the transmit path writes into headers and
// resolves with ARP. Gateway is set for KindGateway only; Src is the route's
// preferred source, or 0.0.0.0 for none.
type Result struct {
	Kind    Kind
	Bits    uint8 // length of the matched prefix
	Dev     int
	Gateway [4]byte
	Src     [4]byte
}

// NextHop is the address to resolve on the link for a datagram to dst: the
// gateway, or dst itself when it is on-link or local (rt_nexthop).
func (r Result) NextHop(dst [4]byte) [4]byte {
	if r.Kind == KindGateway {
		return r.Gateway
	}
	return dst
}

// Route table errors.
var (
	ErrPrefix   = errors.New("ipv4 route: prefix is not a valid IPv4 prefix")
	ErrNextHop  = errors.New("ipv4 route: next hop is not an IPv4 address")
	ErrKind     = errors.New("ipv4 route: unknown route kind, or a gateway route without a next hop")
	ErrExists   = errors.New("ipv4 route: a route to this prefix with this metric exists")
	ErrNotFound = errors.New("ipv4 route: no such route")
)

// Table is an IPv4 routing table with longest-prefix-match lookup (a
// fib_table and its fib_lookup).
//
// Lookups are read-mostly and hot; changes are rare. So the table is kept as
// an immutable snapshot that a change rebuilds and publishes with one atomic
// store, like an RCU update: Lookup takes no lock, never allocates, and may
// run on any number of goroutines while another adds or deletes routes.
//
// The snapshot flattens the nested prefixes into disjoint address intervals,
// each naming its most specific route, so a lookup is a binary search over a
// sorted array of interval starts. A 4096-entry index on the top 12 address
// bits narrows the search to the intervals of one /12 block first: for a few
// thousand routes a lookup touches two or three cache lines. A change costs
// O(n) to rebuild, which is fine for a control path; use AddBatch to load
// many routes at once.
//
// The zero Table is empty and ready to use.
type Table struct {
	mu     sync.Mutex
	routes []Route // every route, sorted by address, prefix length, metric
	fib    atomic.Pointer[fib]
	gen    atomic.Uint64 // snapshots published; bumped after each store of fib
}

// fib is one immutable snapshot of a Table.
type fib struct {
	starts []uint32 // interval starts; starts[0] == 0
	// Per interval, the answer; Kind 0 means no route.
	result []Result
	index  [indexBlocks + 1]uint32
}

const (
	indexBits   = 12
	indexBlocks = 1 << indexBits
	indexShift  = 32 - indexBits
)

// Lookup finds the most specific route to dst. It returns false when no
// route covers dst or dst is not an IPv4 address.
func (t *Table) Lookup(dst netip.Addr) (Result, bool) {
	if !dst.Is4() {
		return Result{}, false
	}
	return t.lookup(addrBits(dst))
}

// Lookup4 is Lookup for an address as it appears in a header.
func (t *Table) Lookup4(dst [4]byte) (Result, bool) {
	return t.lookup(binary.BigEndian.Uint32(dst[:]))
}

// addrBits is an IPv4 address as a number.
func addrBits(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func (t *Table) lookup(a uint32) (Result, bool) {
	f := t.fib.Load()
	if f == nil {
		return Result{}, false
	}
	lo, hi := f.index[a>>indexShift], f.index[a>>indexShift+1]
	starts := f.starts
	for lo < hi { // the last interval in [lo, hi] that starts at or before a
		mid := (lo + hi + 1) / 2
		if starts[mid] <= a {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	r := &f.result[lo]
	return *r, r.Kind != 0
}

// Add adds a unicast route: via nexthop when it is a valid address other
// than 0.0.0.0 (KindGateway), else directly connected on dev
// (KindConnected).
func (t *Table) Add(prefix netip.Prefix, nexthop netip.Addr, dev int, metric int) error {
	r := Route{Prefix: prefix, Kind: KindConnected, Dev: dev, Metric: metric}
	if nexthop.IsValid() && !nexthop.IsUnspecified() {
		r.Kind, r.NextHop = KindGateway, nexthop
	}
	return t.AddRoute(r)
}

// AddRoute adds a route of any kind, with a preferred source address.
func (t *Table) AddRoute(r Route) error { return t.AddBatch([]Route{r}) }

// AddBatch adds routes all at once, with one rebuild: all or none.
func (t *Table) AddBatch(rs []Route) error {
	clean := make([]Route, 0, len(rs))
	for _, r := range rs {
		r, err := normalise(r)
		if err != nil {
			return err
		}
		clean = append(clean, r)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make([]Route, 0, len(t.routes)+len(clean))
	next = append(next, t.routes...)
	next = append(next, clean...)
	slices.SortStableFunc(next, compareRoutes)
	for i := 1; i < len(next); i++ {
		if next[i].Prefix == next[i-1].Prefix && next[i].Metric == next[i-1].Metric {
			return ErrExists
		}
	}
	t.publish(next)
	return nil
}

// Delete removes the route to prefix with the given metric.
func (t *Table) Delete(prefix netip.Prefix, metric int) error {
	if !prefix.IsValid() || !prefix.Addr().Is4() {
		return ErrPrefix
	}
	prefix = prefix.Masked()
	return t.deleteFunc(func(r *Route) bool { return r.Prefix == prefix && r.Metric == metric })
}

// deleteFunc removes every route del selects, or returns ErrNotFound.
func (t *Table) deleteFunc(del func(*Route) bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make([]Route, 0, len(t.routes))
	for i := range t.routes {
		if !del(&t.routes[i]) {
			next = append(next, t.routes[i])
		}
	}
	if len(next) == len(t.routes) {
		return ErrNotFound
	}
	t.publish(next)
	return nil
}

// Routes returns a copy of every route, sorted by prefix, then metric.
func (t *Table) Routes() []Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.routes)
}

// Len is the number of routes.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.routes)
}

func normalise(r Route) (Route, error) {
	if !r.Prefix.IsValid() || !r.Prefix.Addr().Is4() {
		return Route{}, ErrPrefix
	}
	r.Prefix = r.Prefix.Masked()
	switch r.Kind {
	case KindGateway:
		if !r.NextHop.Is4() || r.NextHop.IsUnspecified() {
			return Route{}, ErrNextHop
		}
	case KindConnected, KindLocal, KindBroadcast:
		r.NextHop = netip.Addr{}
	default:
		return Route{}, ErrKind
	}
	if r.Src.IsValid() && !r.Src.Is4() {
		return Route{}, ErrNextHop
	}
	return r, nil
}

// compareRoutes orders by network address, then shorter prefix first (so a
// covering prefix precedes the prefixes inside it), then metric.
func compareRoutes(a, b Route) int {
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()); c != 0 {
		return c
	}
	return cmp.Compare(a.Metric, b.Metric)
}

// publish installs routes (sorted) and a snapshot built from them.
func (t *Table) publish(routes []Route) {
	t.routes = routes
	f := &fib{}
	// The best route of each prefix is the first of its run: lowest metric.
	var prefixes []netip.Prefix
	entries := []Result{{}} // entries[0] is "no route"
	for i, r := range routes {
		if i > 0 && r.Prefix == routes[i-1].Prefix {
			continue
		}
		e := Result{Kind: r.Kind, Bits: uint8(r.Prefix.Bits()), Dev: r.Dev}
		if r.Kind == KindGateway {
			e.Gateway = r.NextHop.As4()
		}
		if r.Src.IsValid() {
			e.Src = r.Src.As4()
		}
		entries = append(entries, e)
		prefixes = append(prefixes, r.Prefix)
	}
	type open struct {
		hi uint64 // last address of the prefix
		e  int32
	}
	var stack []open
	cur := uint64(0) // first address not yet given an interval
	last := int32(-2)
	emit := func(end uint64, e int32) { // [cur, end) goes to e
		if cur >= end {
			return
		}
		if e != last {
			f.starts = append(f.starts, uint32(cur))
			f.result = append(f.result, entries[e+1])
		}
		last = e
		cur = end
	}
	top := func() int32 {
		if len(stack) == 0 {
			return -1
		}
		return stack[len(stack)-1].e
	}
	for i, p := range prefixes {
		a4 := p.Addr().As4()
		lo := uint64(binary.BigEndian.Uint32(a4[:]))
		hi := lo + (uint64(1) << (32 - p.Bits())) - 1
		// Close the prefixes that end before this one starts; prefixes
		// either nest or are disjoint, so the stack is a chain of parents.
		for len(stack) > 0 && stack[len(stack)-1].hi < lo {
			o := stack[len(stack)-1]
			emit(o.hi+1, o.e)
			stack = stack[:len(stack)-1]
		}
		emit(lo, top())
		stack = append(stack, open{hi, int32(i)})
	}
	for len(stack) > 0 {
		o := stack[len(stack)-1]
		emit(o.hi+1, o.e)
		stack = stack[:len(stack)-1]
	}
	emit(1<<32, -1)
	// index[b] is the interval holding the first address of block b.
	j := 0
	for b := 0; b < indexBlocks; b++ {
		a := uint32(b) << indexShift
		for j+1 < len(f.starts) && f.starts[j+1] <= a {
			j++
		}
		f.index[b] = uint32(j)
	}
	f.index[indexBlocks] = uint32(len(f.starts) - 1)
	t.fib.Store(f)
	t.gen.Add(1) // after the store: a cache that sees the new number sees f
}

// Routes is the pair of tables an input or output route lookup consults, as
// Linux's local and main tables (fib_lookup without policy rules): Local
// holds this host's addresses and broadcasts, Main everything else. Local is
// checked first, so a local address wins over any route in Main.
type Routes struct {
	Local, Main *Table
}

// NewRoutes returns empty Local and Main tables.
func NewRoutes() *Routes { return &Routes{Local: new(Table), Main: new(Table)} }

// Lookup checks Local, then Main. The limited broadcast 255.255.255.255 is
// not routed; the caller recognises it before the lookup, as Linux's
// ip_route_input does.
func (rs *Routes) Lookup(dst netip.Addr) (Result, bool) {
	if !dst.Is4() {
		return Result{}, false
	}
	return rs.lookup(addrBits(dst))
}

// Lookup4 is Lookup for an address as it appears in a header.
func (rs *Routes) Lookup4(dst [4]byte) (Result, bool) {
	return rs.lookup(binary.BigEndian.Uint32(dst[:]))
}

func (rs *Routes) lookup(a uint32) (Result, bool) {
	if rs.Local != nil {
		if r, ok := rs.Local.lookup(a); ok {
			return r, true
		}
	}
	if rs.Main != nil {
		return rs.Main.lookup(a)
	}
	return Result{}, false
}

// AddAddress installs the routes an interface address implies, as
// fib_add_ifaddr does: the address itself as KindLocal and, when the subnet
// has one, its broadcast address as KindBroadcast in Local; the subnet as
// KindConnected in Main. Each uses the address as its preferred source. A
// second address in a subnet already present adds only its local route.
func (rs *Routes) AddAddress(addr netip.Prefix, dev int) error {
	return rs.addAddress(addr, dev, KindConnected)
}

// AddLoopback is AddAddress for an address of a loopback device: the whole
// subnet is this host, so it goes to Local as KindLocal instead of to Main
// (fib_add_ifaddr on an IFF_LOOPBACK device; Linux's local table holds
// "local 127.0.0.0/8 dev lo").
func (rs *Routes) AddLoopback(addr netip.Prefix, dev int) error {
	return rs.addAddress(addr, dev, KindLocal)
}

func (rs *Routes) addAddress(addr netip.Prefix, dev int, subnet Kind) error {
	if !addr.IsValid() || !addr.Addr().Is4() {
		return ErrPrefix
	}
	a := addr.Addr()
	if err := rs.Local.AddRoute(Route{Prefix: netip.PrefixFrom(a, 32), Kind: KindLocal, Dev: dev, Src: a}); err != nil {
		return err
	}
	if b, ok := Broadcast(addr); ok {
		err := rs.Local.AddRoute(Route{Prefix: netip.PrefixFrom(b, 32), Kind: KindBroadcast, Dev: dev, Src: a})
		if err != nil && err != ErrExists {
			return err
		}
	}
	if addr.Bits() < 32 {
		t := rs.Main
		if subnet == KindLocal {
			t = rs.Local
		}
		err := t.AddRoute(Route{Prefix: addr.Masked(), Kind: subnet, Dev: dev, Src: a})
		if err != nil && err != ErrExists {
			return err
		}
	}
	return nil
}

// DeleteAddress removes the routes AddAddress or AddLoopback installed for
// addr: its local route, and the broadcast and subnet routes whose
// preferred source it is.
// Unlike Linux, it does not promote a secondary address of the same subnet
// to own those routes: delete and re-add the secondary to restore them.
func (rs *Routes) DeleteAddress(addr netip.Prefix, dev int) error {
	if !addr.IsValid() || !addr.Addr().Is4() {
		return ErrPrefix
	}
	a := addr.Addr()
	if err := rs.Local.deleteFunc(func(r *Route) bool {
		return r.Kind == KindLocal && r.Prefix == netip.PrefixFrom(a, 32) && r.Dev == dev
	}); err != nil {
		return err
	}
	if b, ok := Broadcast(addr); ok {
		bcast := netip.PrefixFrom(b, 32)
		rs.Local.deleteFunc(func(r *Route) bool {
			return r.Kind == KindBroadcast && r.Prefix == bcast && r.Src == a && r.Dev == dev
		})
	}
	subnet := func(r *Route) bool {
		return (r.Kind == KindConnected || r.Kind == KindLocal) && r.Prefix == addr.Masked() && r.Prefix.Bits() < 32 && r.Src == a && r.Dev == dev
	}
	rs.Main.deleteFunc(subnet)
	rs.Local.deleteFunc(subnet)
	return nil
}

// Broadcast is the directed broadcast address of addr's subnet, its last
// address. A /31 has none (RFC 3021: both of its addresses are hosts, the
// point-to-point link's two ends) and neither has a /32: ok is false.
// This is the one definition the stack uses.
func Broadcast(addr netip.Prefix) (b netip.Addr, ok bool) {
	if !addr.IsValid() || !addr.Addr().Is4() || addr.Bits() >= 31 {
		return netip.Addr{}, false
	}
	a4 := addr.Addr().As4()
	v := binary.BigEndian.Uint32(a4[:]) | ^uint32(0)>>addr.Bits()
	binary.BigEndian.PutUint32(a4[:], v)
	return netip.AddrFrom4(a4), true
}

package route

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

func addrOf(v uint32) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

// bruteLookup is the definition of longest-prefix match: among the routes
// whose prefix contains dst, the longest prefix, then the lowest metric.
func bruteLookup(rs []Route, dst netip.Addr) (Route, bool) {
	best, found := Route{}, false
	for _, r := range rs {
		if !r.Prefix.Contains(dst) {
			continue
		}
		if !found || r.Prefix.Bits() > best.Prefix.Bits() ||
			r.Prefix.Bits() == best.Prefix.Bits() && r.Metric < best.Metric {
			best, found = r, true
		}
	}
	return best, found
}

// randomTable makes n routes clustered so prefixes nest often.
func randomTable(rng *rand.Rand, n int) []Route {
	var rs []Route
	seen := map[[2]int]bool{}
	bases := []uint32{0x0a000000, 0xc6120000, 0xc0a80000, rng.Uint32()}
	for len(rs) < n {
		bits := rng.IntN(33)
		base := bases[rng.IntN(len(bases))]
		if rng.IntN(4) == 0 {
			base = rng.Uint32()
		}
		a := base ^ rng.Uint32()>>uint(8+rng.IntN(24))
		p := netip.PrefixFrom(addrOf(a), bits).Masked()
		metric := rng.IntN(3)
		k := [2]int{int(u32(p.Addr())) ^ bits<<32, metric}
		if seen[k] {
			continue
		}
		seen[k] = true
		r := Route{Prefix: p, Kind: KindConnected, Dev: len(rs), Metric: metric}
		if rng.IntN(2) == 0 {
			r.Kind, r.NextHop = KindGateway, addrOf(rng.Uint32()|1)
		}
		rs = append(rs, r)
	}
	return rs
}

func checkAgainstBrute(t *testing.T, tb *Table, rs []Route, rng *rand.Rand, probes int) {
	t.Helper()
	check := func(dst netip.Addr) {
		want, wok := bruteLookup(rs, dst)
		got, gok := tb.Lookup(dst)
		if got4, ok4 := tb.Lookup4(dst.As4()); got4 != got || ok4 != gok {
			t.Fatalf("Lookup4(%v) = %+v %v, Lookup = %+v %v", dst, got4, ok4, got, gok)
		}
		if wok != gok || wok && (int(got.Bits) != want.Prefix.Bits() || got.Dev != want.Dev || got.Kind != want.Kind) {
			t.Fatalf("Lookup(%v): got %+v %v, want %+v %v", dst, got, gok, want, wok)
		}
		if gok && got.Kind == KindGateway && got.NextHop(dst.As4()) != want.NextHop.As4() || gok && got.Kind != KindGateway && got.NextHop(dst.As4()) != dst.As4() {
			t.Fatalf("Lookup(%v): next hop %v", dst, got.NextHop(dst.As4()))
		}
	}
	for range probes {
		check(addrOf(rng.Uint32()))
	}
	// Probe prefix edges and their neighbours: every prefix's in small
	// tables, a random few hundred in large ones (the reference is slow).
	edges := rs
	if len(rs) > 300 {
		edges = make([]Route, 300)
		for i := range edges {
			edges[i] = rs[rng.IntN(len(rs))]
		}
	}
	for _, r := range edges {
		lo := u32(r.Prefix.Addr())
		hi := lo | ^uint32(0)>>r.Prefix.Bits()
		for _, v := range []uint32{lo, hi, lo - 1, hi + 1, lo + (hi-lo)/2} {
			check(addrOf(v))
		}
	}
}

func TestLookupMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 5, 30, 300, 2000} {
		rs := randomTable(rng, n)
		var tb Table
		if err := tb.AddBatch(rs); err != nil {
			t.Fatal(err)
		}
		checkAgainstBrute(t, &tb, rs, rng, 2000)
		// Delete a third, one at a time, and check again.
		for i := 0; i < len(rs)/3; i++ {
			k := rng.IntN(len(rs))
			if err := tb.Delete(rs[k].Prefix, rs[k].Metric); err != nil {
				t.Fatal(err)
			}
			rs = append(rs[:k], rs[k+1:]...)
		}
		if tb.Len() != len(rs) {
			t.Fatalf("Len %d, want %d", tb.Len(), len(rs))
		}
		checkAgainstBrute(t, &tb, rs, rng, 2000)
	}
}

func TestTableEdges(t *testing.T) {
	var tb Table
	if _, ok := tb.Lookup(netip.MustParseAddr("1.2.3.4")); ok {
		t.Fatal("empty table matched")
	}
	def := netip.MustParsePrefix("0.0.0.0/0")
	gw := netip.MustParseAddr("198.18.0.254")
	if err := tb.Add(def, gw, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(def, gw, 1, 0); err != ErrExists {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := tb.Add(netip.MustParsePrefix("255.255.255.255/32"), netip.Addr{}, 2, 0); err != nil {
		t.Fatal(err)
	}
	if r, ok := tb.Lookup(netip.MustParseAddr("255.255.255.255")); !ok || r.Dev != 2 || r.Kind != KindConnected {
		t.Fatalf("top address: %+v %v", r, ok)
	}
	if r, ok := tb.Lookup(netip.MustParseAddr("255.255.255.254")); !ok || r.Gateway != gw.As4() || r.Kind != KindGateway || r.Bits != 0 {
		t.Fatalf("default route: %+v %v", r, ok)
	}
	if _, ok := tb.Lookup(netip.MustParseAddr("::1")); ok {
		t.Fatal("IPv6 address matched")
	}
	if _, ok := tb.Lookup(netip.Addr{}); ok {
		t.Fatal("zero address matched")
	}
	for _, c := range []struct {
		p   netip.Prefix
		nh  netip.Addr
		err error
	}{
		{netip.MustParsePrefix("::/0"), netip.Addr{}, ErrPrefix},
		{netip.Prefix{}, netip.Addr{}, ErrPrefix},
		{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("fe80::1"), ErrNextHop},
	} {
		if err := tb.Add(c.p, c.nh, 0, 0); err != c.err {
			t.Errorf("Add(%v, %v): %v want %v", c.p, c.nh, err, c.err)
		}
	}
	if err := tb.AddRoute(Route{Prefix: def, Kind: 0}); err != ErrKind {
		t.Fatal(err)
	}
	if err := tb.AddRoute(Route{Prefix: def, Kind: KindGateway}); err != ErrNextHop {
		t.Fatal(err)
	}
	if err := tb.Delete(netip.MustParsePrefix("10.0.0.0/8"), 0); err != ErrNotFound {
		t.Fatal(err)
	}
	// A host-bits prefix is masked; a lower metric wins; deleting it
	// uncovers the other.
	tb.Add(netip.MustParsePrefix("10.1.2.3/16"), netip.Addr{}, 5, 10)
	tb.Add(netip.MustParsePrefix("10.1.0.0/16"), netip.Addr{}, 6, 5)
	if r, _ := tb.Lookup(netip.MustParseAddr("10.1.9.9")); r.Dev != 6 {
		t.Fatalf("metric: %+v", r)
	}
	tb.Delete(netip.MustParsePrefix("10.1.0.0/16"), 5)
	if r, _ := tb.Lookup(netip.MustParseAddr("10.1.9.9")); r.Dev != 5 || r.Bits != 16 {
		t.Fatalf("after delete: %+v", r)
	}
	if len(tb.Routes()) != 3 {
		t.Fatalf("Routes: %v", tb.Routes())
	}
}

func TestRoutesLocalFirst(t *testing.T) {
	rs := NewRoutes()
	addr := netip.MustParsePrefix("198.18.0.1/24")
	if err := rs.AddAddress(addr, 1); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddAddress(netip.MustParsePrefix("198.18.0.7/24"), 1); err != nil {
		t.Fatalf("secondary address: %v", err)
	}
	if err := rs.AddAddress(addr, 1); err != ErrExists {
		t.Fatalf("same address twice: %v", err)
	}
	rs.Main.Add(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("198.18.0.254"), 1, 0)
	rs.Main.Add(netip.MustParsePrefix("198.18.0.1/32"), netip.MustParseAddr("198.18.0.9"), 2, 0)
	for _, c := range []struct {
		dst  string
		kind Kind
		nh   string
	}{
		{"198.18.0.1", KindLocal, "198.18.0.1"}, // local wins over a /32 in main
		{"198.18.0.7", KindLocal, "198.18.0.7"},
		{"198.18.0.255", KindBroadcast, "198.18.0.255"},
		{"198.18.0.77", KindConnected, "198.18.0.77"},
		{"8.8.8.8", KindGateway, "198.18.0.254"},
	} {
		r, ok := rs.Lookup(netip.MustParseAddr(c.dst))
		if r4, ok4 := rs.Lookup4(netip.MustParseAddr(c.dst).As4()); r4 != r || ok4 != ok {
			t.Errorf("%s: Lookup4 %+v, Lookup %+v", c.dst, r4, r)
		}
		if !ok || r.Kind != c.kind || r.NextHop(netip.MustParseAddr(c.dst).As4()) != netip.MustParseAddr(c.nh).As4() || r.Kind != KindGateway && r.Src != addr.Addr().As4() && c.dst != "198.18.0.7" {
			t.Errorf("%s: %+v %v, want %v via %s", c.dst, r, ok, c.kind, c.nh)
		}
	}
	if err := rs.DeleteAddress(addr, 1); err != nil {
		t.Fatal(err)
	}
	if r, _ := rs.Lookup(netip.MustParseAddr("198.18.0.1")); r.Kind != KindGateway || r.Dev != 2 {
		t.Fatalf("after DeleteAddress: %+v", r)
	}
	if err := rs.DeleteAddress(addr, 1); err != ErrNotFound {
		t.Fatal(err)
	}
	if err := rs.AddAddress(netip.MustParsePrefix("2001:db8::1/64"), 1); err != ErrPrefix {
		t.Fatal(err)
	}
	var empty Routes
	if _, ok := empty.Lookup(netip.MustParseAddr("1.1.1.1")); ok {
		t.Fatal("nil tables matched")
	}
	if _, ok := rs.Lookup(netip.MustParseAddr("::ffff:1.1.1.1")); ok {
		t.Fatal("nil tables matched")
	}
	if KindLocal.String() != "local" || Kind(0).String() != "none" || KindGateway.String() != "gateway" ||
		KindConnected.String() != "connected" || KindBroadcast.String() != "broadcast" {
		t.Fatal("Kind.String")
	}
}

// TestLookupDuringUpdates runs lookups while routes change; under -race it
// shows the snapshot publication is safe without a lock on the read side.
func TestLookupDuringUpdates(t *testing.T) {
	var tb Table
	tb.Add(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.1"), 0, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dst := netip.MustParseAddr("10.9.8.7")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, ok := tb.Lookup(dst); !ok {
				t.Error("default route vanished during an update")
				return
			}
		}
	}()
	for i := range 200 {
		p := netip.PrefixFrom(addrOf(0x0a000000|uint32(i)<<8), 24)
		tb.Add(p, netip.Addr{}, i, 0)
		if i%2 == 0 {
			tb.Delete(p, 0)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLookupNoAllocs(t *testing.T) {
	var tb Table
	tb.AddBatch(randomTable(rand.New(rand.NewPCG(1, 1)), 500))
	rs := &Routes{Local: new(Table), Main: &tb}
	dst := netip.MustParseAddr("10.1.2.3")
	if n := testing.AllocsPerRun(100, func() { rs.Lookup(dst) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 3000} {
		rng := rand.New(rand.NewPCG(9, uint64(n)))
		var tb Table
		tb.AddBatch(randomTable(rng, n))
		dsts := make([]netip.Addr, 1024)
		dsts4 := make([][4]byte, 1024)
		for i := range dsts {
			dsts[i] = addrOf(rng.Uint32())
			if i%2 == 0 { // half inside the clusters where routes nest
				dsts[i] = addrOf(0xc6120000 | rng.Uint32()>>16)
			}
			dsts4[i] = dsts[i].As4()
		}
		b.Run(strconv.Itoa(n)+"routes/Lookup4", func(b *testing.B) {
			i := 0
			for b.Loop() {
				tb.Lookup4(dsts4[i&1023])
				i++
			}
		})
		b.Run(strconv.Itoa(n)+"routes/Lookup", func(b *testing.B) {
			i := 0
			for b.Loop() {
				tb.Lookup(dsts[i&1023])
				i++
			}
		})
	}
}

func TestBroadcastIsTheLastAddressAndNoneForASlash31OrSlash32(t *testing.T) {
	for _, c := range []struct {
		prefix, want string
	}{
		{"198.18.0.1/24", "198.18.0.255"},
		{"10.1.2.3/8", "10.255.255.255"},
		{"198.18.0.5/30", "198.18.0.7"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"198.18.0.0/31", ""},
		{"198.18.0.1/31", ""},
		{"198.18.0.1/32", ""},
	} {
		b, ok := Broadcast(netip.MustParsePrefix(c.prefix))
		if c.want == "" && ok || c.want != "" && (!ok || b != netip.MustParseAddr(c.want)) {
			t.Errorf("Broadcast(%s) = %v %v, want %q", c.prefix, b, ok, c.want)
		}
	}
}

// TestASlash31AddressInstallsNoBroadcastRoute: RFC 3021, both addresses of
// a /31 are hosts; the other one is reached on the link.
func TestASlash31AddressInstallsNoBroadcastRoute(t *testing.T) {
	for _, a := range []string{"198.18.0.0/31", "198.18.0.1/31"} {
		rs := NewRoutes()
		p := netip.MustParsePrefix(a)
		if err := rs.AddAddress(p, 1); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"198.18.0.0", "198.18.0.1"} {
			r, ok := rs.Lookup(netip.MustParseAddr(d))
			want := KindConnected
			if d == p.Addr().String() {
				want = KindLocal
			}
			if !ok || r.Kind != want {
				t.Errorf("%s: %s is %v, want %v", a, d, r.Kind, want)
			}
		}
		if err := rs.DeleteAddress(p, 1); err != nil || rs.Local.Len()+rs.Main.Len() != 0 {
			t.Fatalf("%s: delete: %v, %d routes left", a, err, rs.Local.Len()+rs.Main.Len())
		}
	}
}

// TestALoopbackSubnetIsAllLocal: every address of 127.0.0.0/8 is this host,
// as in Linux's local table.
func TestALoopbackSubnetIsAllLocal(t *testing.T) {
	rs := NewRoutes()
	lo := netip.MustParsePrefix("127.0.0.1/8")
	if err := rs.AddLoopback(lo, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst  string
		kind Kind
	}{
		{"127.0.0.1", KindLocal}, {"127.0.0.2", KindLocal}, {"127.200.1.1", KindLocal},
		{"127.255.255.255", KindBroadcast},
	} {
		r, ok := rs.Lookup(netip.MustParseAddr(c.dst))
		if !ok || r.Kind != c.kind || r.Dev != 0 || r.Src != lo.Addr().As4() {
			t.Errorf("%s: %+v %v, want %v from 127.0.0.1", c.dst, r, ok, c.kind)
		}
	}
	if rs.Main.Len() != 0 {
		t.Fatalf("loopback routes in main: %v", rs.Main.Routes())
	}
	if err := rs.DeleteAddress(lo, 0); err != nil || rs.Local.Len() != 0 {
		t.Fatalf("delete: %v, left %v", err, rs.Local.Routes())
	}
}

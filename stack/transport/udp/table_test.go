package udp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/pollnet/pollnet/stack/transport/ephemeral"
)

func flow(port uint16) netip.AddrPort { return netip.AddrPortFrom(peer, port) }

func TestBindRefusesOverlappingAddressesOnAPort(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	open(t, f, tb, netip.AddrPortFrom(us, 5000), netip.AddrPort{}, noShard)
	for _, laddr := range []netip.AddrPort{netip.AddrPortFrom(us, 5000), any4(5000)} {
		if _, err := tb.Open(f, laddr, netip.AddrPort{}, noShard); !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("bind %v over 198.18.0.2:5000: %v", laddr, err)
		}
	}
	// Another address of ours on the same port is apart.
	open(t, f, tb, netip.MustParseAddrPort("127.0.0.1:5000"), netip.AddrPort{}, noShard)
	if _, err := tb.Open(f, netip.MustParseAddrPort("198.18.0.9:1"), netip.AddrPort{}, noShard); !errors.Is(err, ErrAddrNotAvail) {
		t.Fatalf("bind to another host's address: %v", err)
	}
	if _, err := tb.Open(f, netip.MustParseAddrPort("[::1]:1"), netip.AddrPort{}, noShard); err == nil {
		t.Fatal("bound an IPv6 address")
	}
}

func TestReusePortSocketsShareAPortAndOthersAreRefused(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	reuse := Options{ReusePort: true, Shard: AnyShard}
	a := open(t, f, tb, any4(5353), netip.AddrPort{}, reuse)
	b := open(t, f, tb, any4(5353), netip.AddrPort{}, reuse)
	if _, err := tb.Open(f, any4(5353), netip.AddrPort{}, noShard); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("a third socket without ReusePort: %v", err)
	}
	if _, err := tb.Open(f, netip.AddrPortFrom(us, 5353), netip.AddrPort{}, noShard); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("a specific address without ReusePort over the group: %v", err)
	}
	// A port taken without ReusePort refuses a socket that sets it.
	open(t, f, tb, any4(5354), netip.AddrPort{}, noShard)
	if _, err := tb.Open(f, any4(5354), netip.AddrPort{}, reuse); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("ReusePort over a socket without it: %v", err)
	}
	// Both receive; once one closes, the other takes every flow.
	got := map[*Conn]int{}
	for p := uint16(1); p <= 200; p++ {
		got[tb.Lookup(flow(p), netip.AddrPortFrom(us, 5353), 0, 0)]++
	}
	if got[a] == 0 || got[b] == 0 || len(got) != 2 {
		t.Fatalf("200 flows over a group of two: %v", got)
	}
	a.Close()
	for p := uint16(1); p <= 200; p++ {
		if c := tb.Lookup(flow(p), netip.AddrPortFrom(us, 5353), 0, 0); c != b {
			t.Fatalf("flow %d went to %p after a closed, want b", p, c)
		}
	}
	// The closed member's place is free for a newcomer.
	open(t, f, tb, any4(5353), netip.AddrPort{}, reuse)
}

func TestFlowsSpreadOverAReusePortGroupAndStick(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	const members, flows = 4, 4000
	dst := netip.AddrPortFrom(us, 5353)
	count := map[*Conn]int{}
	for i := 0; i < members; i++ {
		count[open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: AnyShard})] = 0
	}
	for _, withHash := range []bool{false, true} {
		for c := range count {
			count[c] = 0
		}
		for i := 0; i < flows; i++ {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i))
			var hash uint32
			if withHash {
				hash = uint32(i) * 2654435761 // any spread hash, as a port gives
			}
			c := tb.Lookup(src, dst, 0, hash)
			for k := 0; k < 3; k++ {
				if again := tb.Lookup(src, dst, 0, hash); again != c {
					t.Fatalf("flow %v moved between sockets", src)
				}
			}
			count[c]++
		}
		for c, n := range count {
			if n < flows/members/2 || n > flows/members*2 {
				t.Fatalf("hash given %v: a member got %d of %d flows (%v)", withHash, n, flows, c.LocalAddrPort())
			}
		}
	}
}

func TestAMemberBoundToAShardGetsWhatThatShardReceives(t *testing.T) {
	f, tb := newFakeStack(t, 64, 4)
	dst := netip.AddrPortFrom(us, 5353)
	free1 := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: AnyShard})
	on1 := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: 1})
	on3a := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: 3})
	on3b := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: 3})
	free2 := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: AnyShard})
	got := map[int]map[*Conn]int{}
	for shard := 0; shard < 4; shard++ {
		got[shard] = map[*Conn]int{}
		for p := uint16(1); p <= 1000; p++ {
			got[shard][tb.Lookup(flow(p), dst, shard, 0)]++
		}
	}
	if len(got[1]) != 1 || got[1][on1] != 1000 {
		t.Fatalf("shard 1's flows: %v", got[1])
	}
	if len(got[3]) != 2 || got[3][on3a] == 0 || got[3][on3b] == 0 {
		t.Fatalf("shard 3's flows, over its two members: %v", got[3])
	}
	// No member on shards 0 and 2: their flows spread over the group.
	for _, shard := range []int{0, 2} {
		if len(got[shard]) != 5 || got[shard][free1] == 0 || got[shard][free2] == 0 {
			t.Fatalf("shard %d's flows: %v", shard, got[shard])
		}
	}
}

func TestLookupPrefersConnectedThenBoundThenWildcard(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	reuse := Options{ReusePort: true, Shard: AnyShard}
	wild := open(t, f, tb, any4(6000), netip.AddrPort{}, reuse)
	bound := open(t, f, tb, netip.AddrPortFrom(us, 6000), netip.AddrPort{}, reuse)
	conn := open(t, f, tb, netip.AddrPortFrom(us, 6000), flow(53), reuse)
	lo := netip.MustParseAddrPort("127.0.0.1:6000")
	for _, e := range []struct {
		src, dst netip.AddrPort
		want     *Conn
	}{
		{flow(53), netip.AddrPortFrom(us, 6000), conn},
		{flow(54), netip.AddrPortFrom(us, 6000), bound},
		{netip.AddrPortFrom(farAway, 53), netip.AddrPortFrom(us, 6000), bound},
		{flow(53), lo, wild},
		{flow(53), netip.AddrPortFrom(us, 6001), nil},
	} {
		if c := tb.Lookup(e.src, e.dst, 0, 0); c != e.want {
			t.Errorf("%v -> %v: got %v, want %v", e.src, e.dst, addrOf(c), addrOf(e.want))
		}
	}
}

func addrOf(c *Conn) string {
	if c == nil {
		return "none"
	}
	return c.LocalAddrPort().String() + "->" + c.RemoteAddrPort().String()
}

func TestICMPErrorsReachOnlyAConnectedSocketOfTheFlowAndOnlyHardOnes(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, netip.AddrPortFrom(us, 7000), flow(53), noShard)
	u := open(t, f, tb, netip.AddrPortFrom(us, 7001), netip.AddrPort{}, noShard)
	if told, owned := tb.Err(netip.AddrPortFrom(us, 7002), flow(53), syscall.ECONNREFUSED, true); told != nil || owned {
		t.Fatal("an error about no socket's flow")
	}
	if told, owned := tb.Err(u.LocalAddrPort(), flow(53), syscall.ECONNREFUSED, true); told != nil || !owned {
		t.Fatal("an unconnected socket was told")
	}
	if told, owned := tb.Err(c.LocalAddrPort(), flow(53), syscall.EHOSTUNREACH, false); told != nil || !owned {
		t.Fatal("a soft error was told")
	}
	if told, owned := tb.Err(c.LocalAddrPort(), flow(53), syscall.ECONNREFUSED, true); told != c || !owned {
		t.Fatal("the connected socket was not told")
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read after the error: %v", err)
	}
}

func TestLookupAndErrDoNotAllocate(t *testing.T) {
	f, tb := newFakeStack(t, 64, 2)
	for i := 0; i < 3; i++ {
		open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: i % 2})
	}
	open(t, f, tb, netip.AddrPortFrom(us, 7000), flow(53), noShard)
	dst := netip.AddrPortFrom(us, 5353)
	if a := testing.AllocsPerRun(1000, func() {
		tb.Lookup(flow(1), dst, 0, 0)
		tb.Lookup(flow(2), dst, 1, 12345)
		tb.Lookup(flow(3), netip.AddrPortFrom(us, 9), 0, 0)
		tb.Err(netip.AddrPortFrom(us, 7000), flow(53), syscall.ECONNREFUSED, true)
		tb.Err(netip.AddrPortFrom(us, 7001), flow(53), syscall.ECONNREFUSED, true)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func TestEphemeralPortsComeFromTheRangeAndRunOut(t *testing.T) {
	f, _ := newFakeStack(t, 64, 1)
	tb, err := NewTable(Config{Ports: ephemeral.Range{Low: 40000, High: 40003}})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.CloseAll()
	seen := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		c := open(t, f, tb, any4(0), netip.AddrPort{}, noShard)
		p := c.LocalAddrPort().Port()
		if p < 40000 || p > 40003 || seen[p] {
			t.Fatalf("bind %d got port %d (had %v)", i, p, seen)
		}
		seen[p] = true
	}
	if _, err := tb.Open(f, any4(0), netip.AddrPort{}, noShard); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("with the range used up: %v", err)
	}
	if tb.Len() != 4 {
		t.Fatalf("%d sockets", tb.Len())
	}
}

func TestCloseAllClosesEverySocketAndRefusesNewOnes(t *testing.T) {
	f, tb := newFakeStack(t, 256, 1)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, noShard)
	d := open(t, f, tb, any4(7001), netip.AddrPort{}, noShard)
	d.WriteToUDPAddrPort([]byte("makes its caches"), flow(1))
	if !c.Deliver(f.packet(28, []byte("queued")), 28, 6, flow(1)) {
		t.Fatal("deliver")
	}
	tb.CloseAll()
	if _, err := tb.Open(f, any4(7002), netip.AddrPort{}, noShard); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("open after CloseAll: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close after CloseAll: %v", err)
	}
	if _, _, ok := c.TryRead(make([]byte, 10)); ok {
		t.Fatal("read a datagram after CloseAll")
	}
	late := f.packet(28, []byte("late"))
	if c.Deliver(late, 28, 4, flow(1)) {
		t.Fatal("a closed socket took a datagram")
	}
	f.free(late)
	if tb.Len() != 0 || tb.Lookup(flow(1), netip.AddrPortFrom(us, 7000), 0, 0) != nil {
		t.Fatal("sockets left in the table")
	}
	// The pool check at cleanup shows the queued packet and the send
	// caches came back.
}

// TestLookupsRunWhileSocketsBindAndClose: under -race, readers of the
// table need no lock while binds and closes replace its entries.
func TestLookupsRunWhileSocketsBindAndClose(t *testing.T) {
	f, tb := newFakeStack(t, 64, 2)
	dst := netip.AddrPortFrom(us, 5353)
	keep := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: AnyShard})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint16(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if tb.Lookup(flow(i), dst, g, 0) == nil {
					t.Error("the group vanished")
					return
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		c := open(t, f, tb, any4(5353), netip.AddrPort{}, Options{ReusePort: true, Shard: i % 2})
		e := open(t, f, tb, any4(0), netip.AddrPort{}, noShard)
		c.Close()
		e.Close()
	}
	close(stop)
	wg.Wait()
	if tb.Len() != 1 || tb.Lookup(flow(1), dst, 0, 0) != keep {
		t.Fatalf("%d sockets left", tb.Len())
	}
}

// TestAConnectedSocketOnAShardTakesAPortWhoseRepliesLandThere: an
// ephemeral port is picked so that the peer's answers arrive on the shard
// the socket sends from.
func TestAConnectedSocketOnAShardTakesAPortWhoseRepliesLandThere(t *testing.T) {
	f, tb := newFakeStack(t, 64, 4)
	raddr := netip.AddrPortFrom(peer, 53)
	for shard := range 4 {
		for range 20 {
			c := open(t, f, tb, netip.AddrPort{}, raddr, Options{Shard: shard})
			la := c.LocalAddrPort()
			if got := f.ShardOf(peer.As4(), la.Addr().As4(), 53, la.Port()); got != shard {
				t.Fatalf("socket on shard %d took port %d, whose replies land on shard %d", shard, la.Port(), got)
			}
		}
	}
}

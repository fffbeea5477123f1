package route

import (
	"net/netip"
	"sync"
	"testing"
)

func newTestRoutes(t *testing.T) *Routes {
	t.Helper()
	rs := NewRoutes()
	if err := rs.AddAddress(netip.MustParsePrefix("198.18.0.2/24"), 1); err != nil {
		t.Fatal(err)
	}
	if err := rs.Main.Add(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("198.18.0.1"), 1, 0); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestGenGrowsWithEveryChangeToEitherTable(t *testing.T) {
	rs := newTestRoutes(t)
	g := rs.Gen()
	if err := rs.Main.Add(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("198.18.0.9"), 1, 0); err != nil {
		t.Fatal(err)
	}
	if rs.Gen() <= g {
		t.Fatalf("gen %d after a route was added to Main, was %d", rs.Gen(), g)
	}
	g = rs.Gen()
	if err := rs.AddAddress(netip.MustParsePrefix("198.18.1.2/32"), 1); err != nil {
		t.Fatal(err)
	}
	if rs.Gen() <= g {
		t.Fatalf("gen %d after an address was added to Local, was %d", rs.Gen(), g)
	}
	g = rs.Gen()
	if err := rs.Main.Delete(netip.MustParsePrefix("10.0.0.0/8"), 0); err != nil {
		t.Fatal(err)
	}
	if rs.Gen() <= g {
		t.Fatalf("gen %d after a delete, was %d", rs.Gen(), g)
	}
	g = rs.Gen()
	rs.Main.Delete(netip.MustParsePrefix("10.0.0.0/8"), 0) // not there: nothing published
	rs.Lookup4([4]byte{10, 1, 1, 1})
	if rs.Gen() != g {
		t.Fatalf("gen moved from %d to %d without a change", g, rs.Gen())
	}
}

func TestCacheFollowsAMoreSpecificRouteAddedAndDeleted(t *testing.T) {
	rs := newTestRoutes(t)
	var c Cache
	dst := [4]byte{203, 0, 113, 7}
	r, ok := rs.LookupCached(&c, dst)
	if !ok || r.Gateway != [4]byte{198, 18, 0, 1} {
		t.Fatalf("default route: %+v %v", r, ok)
	}
	more := netip.MustParsePrefix("203.0.113.0/24")
	if err := rs.Main.Add(more, netip.MustParseAddr("198.18.0.3"), 1, 0); err != nil {
		t.Fatal(err)
	}
	if r, ok = rs.LookupCached(&c, dst); !ok || r.Gateway != [4]byte{198, 18, 0, 3} || r.Bits != 24 {
		t.Fatalf("after a more specific route: %+v %v", r, ok)
	}
	if err := rs.Main.Delete(more, 0); err != nil {
		t.Fatal(err)
	}
	if r, ok = rs.LookupCached(&c, dst); !ok || r.Gateway != [4]byte{198, 18, 0, 1} || r.Bits != 0 {
		t.Fatalf("after it was deleted: %+v %v", r, ok)
	}
	// The default route goes too: the cache says so.
	if err := rs.Main.Delete(netip.MustParsePrefix("0.0.0.0/0"), 0); err != nil {
		t.Fatal(err)
	}
	if r, ok = rs.LookupCached(&c, dst); ok {
		t.Fatalf("no route left, the cache answered %+v", r)
	}
}

func TestCacheAnswersForTheDestinationItWasAskedAbout(t *testing.T) {
	rs := newTestRoutes(t)
	var c Cache
	if r, _ := rs.LookupCached(&c, [4]byte{203, 0, 113, 7}); r.Kind != KindGateway {
		t.Fatalf("remote: %+v", r)
	}
	if r, _ := rs.LookupCached(&c, [4]byte{198, 18, 0, 2}); r.Kind != KindLocal {
		t.Fatalf("our own address through a cache filled for another: %+v", r)
	}
	c.Reset()
	if r, _ := rs.LookupCached(nil, [4]byte{198, 18, 0, 7}); r.Kind != KindConnected {
		t.Fatalf("no cache: %+v", r)
	}
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	rs := newTestRoutes(t)
	var c Cache
	dst := [4]byte{203, 0, 113, 7}
	rs.LookupCached(&c, dst)
	if n := testing.AllocsPerRun(1000, func() { rs.LookupCached(&c, dst) }); n != 0 {
		t.Fatalf("%v allocations per hit", n)
	}
}

// TestCacheUnderConcurrentUseAndChanges shares one cache between goroutines
// while routes change; under -race it shows entries are published safely,
// and every answer is one of the two routes that existed.
func TestCacheUnderConcurrentUseAndChanges(t *testing.T) {
	rs := newTestRoutes(t)
	var c Cache
	dst := [4]byte{203, 0, 113, 7}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, ok := rs.LookupCached(&c, dst)
				if !ok || r.Gateway != [4]byte{198, 18, 0, 1} && r.Gateway != [4]byte{198, 18, 0, 3} {
					t.Errorf("answer %+v %v", r, ok)
					return
				}
			}
		}()
	}
	more := netip.MustParsePrefix("203.0.113.0/24")
	for range 200 {
		rs.Main.Add(more, netip.MustParseAddr("198.18.0.3"), 1, 0)
		rs.Main.Delete(more, 0)
	}
	close(stop)
	wg.Wait()
	if r, _ := rs.LookupCached(&c, dst); r.Gateway != [4]byte{198, 18, 0, 1} {
		t.Fatalf("after the changes stopped: %+v", r)
	}
}

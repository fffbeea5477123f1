package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
)

// The fake stack's addresses: it is 198.18.0.2/24 on device 1, with a
// default route via 198.18.0.1.
var (
	us      = netip.MustParseAddr("198.18.0.2")
	peer    = netip.MustParseAddr("198.18.0.1")
	farAway = netip.MustParseAddr("203.0.113.7")
)

// fakeStack is a Stack that keeps what sockets send: the test reads the
// calls and frames, and the frames' buffers go back to the pool.
type fakeStack struct {
	t        testing.TB
	pool     *engine.Pool
	routes   *route.Routes
	shards   int
	busy     bool
	counters socket.Counters

	mu     sync.Mutex
	cs     *engine.Caches // guarded by mu
	calls  []outputCall   // guarded by mu; only while keep is set
	keep   bool           // guarded by mu
	frames [][]byte       // guarded by mu; only while keep is set
	closed bool           // guarded by mu: Output fails with net.ErrClosed
	sent   int            // guarded by mu
}

// outputCall is one call of Output.
type outputCall struct {
	shard    int
	rc       *route.Cache
	src, dst [4]byte
	n        int
}

func newFakeStack(t testing.TB, poolSize, shards int) (*fakeStack, *Table) {
	t.Helper()
	pool, cs := mbuftest.Pool(t, poolSize)
	rs := route.NewRoutes()
	if err := rs.AddAddress(netip.PrefixFrom(us, 24), 1); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddLoopback(netip.MustParsePrefix("127.0.0.1/8"), 0); err != nil {
		t.Fatal(err)
	}
	if err := rs.Main.Add(netip.MustParsePrefix("0.0.0.0/0"), peer, 1, 0); err != nil {
		t.Fatal(err)
	}
	f := &fakeStack{t: t, pool: pool, routes: rs, shards: shards, cs: cs, keep: true}
	tb, err := NewTable(Config{Key: siphash.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.CloseAll) // before the pool's check, which was registered first
	return f, tb
}

func (f *fakeStack) Pool() *engine.Pool         { return f.pool }
func (f *fakeStack) Routes() *route.Routes      { return f.routes }
func (f *fakeStack) Shards() int                { return f.shards }
func (f *fakeStack) BusyPoll() bool             { return f.busy }
func (f *fakeStack) Counters() *socket.Counters { return &f.counters }

func (f *fakeStack) Source(r route.Result, dst [4]byte) [4]byte {
	if r.Kind == route.KindLocal {
		return dst
	}
	if r.Src != ([4]byte{}) {
		return r.Src
	}
	return us.As4() // device 1's address
}

// ShardOf spreads flows by their ports, so that a test can tell.
func (f *fakeStack) ShardOf(src, dst [4]byte, sport, dport uint16) int {
	return int(sport^dport) % f.shards
}

func (f *fakeStack) Output(shard int, rc *route.Cache, src, dst [4]byte, ms []engine.Mbuf) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		f.cs.FreeBulk(ms)
		return 0, net.ErrClosed
	}
	if f.keep {
		f.calls = append(f.calls, outputCall{shard: shard, rc: rc, src: src, dst: dst, n: len(ms)})
		for _, m := range ms {
			f.frames = append(f.frames, finished(m))
		}
	}
	f.sent += len(ms)
	f.cs.FreeBulk(ms)
	return len(ms), nil
}

func (f *fakeStack) FreeRead(m engine.Mbuf) {
	f.mu.Lock()
	f.cs.Free(m)
	f.mu.Unlock()
}

// finished is a datagram's bytes with its checksum done, as the stack's
// Output does for a device that cannot: the socket leaves it (the
// pseudo-header sum in the field, engine.FlagTxL4Csum). A datagram without
// the flag is taken as it is, so a socket that left no pseudo-header sum
// fails the checks.
func finished(m engine.Mbuf) []byte {
	b := mbuftest.Bytes(m)
	if m.Flags()&engine.FlagTxL4Csum != 0 && len(b) >= 8 {
		c := ipv4.Checksum(b, 0)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(b[6:], c)
	}
	return b
}

// take hands over the calls and frames recorded so far.
func (f *fakeStack) take() ([]outputCall, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, fr := f.calls, f.frames
	f.calls, f.frames = nil, nil
	return c, fr
}

// record switches the recording of calls and frames on or off (off: a
// send costs the fake nothing, for allocation counts).
func (f *fakeStack) record(on bool) {
	f.mu.Lock()
	f.keep = on
	f.mu.Unlock()
}

// packet makes a received datagram of payload bytes at offset off in a
// packet of the fake's pool (the bytes before it are a stand-in for the
// headers).
func (f *fakeStack) packet(off int, payload []byte) engine.Mbuf {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.cs.Alloc(f.pool)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := m.Append(off); err != nil {
		f.t.Fatal(err)
	}
	if err := f.cs.AppendBytes(m, f.pool, payload); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fakeStack) free(m engine.Mbuf) { f.FreeRead(m) }

func open(t testing.TB, f *fakeStack, tb *Table, laddr, raddr netip.AddrPort, o Options) *Conn {
	t.Helper()
	c, err := tb.Open(f, laddr, raddr, o)
	if err != nil {
		t.Fatalf("open %v -> %v %+v: %v", laddr, raddr, o, err)
	}
	return c
}

func any4(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), port) }

var noShard = Options{Shard: AnyShard}

package udp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	udpheader "github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/socket"
)

// checkDatagram checks that frame is a UDP datagram from src:sport to
// dst:dport carrying payload, with a correct checksum.
func checkDatagram(t *testing.T, frame []byte, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	h, err := udpheader.ParseChecked(frame, src.Addr().As4(), dst.Addr().As4())
	if err != nil {
		t.Fatalf("datagram %v -> %v: %v", src, dst, err)
	}
	if h.SrcPort != src.Port() || h.DstPort != dst.Port() || int(h.Length) != len(frame) || h.Checksum == 0 {
		t.Fatalf("header %+v, want ports %d -> %d, length %d, a checksum", h, src.Port(), dst.Port(), len(frame))
	}
	if !bytes.Equal(frame[udpheader.HeaderLen:], payload) {
		t.Fatalf("payload of %d bytes differs from the %d sent", len(frame)-udpheader.HeaderLen, len(payload))
	}
}

func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

func TestDatagramsLeaveWithTheirHeaderAndChecksum(t *testing.T) {
	f, tb := newFakeStack(t, 512, 1)
	u := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	remote := netip.AddrPortFrom(farAway, 53)
	c := open(t, f, tb, netip.AddrPort{}, remote, noShard)
	if c.LocalAddrPort().Addr() != us {
		t.Fatalf("a connected socket bound to no address took %v, want its route's source %v", c.LocalAddrPort(), us)
	}
	for _, size := range []int{0, 1, 7, 1472, 2048, 2049, 9000, MaxPayload} {
		p := payloadOf(size)
		if n, err := u.WriteToUDPAddrPort(p, remote); err != nil || n != size {
			t.Fatalf("unconnected send of %d: %d %v", size, n, err)
		}
		if n, err := c.Write(p); err != nil || n != size {
			t.Fatalf("connected send of %d: %d %v", size, n, err)
		}
		calls, frames := f.take()
		if len(calls) != 2 || len(frames) != 2 {
			t.Fatalf("%d bytes: %d calls, %d frames", size, len(calls), len(frames))
		}
		for i, from := range []netip.AddrPort{netip.AddrPortFrom(us, 4000), c.LocalAddrPort()} {
			if calls[i].src != us.As4() || calls[i].dst != farAway.As4() || calls[i].n != 1 {
				t.Fatalf("call %+v", calls[i])
			}
			checkDatagram(t, frames[i], from, remote, p)
		}
	}
	// To one of our own addresses: from it.
	lo := open(t, f, tb, netip.MustParseAddrPort("127.0.0.1:7"), netip.AddrPort{}, noShard)
	if _, err := u.WriteToUDPAddrPort([]byte("self"), lo.LocalAddrPort()); err != nil {
		t.Fatal(err)
	}
	calls, frames := f.take()
	if calls[0].src != [4]byte{127, 0, 0, 1} {
		t.Fatalf("to 127.0.0.1 from %v", calls[0].src)
	}
	checkDatagram(t, frames[0], netip.MustParseAddrPort("127.0.0.1:4000"), lo.LocalAddrPort(), []byte("self"))
}

func TestAConnectedSocketSendsThroughItsRouteCacheToItsPeerOnly(t *testing.T) {
	f, tb := newFakeStack(t, 512, 1)
	remote := netip.AddrPortFrom(farAway, 53)
	c := open(t, f, tb, netip.AddrPort{}, remote, noShard)
	c.Write([]byte("to the peer"))
	c.WriteToUDPAddrPort([]byte("elsewhere"), netip.AddrPortFrom(peer, 9))
	calls, _ := f.take()
	if calls[0].rc != &c.rc || calls[1].rc != nil {
		t.Fatalf("route caches %p and %p, want the socket's %p then none", calls[0].rc, calls[1].rc, &c.rc)
	}
	if r, ok := f.routes.LookupCached(calls[0].rc, farAway.As4()); !ok || r.Gateway != peer.As4() {
		t.Fatalf("the socket's cache: %+v %v", r, ok)
	}
}

func TestSendsGoThroughTheShardTheRepliesLandOnOrTheBoundOne(t *testing.T) {
	f, tb := newFakeStack(t, 512, 4)
	remote := netip.AddrPortFrom(farAway, 53)
	u := open(t, f, tb, any4(4001), netip.AddrPort{}, noShard)
	c := open(t, f, tb, any4(4002), remote, noShard)
	b := open(t, f, tb, any4(4003), netip.AddrPort{}, Options{Shard: 2})
	u.WriteToUDPAddrPort(nil, remote)
	c.Write(nil)
	b.WriteToUDPAddrPort(nil, remote)
	calls, _ := f.take()
	for i, want := range []int{f.ShardOf(farAway.As4(), us.As4(), 53, 4001), f.ShardOf(farAway.As4(), us.As4(), 53, 4002), 2} {
		if calls[i].shard != want {
			t.Errorf("send %d through shard %d, want %d", i, calls[i].shard, want)
		}
	}
	if _, err := tb.Open(f, any4(4004), netip.AddrPort{}, Options{Shard: 4}); !errors.Is(err, ErrBadShard) {
		t.Fatalf("shard 4 of 4: %v", err)
	}
}

func TestWriteBatchToMakesOneOutputCallPerBurst(t *testing.T) {
	f, tb := newFakeStack(t, 1024, 1)
	u := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	remote := netip.AddrPortFrom(farAway, 53)
	bufs := make([][]byte, 40)
	for i := range bufs {
		bufs[i] = payloadOf(i)
	}
	if n, err := u.WriteBatchTo(bufs[:engine.Burst], remote); err != nil || n != engine.Burst {
		t.Fatalf("batch of %d: %d %v", engine.Burst, n, err)
	}
	calls, frames := f.take()
	if len(calls) != 1 || calls[0].n != engine.Burst {
		t.Fatalf("a burst took calls %+v", calls)
	}
	for i, fr := range frames {
		checkDatagram(t, fr, netip.AddrPortFrom(us, 4000), remote, bufs[i])
	}
	if n, err := u.WriteBatchTo(bufs, remote); err != nil || n != 40 {
		t.Fatalf("batch of 40: %d %v", n, err)
	}
	if calls, _ = f.take(); len(calls) != 2 || calls[0].n != engine.Burst || calls[1].n != 8 {
		t.Fatalf("40 datagrams took calls %+v", calls)
	}
	// An oversized datagram stops the batch; those before it are sent.
	bufs[5] = make([]byte, MaxPayload+1)
	if n, err := u.WriteBatchTo(bufs, remote); !errors.Is(err, ErrTooBig) || n != 5 {
		t.Fatalf("batch with the sixth too big: %d %v", n, err)
	}
	if calls, _ = f.take(); len(calls) != 1 || calls[0].n != 5 {
		t.Fatalf("calls %+v", calls)
	}
}

func TestSendChecksRefuseBadSends(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	u := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	if _, err := u.WriteToUDPAddrPort(make([]byte, MaxPayload+1), netip.AddrPortFrom(peer, 53)); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := u.WriteToUDPAddrPort(nil, netip.AddrPortFrom(peer, 0)); err == nil {
		t.Fatal("to port 0: sent")
	}
	if _, err := u.Write(nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Write unconnected: %v", err)
	}
	u.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := u.WriteToUDPAddrPort(nil, netip.AddrPortFrom(peer, 53)); !errors.Is(err, socket.ErrTimeout) {
		t.Fatalf("past the write deadline: %v", err)
	}
	u.SetWriteDeadline(time.Time{})
	f.routes.Main.Delete(netip.MustParsePrefix("0.0.0.0/0"), 0)
	if _, err := u.WriteToUDPAddrPort(nil, netip.AddrPortFrom(farAway, 53)); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("no route: %v", err)
	}
	if tb.Counters().OutNoRoutes != 1 {
		t.Fatalf("counters %+v", tb.Counters())
	}
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	var oe *net.OpError
	if _, err := u.WriteToUDPAddrPort(nil, netip.AddrPortFrom(peer, 53)); !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("stack closing: %v", err)
	}
}

func TestAnEmptyPoolFailsTheSendAndTheSocketIsNotWritableUntilBuffersReturn(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	u := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	if u.Readiness()&socket.Writable == 0 {
		t.Fatal("a new socket is not writable")
	}
	var held []engine.Mbuf
	for {
		m, err := f.pool.Get()
		if err != nil {
			break
		}
		held = append(held, m)
	}
	for { // the socket's cache may still hold a few
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(peer, 53)); err != nil {
			if !errors.Is(err, ErrNoBuffers) {
				t.Fatalf("send from an empty pool: %v", err)
			}
			break
		}
	}
	if u.Readiness()&socket.Writable != 0 || tb.Counters().OutNoBuffers == 0 {
		t.Fatalf("writable with an empty pool (counters %+v)", tb.Counters())
	}
	// A poller waiting for room hears of it once buffers are back and the
	// table's retry runs.
	p := socket.NewPoller(nil)
	defer p.Close()
	if err := p.Add(u, socket.Writable|socket.EdgeTriggered, 7); err != nil {
		t.Fatal(err)
	}
	ev := make([]socket.Event, 1)
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("reported %+v with an empty pool", ev[0])
	}
	tb.Tick()
	if n, _ := p.Wait(ev, 0); n != 0 {
		t.Fatalf("a retry with the pool still empty reported %+v", ev[0])
	}
	for _, m := range held {
		f.free(m)
	}
	f.mu.Lock()
	f.cs.Flush()
	f.mu.Unlock()
	tb.Tick()
	if n, _ := p.Wait(ev, time.Second); n != 1 || ev[0].Data != 7 || ev[0].Events&socket.Writable == 0 {
		t.Fatalf("after the buffers came back: %d events %+v", n, ev[0])
	}
	if u.Readiness()&socket.Writable == 0 {
		t.Fatal("not writable once the buffers came back")
	}
	if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(peer, 53)); err != nil {
		t.Fatal(err)
	}
}

func TestTheSendPathDoesNotAllocate(t *testing.T) {
	f, tb := newFakeStack(t, 1024, 4)
	f.record(false)
	remote := netip.AddrPortFrom(farAway, 53)
	u := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	c := open(t, f, tb, netip.AddrPort{}, remote, noShard)
	p := payloadOf(100)
	bufs := make([][]byte, engine.Burst)
	for i := range bufs {
		bufs[i] = p
	}
	for name, send := range map[string]func(){
		"WriteToUDPAddrPort": func() { u.WriteToUDPAddrPort(p, remote) },
		"connected Write":    func() { c.Write(p) },
		"WriteBatchTo":       func() { u.WriteBatchTo(bufs, remote) },
		"connected batch":    func() { c.WriteBatchTo(bufs, remote) },
	} {
		send() // the first send makes the socket's caches
		if a := testing.AllocsPerRun(200, send); a != 0 {
			t.Errorf("%s: %v allocations", name, a)
		}
	}
}

// TestConcurrentSendersShareASocket sends from several goroutines on one
// socket and on sockets of their own; under -race it shows the send state
// is guarded, and every datagram leaves whole.
func TestConcurrentSendersShareASocket(t *testing.T) {
	f, tb := newFakeStack(t, 2048, 2)
	remote := netip.AddrPortFrom(farAway, 53)
	shared := open(t, f, tb, any4(4000), netip.AddrPort{}, noShard)
	const goroutines, each = 4, 200
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		own := open(t, f, tb, netip.AddrPort{}, remote, noShard)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := payloadOf(64 + g)
			for i := 0; i < each; i++ {
				if _, err := shared.WriteToUDPAddrPort(p, remote); err != nil {
					t.Error(err)
					return
				}
				if _, err := own.Write(p); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_, frames := f.take()
	if len(frames) != 2*goroutines*each {
		t.Fatalf("%d frames, want %d", len(frames), 2*goroutines*each)
	}
	for _, fr := range frames {
		if _, err := udpheader.Parse(fr); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSendingSocketsDoNotHoardThePool: each sending socket caches free
// buffers of the pool; a send that finds the pool empty takes back what
// the others keep, and a Tick takes back what idle sockets keep.
func TestSendingSocketsDoNotHoardThePool(t *testing.T) {
	const size, sockets = 512, 24 // a cache holds up to 64 of 512: 24 would hold them all
	f, tb := newFakeStack(t, size, 1)
	f.record(false)
	for i := 0; i < sockets; i++ {
		c := open(t, f, tb, any4(0), netip.AddrPort{}, noShard)
		if _, err := c.WriteToUDPAddrPort([]byte("once"), netip.AddrPortFrom(peer, 53)); err != nil {
			t.Fatalf("socket %d's first send: %v", i, err)
		}
	}
	tb.Tick()
	f.mu.Lock()
	f.cs.Flush()
	f.mu.Unlock()
	var got []engine.Mbuf
	for {
		m, err := f.pool.Get() // straight from the shared ring
		if err != nil {
			break
		}
		got = append(got, m)
	}
	for _, m := range got {
		f.free(m)
	}
	if len(got) != size {
		t.Fatalf("after a tick the pool's ring holds %d of %d buffers", len(got), size)
	}
}

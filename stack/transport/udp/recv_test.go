package udp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/socket"
)

const hdrs = 28 // where a payload starts in the test's packets

func TestAFullReceiveBufferDropsAndCounts(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, Options{Shard: AnyShard, RecvBuffer: 3 * engine.BufSize})
	queued, dropped := 0, 0
	for i := 0; i < 5; i++ {
		m := f.packet(hdrs, []byte{byte(i)})
		if c.Deliver(m, hdrs, 1, flow(uint16(i+1))) {
			queued++
		} else {
			dropped++
			f.free(m)
		}
	}
	if queued != 3 || dropped != 2 || c.Drops() != 2 {
		t.Fatalf("queued %d, dropped %d, Drops %d; want 3, 2, 2", queued, dropped, c.Drops())
	}
	buf := make([]byte, 10)
	for i := 0; i < 3; i++ {
		n, from, ok := c.TryRead(buf)
		if !ok || n != 1 || buf[0] != byte(i) || from != flow(uint16(i+1)) {
			t.Fatalf("read %d: %v %d %v from %v", i, ok, n, buf[:n], from)
		}
	}
	if _, _, ok := c.TryRead(buf); ok {
		t.Fatal("read a fourth")
	}
	// Room again once read.
	if m := f.packet(hdrs, []byte("again")); !c.Deliver(m, hdrs, 5, flow(9)) {
		t.Fatal("no room after the reads")
	}
}

func TestNotifyWakesAParkedReaderAndRunsTheHandler(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, noShard)
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 100)
		n, _, err := c.ReadFromUDPAddrPort(b)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	}()
	time.Sleep(20 * time.Millisecond) // let it park (it may not have: same outcome)
	c.Deliver(f.packet(hdrs, []byte("wake up")), hdrs, 7, flow(1))
	c.Notify()
	select {
	case s := <-got:
		if s != "wake up" {
			t.Fatalf("reader got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader was not woken")
	}
	var handled atomic.Int32
	c.SetReadHandler(func(c *Conn) {
		for {
			if _, _, ok := c.TryRead(make([]byte, 10)); !ok {
				return
			}
			handled.Add(1)
		}
	})
	c.Deliver(f.packet(hdrs, []byte("a")), hdrs, 1, flow(1))
	c.Deliver(f.packet(hdrs, []byte("b")), hdrs, 1, flow(1))
	c.Notify()
	if handled.Load() != 2 {
		t.Fatalf("the handler read %d of 2", handled.Load())
	}
}

func TestReadinessSaysReadableErrorAndHangup(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, netip.AddrPortFrom(us, 7000), flow(53), noShard)
	if ev := c.Readiness(); ev != socket.Writable {
		t.Fatalf("a fresh socket: %v", ev)
	}
	c.Deliver(f.packet(hdrs, []byte("x")), hdrs, 1, flow(53))
	if c.Readiness()&socket.Readable == 0 {
		t.Fatal("not readable with a datagram queued")
	}
	c.TryRead(make([]byte, 1))
	tb.Err(c.LocalAddrPort(), flow(53), syscall.ECONNREFUSED, true)
	if ev := c.Readiness(); ev != socket.Readable|socket.Error|socket.Writable {
		t.Fatalf("with an error pending: %v", ev)
	}
	if _, err := c.Read(nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatal(err)
	}
	c.Close()
	if ev := c.Readiness(); ev&socket.Hangup == 0 {
		t.Fatalf("closed: %v", ev)
	}
}

func TestTryReadDoesNotAllocate(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, noShard)
	buf := make([]byte, 100)
	m := f.packet(hdrs, []byte("x")) // the test keeps this reference
	defer f.free(m)
	deliverAndRead := func() {
		engine.Ref(m) // the socket's, which the read frees
		c.Deliver(m, hdrs, 1, flow(1))
		c.TryRead(buf)
	}
	deliverAndRead() // the queue's first ring
	if a := testing.AllocsPerRun(500, deliverAndRead); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

// TestShardsDeliverWhileReadersRead delivers from several goroutines, as
// shards do, to one socket that several readers empty; under -race it
// shows the queue is guarded, and no datagram is lost or read twice.
func TestShardsDeliverWhileReadersRead(t *testing.T) {
	f, tb := newFakeStack(t, 1024, 2)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, Options{Shard: AnyShard, RecvBuffer: MaxRecvBuffer})
	const shards, each = 3, 300
	var read atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 10)
			for {
				if _, _, ok := c.TryRead(buf); ok {
					read.Add(1)
					continue
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	var dwg sync.WaitGroup
	for s := 0; s < shards; s++ {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for i := 0; i < each; i++ {
				m := f.packet(hdrs, []byte{byte(s)})
				if !c.Deliver(m, hdrs, 1, flow(uint16(s))) {
					t.Error("dropped with an unbounded buffer")
					f.free(m)
				}
				c.Notify()
			}
		}()
	}
	dwg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for read.Load() < shards*each && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if read.Load() != shards*each {
		t.Fatalf("read %d of %d", read.Load(), shards*each)
	}
}

// TestCloseRacesReaders closes a socket while readers take from it: every
// packet is freed once, by the reader or by the close (the pool check at
// cleanup counts them).
func TestCloseRacesReaders(t *testing.T) {
	f, tb := newFakeStack(t, 512, 1)
	for round := 0; round < 20; round++ {
		c := open(t, f, tb, any4(7000), netip.AddrPort{}, noShard)
		for i := 0; i < 50; i++ {
			if !c.Deliver(f.packet(hdrs, []byte("x")), hdrs, 1, flow(1)) {
				t.Fatal("dropped")
			}
		}
		var wg sync.WaitGroup
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 10)
				for {
					if _, _, ok := c.TryRead(buf); !ok {
						return
					}
				}
			}()
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
}

// TestOneNotifyForABurstWakesAReaderPerDatagram: readers park exclusively,
// so one datagram wakes one of them; a burst of two with one Notify still
// reaches two readers, the first handing the wake-up on.
func TestOneNotifyForABurstWakesAReaderPerDatagram(t *testing.T) {
	f, tb := newFakeStack(t, 64, 1)
	c := open(t, f, tb, any4(7000), netip.AddrPort{}, noShard)
	got := make(chan byte, 3)
	for r := 0; r < 3; r++ {
		go func() {
			b := make([]byte, 10)
			if _, _, err := c.ReadFromUDPAddrPort(b); err == nil {
				got <- b[0]
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.n.Readers.Waiters() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c.n.Readers.Waiters() != 3 {
		t.Fatalf("%d readers parked, want 3", c.n.Readers.Waiters())
	}
	c.Deliver(f.packet(hdrs, []byte{1}), hdrs, 1, flow(1))
	c.Deliver(f.packet(hdrs, []byte{2}), hdrs, 1, flow(1))
	c.Notify()
	seen := map[byte]bool{}
	for i := 0; i < 2; i++ {
		select {
		case b := <-got:
			seen[b] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 2 datagrams read after one Notify", i)
		}
	}
	if !seen[1] || !seen[2] {
		t.Fatalf("read %v", seen)
	}
	time.Sleep(20 * time.Millisecond)
	if n := c.n.Readers.Waiters(); n != 1 {
		t.Fatalf("%d readers still parked, want the third alone", n)
	}
	if h := f.counters.Handoffs.Load(); h == 0 {
		t.Fatal("no wake-up was handed on")
	}
	c.Close() // frees the third reader
}

package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
)

// transfer sends n pseudo-random bytes from a to b over a new connection
// and checks they arrive whole, in order, and end with a clean close.
func transfer(t *testing.T, p *pair, n int, timeout time.Duration) {
	t.Helper()
	l, err := p.b.ListenTCP(ap(addrB, 5001))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	got := make(chan [32]byte, 1)
	errs := make(chan error, 2)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			errs <- err
			return
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.a.DialTCP(ctx, ap(addrA, 0), ap(addrB, 5001))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatalf("write: %v (info %+v)", err, c.Info())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("sha256 mismatch")
		}
	case err := <-errs:
		t.Fatalf("server: %v; client %+v", err, c.Info())
	case <-time.After(timeout):
		t.Fatalf("timeout; client %+v", c.Info())
	}
}

func TestTCPTransferBothModes(t *testing.T) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			transfer(t, p, 4<<20, 20*time.Second)
			t.Logf("a %+v", p.a.Stats().TCP)
			t.Logf("b %+v", p.b.Stats().TCP)
		})
	}
}

// duplex's writers write burstBytes, then pause for longer than a tail
// loss probe's timeout.
const (
	burstBytes = 1 << 20
	burstPause = 20 * time.Millisecond
)

// duplex runs n pseudo-random bytes each way at once over one connection
// from a to b and checks both arrive whole (SHA-256).
func duplex(t *testing.T, p *pair, n int, timeout time.Duration) {
	t.Helper()
	l, err := p.b.ListenTCP(ap(addrB, 5002))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gen := func(seed uint64) ([]byte, [32]byte) {
		b := make([]byte, n)
		rng := rand.New(rand.NewPCG(seed, 7))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b, sha256.Sum256(b)
	}
	ab, abSum := gen(1)
	ba, baSum := gen(2)
	type result struct {
		who string
		sum [32]byte
		err error
	}
	res := make(chan result, 4)
	// run writes out on c while it reads everything in, then closes.
	run := func(who string, c interface {
		io.ReadWriteCloser
		CloseWrite() error
	}, out []byte) {
		wrote := make(chan error, 1)
		go func() {
			// Pauses make the sender application-limited now and then, as
			// a real one is: each burst ends in a tail, where a lost
			// segment is found by a tail loss probe, not by SACKs.
			var err error
			for off := 0; off < len(out) && err == nil; off += burstBytes {
				_, err = c.Write(out[off:min(off+burstBytes, len(out))])
				time.Sleep(burstPause)
			}
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()
		h := sha256.New()
		_, err := io.Copy(h, c)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		if werr := <-wrote; werr != nil && err == nil {
			who, err = who+" write", werr
		}
		res <- result{who: who, sum: s, err: err}
	}
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			res <- result{who: "accept", err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		run("b", c, ba)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.a.DialTCP(ctx, ap(addrA, 0), ap(addrB, 5002))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	go run("a", c, ab)
	for range 2 {
		r := <-res
		switch {
		case r.err != nil:
			rx0, _ := engine.PortStats(p.wire.Ports[0])
			rx1, _ := engine.PortStats(p.wire.Ports[1])
			t.Fatalf("%s: %v; client %+v\na %+v\nb %+v\nport0 rx %+v\nport1 rx %+v\nheld a %d b %d, stats a %+v", r.who, r.err, c.Info(), p.a.Stats().TCP, p.b.Stats().TCP, rx0, rx1, p.a.TCPHeldMbufs(), p.b.TCPHeldMbufs(), p.a.Stats())
		case r.who == "a" && r.sum != baSum, r.who == "b" && r.sum != abSum:
			t.Fatalf("%s received data whose SHA-256 does not match", r.who)
		}
	}
}

func TestTCPSurvivesAnImpairedWireBothModes(t *testing.T) {
	n := 64 << 20
	if os.Getenv("TCPN") != "" {
		n, _ = strconv.Atoi(os.Getenv("TCPN"))
	}
	if raceEnabled || testing.Short() {
		n = 4 << 20
	}
	im := wire.Impairment{Loss: 0.02, Reorder: 0.01, Duplicate: 0.01, Corrupt: 0.001, Seed: 11}
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			// Checksums offloaded: the corrupting wire finishes them in
			// software, so the receivers must still catch the corruption.
			p := newPair(t, mode, wire.Config{Impair: [2]wire.Impairment{im, im}, ChecksumOffload: true}, 1500)
			start := time.Now()
			duplex(t, p, n, 120*time.Second)
			a, b := p.a.Stats().TCP, p.b.Stats().TCP
			t.Logf("%d MiB each way in %v", n>>20, time.Since(start))
			t.Logf("a: retrans %d sack-recovery %d loss-probes %d timeouts %d ofo %d csum %d dsack %d",
				a.RetransSegs, a.TCPSackRecovery, a.TCPLossProbes, a.TCPTimeouts, a.TCPOFOQueue, a.InCsumErrors, a.TCPDSACKRecv)
			t.Logf("b: retrans %d sack-recovery %d loss-probes %d timeouts %d ofo %d csum %d dsack %d",
				b.RetransSegs, b.TCPSackRecovery, b.TCPLossProbes, b.TCPTimeouts, b.TCPOFOQueue, b.InCsumErrors, b.TCPDSACKRecv)
			if a.TCPSackRecovery+b.TCPSackRecovery == 0 {
				t.Errorf("recovery counters show no SACK recovery at work")
			}
			// 64 bursts each way end in 128 tails, a few of them lost: loss
			// probes find those. The 4 MiB pass has too few tails to be
			// sure of one (TestATailLossIsFoundByAProbe shows the mechanism).
			if n >= 64<<20 && a.TCPLossProbes+b.TCPLossProbes == 0 {
				t.Errorf("recovery counters show no loss probe at work")
			}
			if a.InCsumErrors+b.InCsumErrors == 0 {
				t.Errorf("no corrupted segment was caught by its checksum")
			}
		})
	}
}

// BenchmarkTCPStream measures one connection's goodput over the wire pair:
// b.N bytes written by a on one side, read by the application on b, with
// the wire's checksum offload off (every checksum summed in software) and on
// (none summed, as the kernel over veth).
func BenchmarkTCPStream(b *testing.B) {
	for _, mtu := range []int{1500, 9000} {
		for _, mode := range []Mode{ModePMD, ModeNAPI} {
			for _, offload := range []bool{false, true} {
				b.Run(fmt.Sprintf("%v/mtu%d/offload=%v", mode, mtu, offload), func(b *testing.B) {
					benchTCPStream(b, mode, mtu, offload)
				})
			}
		}
	}
}

// newShardedPair is two stacks of two shards each on a wire pair with
// queues receive queues per port: 2 lets RSS place every flow, 1 leaves it
// to software steering.
func newShardedPair(t *testing.T, mode Mode, queues int) *pair {
	t.Helper()
	wp, err := wire.NewPair(wire.Config{Queues: queues})
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{wire: wp}
	for i, s := range []**Stack{&p.a, &p.b} {
		*s, err = New(Config{Name: []string{"a", "b"}[i], Shards: 2,
			Interfaces: []Interface{{Port: wp.Ports[i], Addr: []netip.Prefix{addrA, addrB}[i]}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := (*s).Start(mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	p.closeOnCleanup(t)
	return p
}

// echoConns opens n connections from a to an echo server on b (which may be
// a itself) and checks each one's data comes back.
func echoConns(t *testing.T, a, b *Stack, to netip.Addr, n int) {
	t.Helper()
	l, err := b.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			c, err := a.DialTCP(ctx, netip.AddrPort{}, netip.AddrPortFrom(to, 7))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := bytes.Repeat([]byte{byte(i)}, 100_000)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("conn %d: echo differs", i)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTCPFlowsLandOnTheShardsThatOwnThem: with RSS (two queues) every
// segment arrives on the shard that owns its connection, nothing steered;
// with one queue the stack steers in software; both carry data.
func TestTCPFlowsLandOnTheShardsThatOwnThem(t *testing.T) {
	for _, queues := range []int{2, 1} {
		t.Run(fmt.Sprintf("queues%d", queues), func(t *testing.T) {
			p := newShardedPair(t, ModeNAPI, queues)
			echoConns(t, p.a, p.b, addrB.Addr(), 16)
			for _, s := range []*Stack{p.a, p.b} {
				var steered, segs uint64
				busy := 0
				for _, st := range s.ShardStats() {
					steered += st.SteeredIn
					segs += st.Stats.TCP.InSegs
					if st.Stats.TCP.InSegs > 0 {
						busy++
					}
				}
				if busy != 2 {
					t.Errorf("%s: %d shards received TCP segments; want both", s.Name(), busy)
				}
				if queues == 2 && steered != 0 {
					t.Errorf("%s: %d frames steered in software although RSS places every flow", s.Name(), steered)
				}
				if queues == 1 && steered == 0 {
					t.Errorf("%s: nothing steered with one queue for two shards", s.Name())
				}
			}
		})
	}
}

// TestTCPToOurselvesOnEveryShard dials our own address: segments go through
// the loopback device, which shard 0 polls, and reach the owner's shard.
func TestTCPToOurselvesOnEveryShard(t *testing.T) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			p := newShardedPair(t, mode, 1)
			echoConns(t, p.a, p.a, addrA.Addr(), 8)
			echoConns(t, p.a, p.a, netip.MustParseAddr("127.0.0.1"), 8)
		})
	}
}

func benchTCPStream(b *testing.B, mode Mode, mtu int, offload bool) {
	p := newPair(b, mode, wire.Config{ChecksumOffload: offload}, mtu)
	l, err := p.b.ListenTCP(ap(addrB, 5003))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := p.a.DialTCP(context.Background(), ap(addrA, 0), ap(addrB, 5003))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(1)
	b.ResetTimer()
	left := b.N
	for left > 0 {
		k, err := c.Write(buf[:min(left, len(buf))])
		if err != nil {
			b.Fatal(err)
		}
		left -= k
	}
	c.Close()
	if got := <-done; got != int64(b.N) {
		b.Fatalf("read %d of %d bytes", got, b.N)
	}
}

// TestClosingTheStackEndsTCPCallsUnderWay closes a stack while its
// application reads, writes and closes: every call returns, nothing races
// with the release of the shards and the pool.
func TestClosingTheStackEndsTCPCallsUnderWay(t *testing.T) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			l, err := p.b.ListenTCP(ap(addrB, 5004))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var conns []*TCPConn
			for range 3 {
				c, err := p.a.DialTCP(ctx, netip.AddrPort{}, ap(addrB, 5004))
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			done := make(chan string, 3)
			go func() { // blocks: the peer sends nothing
				_, err := conns[0].Read(make([]byte, 100))
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("read: %v, want net.ErrClosed", err)
				}
				done <- fmt.Sprint("read: ", err)
			}()
			go func() { // blocks once the peer's buffer is full: nobody reads there
				buf := make([]byte, 64<<10)
				for {
					if _, err := conns[1].Write(buf); err != nil {
						if !errors.Is(err, net.ErrClosed) {
							t.Errorf("write: %v, want net.ErrClosed", err)
						}
						done <- fmt.Sprint("write: ", err)
						return
					}
				}
			}()
			go func() {
				time.Sleep(50 * time.Millisecond)
				done <- fmt.Sprint("close: ", conns[2].Close())
			}()
			time.Sleep(100 * time.Millisecond)
			if err := p.a.Close(); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				select {
				case r := <-done:
					t.Log(r)
				case <-time.After(5 * time.Second):
					t.Fatal("a call under way did not return after the stack closed")
				}
			}
			for _, c := range conns {
				c.Close() // after the stack: returns, frees nothing twice
			}
		})
	}
}

// TestNetHTTPRunsUnchangedOverOurTCP serves and fetches with net/http on
// both ends: the server on a's listener, the client dialling through b's
// DialContext.
func TestNetHTTPRunsUnchangedOverOurTCP(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 1500)
	l, err := p.a.ListenTCP(ap(addrA, 80))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("pollnet "), 100_000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: p.b.DialContext}, Timeout: 10 * time.Second}
	for i := range 3 { // the second and third reuse the kept-alive connection
		resp, err := client.Get("http://198.18.0.1/")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := p.b.DialContext(context.Background(), "tcp", "example.com:80"); err == nil {
		t.Fatal("a name was accepted for dialling")
	}
	if _, err := p.b.DialContext(context.Background(), "udp", "198.18.0.1:80"); err == nil {
		t.Fatal("network udp was accepted")
	}
}

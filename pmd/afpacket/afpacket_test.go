package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
)

// The tests run on a veth pair whose ends sit in two namespaces the test
// makes, each end with a port on it; both namespaces have IPv6 off and no
// addresses, so their kernels put nothing on the link.

const (
	devA = "afpa"
	devB = "afpb"
	// testType is the EtherType of the test's frames (IEEE 802 local
	// experimental), which neither kernel acts on.
	testType = 0x88b5
)

type env struct {
	nsA, nsB *netns.NS
	a, b     *Port
	pool     *engine.Pool
	cs       engine.Caches
	pkts     [64]engine.Mbuf
}

// newEnv makes the namespaces and the veth pair, and opens a port on each
// end with the configs given (Name is filled in).
func newEnv(t *testing.T, ca, cb Config) *env {
	t.Helper()
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	e := &env{}
	var err error
	if e.nsA, err = netns.New("pn-afpa"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.nsA.Delete() })
	if e.nsB, err = netns.New("pn-afpb"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.nsB.Delete() })
	for _, cmd := range [][]string{
		{"ip", "-n", e.nsA.Name, "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", e.nsB.Name},
		{"ip", "netns", "exec", e.nsA.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", e.nsB.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "-n", e.nsA.Name, "link", "set", devA, "up"},
		{"ip", "-n", e.nsB.Name, "link", "set", devB, "up"},
	} {
		if _, err := netns.Run(cmd...); err != nil {
			if strings.Contains(err.Error(), "veth") {
				t.Skipf("no veth links here: %v", err)
			}
			t.Fatal(err)
		}
	}
	ca.Name, cb.Name = devA, devB
	e.a = openIn(t, e.nsA, ca)
	e.b = openIn(t, e.nsB, cb)
	if e.pool, err = engine.NewPool("afpacket-test", 4096, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cs.Flush()
		if err := e.pool.Close(); err != nil {
			t.Errorf("test pool: %v", err)
		}
	})
	return e
}

// openIn opens a port inside ns and closes it when the test ends (before
// the namespaces go: cleanups run last first).
func openIn(t *testing.T, ns *netns.NS, cfg Config) *Port {
	t.Helper()
	var p *Port
	if err := ns.Do(func() (err error) { p, err = Open(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.Name, err)
		}
	})
	return p
}

// testFrame is a frame of size bytes from src to dst of the test's type,
// carrying seq and a pattern derived from it.
func testFrame(dst, src [6]byte, seq uint32, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], testType)
	binary.BigEndian.PutUint32(f[14:], seq)
	for i := 18; i < size; i++ {
		f[i] = byte(seq) + byte(i)
	}
	return f
}

func (e *env) mbuf(t testing.TB, frame []byte) engine.Mbuf {
	m, err := e.cs.Alloc(e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cs.AppendBytes(m, e.pool, frame); err != nil {
		t.Fatal(err)
	}
	return m
}

// send transmits frames on queue 0 of p, retrying a full ring for up to
// five seconds.
func (e *env) send(t *testing.T, p *Port, frames [][]byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(frames) > 0 {
		k := min(len(frames), 32)
		burst := make([]engine.Mbuf, k)
		for i := range burst {
			burst[i] = e.mbuf(t, frames[i])
		}
		n := p.TxBurst(0, burst)
		e.cs.FreeBulk(burst[n:])
		frames = frames[n:]
		if n == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("transmit ring stayed full with %d frames to send", len(frames))
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// receive collects frames from queue q of p until want have come or d has
// passed, then keeps polling for a few block timeouts so that a duplicate
// would show. It returns the frames' bytes.
func (e *env) receive(p *Port, q, want int, d time.Duration) [][]byte {
	var got [][]byte
	deadline := time.Now().Add(d)
	var quiet time.Time
	for {
		n := p.RxBurst(q, e.pkts[:])
		for _, m := range e.pkts[:n] {
			b := make([]byte, m.PktLen())
			m.CopyOut(b, 0)
			got = append(got, b)
			if m.Port() != 0 || m.Queue() != q {
				panic("mbuf carries the wrong port or queue")
			}
		}
		e.cs.FreeBulk(e.pkts[:n])
		now := time.Now()
		if len(got) >= want && quiet.IsZero() {
			quiet = now.Add(50 * time.Millisecond)
		}
		if now.After(deadline) || !quiet.IsZero() && now.After(quiet) {
			return got
		}
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// checkOnce checks that got holds each of the frames sent exactly once.
func checkOnce(t *testing.T, what string, sent, got [][]byte) {
	t.Helper()
	bySeq := map[uint32]int{}
	for _, f := range got {
		if len(f) < 18 || binary.BigEndian.Uint16(f[12:]) != testType {
			t.Errorf("%s: a frame not of the test's: % x", what, f[:min(len(f), 20)])
			continue
		}
		seq := binary.BigEndian.Uint32(f[14:])
		if int(seq) >= len(sent) || !bytes.Equal(f, sent[seq]) {
			t.Errorf("%s: frame %d arrived changed (%d bytes)", what, seq, len(f))
		}
		bySeq[seq]++
	}
	for seq := range sent {
		if c := bySeq[uint32(seq)]; c != 1 {
			t.Errorf("%s: frame %d arrived %d times", what, seq, c)
		}
	}
}

func frames(dst, src [6]byte, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, testFrame(dst, src, uint32(i), 60+(i*37)%1455))
	}
	return out
}

func TestRawFramesCrossBothWaysExactlyOnce(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	ia, ib := e.a.Info(), e.b.Info()
	if ia.MTU != 1500 || ia.Driver != "afpacket" || ia.RxQueues != 1 || !ia.Features.Interrupts || ia.MAC == ib.MAC || ia.MAC == [6]byte{} {
		t.Fatalf("info %+v and %+v", ia, ib)
	}
	const n = 1000
	for _, dir := range []struct {
		name     string
		from, to *Port
	}{{"a to b", e.a, e.b}, {"b to a", e.b, e.a}} {
		sent := frames(dir.to.Info().MAC, dir.from.Info().MAC, n)
		var bytesSent uint64
		for _, f := range sent {
			bytesSent += uint64(len(f))
		}
		e.send(t, dir.from, sent)
		got := e.receive(dir.to, 0, n, 10*time.Second)
		checkOnce(t, dir.name, sent, got)
		tx, rx := dir.from.TxStats(0), dir.to.RxStats(0)
		if tx.Packets != n || tx.Bytes != bytesSent || tx.Dropped() != 0 {
			t.Errorf("%s: tx counters %+v, want %d packets, %d bytes", dir.name, tx, n, bytesSent)
		}
		if rx.Packets != n || rx.Bytes != bytesSent || rx.Dropped() != 0 {
			t.Errorf("%s: rx counters %+v, want %d packets, %d bytes", dir.name, rx, n, bytesSent)
		}
	}
}

func TestTransmitDropsFramesLongerThanTheMTUAndRunts(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	long := testFrame(e.b.Info().MAC, e.a.Info().MAC, 0, 1515)
	runt := make([]byte, 10)
	burst := []engine.Mbuf{e.mbuf(t, long), e.mbuf(t, runt)}
	if n := e.a.TxBurst(0, burst); n != 2 {
		t.Fatalf("TxBurst took %d of 2", n)
	}
	tx := e.a.TxStats(0)
	if tx.Packets != 0 || tx.Drops[engine.DropTooLong] != 1 || tx.Drops[engine.DropError] != 1 {
		t.Fatalf("tx counters %+v", tx)
	}
	if got := e.receive(e.b, 0, 1, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("received %d frames", len(got))
	}
}

// ipv4UDP is an Ethernet frame carrying a UDP datagram between fixed
// addresses in 198.18.0.0/15 and the ports given.
func ipv4UDP(dst, src [6]byte, sport, dport uint16, seq uint32) []byte {
	f := make([]byte, 14+20+8+8)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 36)
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{198, 18, 1, 1})
	copy(ip[16:20], []byte{198, 18, 1, 2})
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	s = s>>16 + s&0xffff
	s += s >> 16
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], 16)
	binary.BigEndian.PutUint32(udp[8:], seq) // checksum 0: none
	return f
}

func TestFanoutSpreadsFlowsOverTwoQueues(t *testing.T) {
	e := newEnv(t, Config{}, Config{Queues: 2})
	if info := e.b.Info(); info.RxQueues != 2 || info.TxQueues != 2 || !info.Features.RSS {
		t.Fatalf("info %+v", info)
	}
	const flows, per = 64, 4
	var sent [][]byte
	for i := 0; i < flows*per; i++ {
		sent = append(sent, ipv4UDP(e.b.Info().MAC, e.a.Info().MAC, uint16(10000+i%flows), 9, uint32(i)))
	}
	e.send(t, e.a, sent)
	queueOf := map[uint16]int{}
	seen := map[uint32]int{}
	total := 0
	for q := 0; q < 2; q++ {
		got := e.receive(e.b, q, 1, 2*time.Second)
		if len(got) == 0 {
			t.Fatalf("queue %d received nothing of %d flows", q, flows)
		}
		for _, f := range got {
			sport := binary.BigEndian.Uint16(f[34:])
			if prev, ok := queueOf[sport]; ok && prev != q {
				t.Errorf("flow from port %d on queues %d and %d", sport, prev, q)
			}
			queueOf[sport] = q
			seen[binary.BigEndian.Uint32(f[42:])]++
		}
		total += len(got)
		if st := e.b.RxStats(q); st.Packets != uint64(len(got)) {
			t.Errorf("queue %d counted %d packets, received %d", q, st.Packets, len(got))
		}
	}
	if total != flows*per || len(seen) != flows*per {
		t.Fatalf("received %d frames, %d distinct, want %d each once", total, len(seen), flows*per)
	}
	var per2 [2]int
	for _, q := range queueOf {
		per2[q]++
	}
	t.Logf("flows per queue: %v", per2)
}

func TestRxMissedCountsFramesThatFoundTheRingFull(t *testing.T) {
	page := os.Getpagesize()
	e := newEnv(t, Config{}, Config{BlockCount: 2, BlockSize: 2 * page, FrameSize: page})
	const n = 200
	sent := frames(e.b.Info().MAC, e.a.Info().MAC, n)
	e.send(t, e.a, sent)
	got := e.receive(e.b, 0, n, 500*time.Millisecond)
	rx := e.b.RxStats(0)
	if missed := rx.Drops[engine.DropRingFull]; missed == 0 || uint64(len(got))+missed != n || rx.Packets != uint64(len(got)) {
		t.Fatalf("received %d, counters %+v: want some rx_missed and received + missed = %d", len(got), rx, n)
	}
}

func TestInterruptsFireOncePerArmingAndAtOnceWhenFramesWait(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	var calls atomic.Int32
	fired := make(chan struct{}, 16)
	e.b.SetRxInterrupt(0, func() {
		calls.Add(1)
		fired <- struct{}{}
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-fired:
		case <-time.After(3 * time.Second):
			t.Fatalf("no interrupt %s", what)
		}
	}
	mac, peer := e.b.Info().MAC, e.a.Info().MAC
	e.b.ArmRx(0)
	e.send(t, e.a, [][]byte{testFrame(mac, peer, 0, 60)})
	wait("when a frame landed on an armed queue")
	time.Sleep(20 * time.Millisecond)
	e.send(t, e.a, [][]byte{testFrame(mac, peer, 1, 60)})
	time.Sleep(50 * time.Millisecond) // many block timeouts
	if c := calls.Load(); c != 1 {
		t.Fatalf("handler ran %d times, want once: the second frame came while disarmed", c)
	}
	e.b.ArmRx(0)
	wait("when arming with frames already waiting")
	if got := e.receive(e.b, 0, 2, 2*time.Second); len(got) != 2 {
		t.Fatalf("received %d frames, want 2", len(got))
	}
	if rx := e.b.RxStats(0); rx.Interrupts != 2 {
		t.Fatalf("interrupts counted %d, want 2", rx.Interrupts)
	}
}

func TestBurstsAllocateNothing(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	frame := testFrame(e.b.Info().MAC, e.a.Info().MAC, 0, 200)
	burst := make([]engine.Mbuf, 32)
	var failed error
	run := func() {
		for i := range burst {
			m, err := e.cs.Alloc(e.pool)
			if err != nil {
				failed = err
				return
			}
			b, _ := m.Append(len(frame))
			copy(b, frame)
			burst[i] = m
		}
		if n := e.a.TxBurst(0, burst); n != len(burst) {
			e.cs.FreeBulk(burst[n:])
			failed = errors.New("TxBurst took part of a burst")
			return
		}
		got := 0
		for deadline := time.Now().Add(2 * time.Second); got < len(burst) && time.Now().Before(deadline); {
			n := e.b.RxBurst(0, e.pkts[:])
			e.cs.FreeBulk(e.pkts[:n])
			got += n
			if n == 0 {
				runtime.Gosched()
			}
		}
		if got != len(burst) {
			failed = errors.New("a burst did not arrive whole")
		}
	}
	for i := 0; i < 5; i++ { // caches meet their pools
		run()
	}
	allocs := testing.AllocsPerRun(50, run)
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per TxBurst and RxBurst of 32 frames", allocs)
	}
}

// openSockets returns the sockets the process holds descriptors for and
// those it has mapped (rings), by inode. Other tests' descriptors come and go
// meanwhile, so the test follows the port's own sockets, not counts.
func openSockets(t *testing.T) (fds, maps map[string]int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds = map[string]int{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			fds[l]++
		}
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	maps = map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if k := strings.Index(line, "socket:["); k >= 0 {
			maps[line[k:]]++
		}
	}
	return fds, maps
}

// added returns the keys of after that before lacks.
func added(before, after map[string]int) []string {
	var out []string
	for k := range after {
		if before[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

func TestCloseReleasesSocketsAndMappings(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	fds0, maps0 := openSockets(t)
	var p *Port
	if err := e.nsA.Do(func() (err error) { p, err = Open(Config{Name: devA, Queues: 3}); return err }); err != nil {
		t.Fatal(err)
	}
	p.SetRxInterrupt(0, func() {})
	fds1, maps1 := openSockets(t)
	socks, rings := added(fds0, fds1), added(maps0, maps1)
	if len(socks) != 3 || len(rings) != 3 {
		t.Fatalf("open: new sockets %v, new mappings %v; want 3 of each", socks, rings)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	fds2, maps2 := openSockets(t)
	for _, s := range socks {
		if fds2[s] != 0 {
			t.Errorf("after Close, %s is still open", s)
		}
	}
	for _, r := range rings {
		if maps2[r] != 0 {
			t.Errorf("after Close, %s is still mapped", r)
		}
	}
}

func TestBadConfigsAreRefused(t *testing.T) {
	e := newEnv(t, Config{}, Config{})
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "nosuch0"}, "no such interface"},
		{Config{Name: ""}, "empty"},
		{Config{Name: devA, Queues: MaxQueues + 1}, "queues"},
		{Config{Name: devA, FrameSize: 1024}, "frame size"},
		{Config{Name: devA, FrameSize: 2056}, "frame size"},
		{Config{Name: devA, BlockSize: 3000}, "block size"},
		{Config{Name: devA, BlockCount: 1}, "block count"},
		{Config{Name: devA, RetireTimeout: time.Microsecond}, "retire timeout"},
		{Config{Name: devA, PoolSize: 1}, "pool size"},
	} {
		err := e.nsA.Do(func() error {
			p, err := Open(c.cfg)
			if err == nil {
				p.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want an error about %q", c.cfg, err, c.want)
		}
	}
}

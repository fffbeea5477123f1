package neigh

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
)

// TestOutputToAResolvedNeighbourAllocatesNothing: the per-packet path, and
// Advance with nothing due, allocate nothing.
func TestOutputToAResolvedNeighbourAllocatesNothing(t *testing.T) {
	h := newHarness(t, Config{}, 512)
	h.send(ipPeer)
	h.peerReplies(macPeer)
	h.l.record = false
	h.l.sent = make([]uint64, 0, 4096)
	m := h.l.packet(t, 0) // warm the cache
	h.l.Free(m)
	h.l.dropped = h.l.dropped[:0]
	if a := testing.AllocsPerRun(1000, func() {
		h.now += int64(time.Millisecond)
		h.tab.Advance(h.l, h.now)
		m, _ := h.l.cs.Alloc(h.l.pool)
		m.Append(16)
		h.tab.Output(h.l, h.dev, ipPeer, m)
	}); a != 0 {
		t.Fatalf("%v allocations per packet", a)
	}
	if h.state(ipPeer) != "REACHABLE" || h.l.arpOut != 1 {
		t.Fatalf("%s after sending, %d ARP frames", h.state(ipPeer), h.l.arpOut)
	}
}

// TestShardsSendEveryPacketOnceWhileEntriesComeAndGo: two shards send to
// resolved neighbours as fast as they can, and run Advance, while a third
// goroutine makes entries, answers or ignores them, lets time pass and
// runs Advance too. Every packet is sent exactly once or dropped, and
// every drop is counted. Run it with -race.
func TestShardsSendEveryPacketOnceWhileEntriesComeAndGo(t *testing.T) {
	pool, err := engine.NewPool(t.Name(), 8192, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	routes := route.NewRoutes()
	if err := routes.AddAddress(addrUs, 1); err != nil {
		t.Fatal(err)
	}
	held := &heldCap{limit: 1024}
	cfg := Config{GCThresh1: 8, GCThresh2: 32, GCThresh3: 64, RetryInterval: 100 * time.Millisecond,
		Reachable: time.Second, DelayFirstProbe: 200 * time.Millisecond, GCStaleTime: 2 * time.Second}
	tab, err := New(cfg, routes, held, 1024, siphash.NewKey(), start)
	if err != nil {
		t.Fatal(err)
	}
	dev := testDevice()
	var clock atomic.Int64
	clock.Store(start)

	// The shards' neighbours, resolved before they start.
	ctl := &fakeLink{pool: pool, cs: new(engine.Caches)}
	resolved := make([][4]byte, 8)
	for i := range resolved {
		resolved[i] = ipN(200 + i)
	}
	reply := func(l *fakeLink, ip [4]byte, mac eth.MAC) {
		m, err := l.cs.Alloc(pool)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := m.Append(arp.PacketLen)
		arp.Packet{Op: arp.OpReply, SenderMAC: mac, SenderIP: ip, TargetMAC: macUs, TargetIP: ipUs}.Put(b)
		tab.Input(l, dev, m, true)
	}
	var tag atomic.Uint64
	packet := func(l *fakeLink) engine.Mbuf {
		m, err := l.cs.Alloc(pool)
		for err != nil { // the other shards' caches hold the pool for now
			time.Sleep(time.Microsecond)
			m, err = l.cs.Alloc(pool)
		}
		return m
	}
	send := func(l *fakeLink, ip [4]byte) {
		m := packet(l)
		b, _ := m.Append(16)
		putTag(b, tag.Add(1))
		tab.Output(l, dev, ip, m)
	}
	for i, ip := range resolved {
		send(ctl, ip)
		reply(ctl, ip, macN(200+i))
	}

	rounds := 2000
	if testing.Short() {
		rounds = 500
	}
	shards := []*fakeLink{{pool: pool, cs: new(engine.Caches)}, {pool: pool, cs: new(engine.Caches)}}
	var wg, started sync.WaitGroup
	var stop atomic.Bool
	var done atomic.Int32
	for _, l := range shards {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			send(l, resolved[0])
			started.Done()
			for i := 1; !stop.Load() && i < 300000; i++ {
				send(l, resolved[i%len(resolved)])
				if i%64 == 0 {
					tab.Advance(l, clock.Load())
				}
			}
		}()
	}
	// The third goroutine: time passes in steps up to 50 ms; the shards'
	// neighbours are confirmed most of the time, so that they go through
	// STALE, DELAY and PROBE now and then; 200 other addresses are sent to
	// and answered half the time, so that entries fail, are collected and
	// are made again, and the table fills.
	rng := rand.New(rand.NewPCG(1, 2))
	started.Wait()
	for round := 0; round < rounds && done.Load() < int32(len(shards)); round++ {
		now := clock.Add(rng.Int64N(int64(50 * time.Millisecond)))
		tab.Advance(ctl, now)
		if round%8 != 7 {
			i := rng.IntN(len(resolved))
			reply(ctl, resolved[i], macN(200+i))
		}
		for k := 0; k < 4; k++ {
			i := rng.IntN(200)
			send(ctl, ipN(1000+i))
			if rng.IntN(2) == 0 {
				reply(ctl, ipN(1000+i), macN(1000+i))
			}
		}
		if n := tab.Len(); n > cfg.GCThresh3 {
			t.Errorf("%d entries, past GCThresh3", n)
		}
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	st := tab.Stats()
	clearing := &fakeLink{pool: pool, cs: ctl.cs}
	tab.Clear(clearing)

	// Every tag was sent or dropped, once; the drops before Clear are
	// the table's counted ones.
	links := append([]*fakeLink{ctl, clearing}, shards...)
	var all []uint64
	sent, dropped := 0, 0
	for _, l := range links {
		all = append(all, l.sent...)
		all = append(all, l.dropped...)
		sent += len(l.sent)
		if l != clearing {
			dropped += len(l.dropped)
		}
	}
	slices.Sort(all)
	if n := tag.Load(); uint64(len(all)) != n {
		t.Errorf("%d packets made, %d sent or dropped", n, len(all))
	}
	for i := range all {
		if all[i] != uint64(i+1) {
			t.Fatalf("packet %d was sent or dropped twice, or never", i+1)
		}
	}
	if want := st.QueueDrops + st.TableFulls; uint64(dropped) != want {
		t.Errorf("%d packets dropped, the table counted %d (%+v)", dropped, want, st)
	}
	if n, peak := held.now(); n != 0 || peak > held.limit {
		t.Errorf("%d mbufs charged after Clear, peak %d", n, peak)
	}
	for _, l := range links {
		l.cs.Flush()
	}
	if pool.Available() != pool.Size() {
		t.Errorf("%d mbufs not returned", pool.Size()-pool.Available())
	}
	t.Logf("%d sent, %d dropped, %d left at Clear; %+v", sent, dropped, len(clearing.dropped), st)
}

// TestASpoofedARPFloodCannotGrowTheTableNorHoldMoreThanTheCap: a flood of
// requests for our address from spoofed senders, unsolicited replies and
// announcements, with our own packets to spoofed addresses that never
// answer (echo replies, say), never makes more than GCThresh3 entries nor
// holds more mbufs than the held cap; once the flood stops, every waiting
// packet is given up and every request was answered.
func TestASpoofedARPFloodCannotGrowTheTableNorHoldMoreThanTheCap(t *testing.T) {
	h := newHarness(t, Config{}, 256)
	h.l.record = false
	rng := rand.New(rand.NewPCG(3, 4))
	spoofed := func() [4]byte {
		for {
			ip := [4]byte{198, 18 + byte(rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))}
			if ip != ipUs && ip != [4]byte{198, 18, 0, 255} {
				return ip
			}
		}
	}
	requests := 0
	for round := 0; round < 40; round++ {
		for i := 0; i < 300; i++ {
			ip, mac := spoofed(), macN(rng.IntN(1<<24))
			switch i % 3 {
			case 0:
				h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: mac, SenderIP: ip, TargetIP: ipUs})
				requests++
			case 1:
				h.arp(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: mac, SenderIP: ip, TargetMAC: macUs, TargetIP: ipUs})
			case 2:
				h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: mac, SenderIP: ip, TargetIP: ip})
			}
		}
		for i := 0; i < 100; i++ {
			h.send(spoofed())
		}
		if n := h.tab.Len(); n > 1024 {
			t.Fatalf("round %d: %d entries, past gc_thresh3 (1024)", round, n)
		}
		if _, peak := h.held.now(); peak > 256 {
			t.Fatalf("round %d: %d mbufs held, past the cap (256)", round, peak)
		}
		h.advance(500 * time.Millisecond)
	}
	h.advance(5 * time.Second)
	st := h.tab.Stats()
	if held, _ := h.held.now(); held != 0 {
		t.Fatalf("%d mbufs still held after every address failed: %+v", held, st)
	}
	if st.OutReplies != uint64(requests) || st.TableFulls == 0 {
		t.Fatalf("%d requests, %+v", requests, st)
	}
	t.Logf("%+v", st)
}

package stack

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// shardedLink is a rawLink whose stack runs two shards on a wire pair of
// queues queues.
func shardedLink(t *testing.T, queues int, mode Mode) *rawLink {
	t.Helper()
	return newRawLinkIn(t, mode, addrB, wire.Config{Queues: queues}, func(c *Config) { c.Shards = 2 })
}

// peerOnShard finds a peer address in the stack's subnet whose datagrams of
// proto (to port 9 from port sport, for UDP) the stack receives on shard.
func peerOnShard(t *testing.T, l *rawLink, proto uint8, sport uint16, shard int) [4]byte {
	t.Helper()
	for i := 10; i < 250; i++ {
		src := [4]byte{198, 18, 0, byte(i)}
		if l.s.ShardOf(proto, src, l.ours(), sport, 9) == shard {
			return src
		}
	}
	t.Fatalf("no peer address lands on shard %d", shard)
	return [4]byte{}
}

// echoReplies returns the sequence numbers of the echo replies among frames.
func echoReplies(t *testing.T, frames [][]byte) []uint16 {
	var seqs []uint16
	for _, f := range frames {
		_, m := parseSentICMP(t, f)
		if m.Type == icmp.TypeEchoReply {
			seqs = append(seqs, m.Seq)
		}
	}
	return seqs
}

// TestAHeldShardDoesNotStopTheOther holds one shard's lock, as a shard busy
// with a long burst would, and checks that the other shard keeps answering
// the flows it owns while the held shard's flows wait for it: no lock that
// the held shard holds is on the other's per-packet path.
func TestAHeldShardDoesNotStopTheOther(t *testing.T) {
	for _, mode := range []Mode{ModeNAPI, ModePMD} {
		t.Run(string(mode), func(t *testing.T) {
			l := shardedLink(t, 2, mode)
			p0 := peerOnShard(t, l, ipv4.ProtoICMP, 0, 0)
			p1 := peerOnShard(t, l, ipv4.ProtoICMP, 0, 1)
			// Both peers resolved first: the ARP exchange is not the point.
			l.send(l.echoTo(p0, l.ours(), 1), l.echoTo(p1, l.ours(), 2))
			if got := echoReplies(t, l.recv(2, 5*time.Second)); len(got) != 2 {
				t.Fatalf("before holding: replies %v", got)
			}
			held := l.s.shards[0]
			held.mu.Lock()
			l.push(l.mbufs(l.echoTo(p1, l.ours(), 3))...)
			if got := echoReplies(t, l.recv(1, 5*time.Second)); len(got) != 1 || got[0] != 3 {
				held.mu.Unlock()
				t.Fatalf("while shard 0 is held, shard 1's peer got replies %v, want [3]", got)
			}
			l.push(l.mbufs(l.echoTo(p0, l.ours(), 4))...)
			early := echoReplies(t, l.recv(1, 200*time.Millisecond))
			held.mu.Unlock()
			if len(early) != 0 {
				t.Fatalf("shard 0 answered %v while held", early)
			}
			if got := echoReplies(t, l.recv(1, 5*time.Second)); len(got) != 1 || got[0] != 4 {
				t.Fatalf("after letting go, shard 0's peer got replies %v, want [4]", got)
			}
			st := l.s.ShardStats()
			if st[0].Stats.ICMPOutEchoReps != 2 || st[1].Stats.ICMPOutEchoReps != 2 {
				t.Fatalf("echo replies per shard %d and %d, want 2 and 2", st[0].Stats.ICMPOutEchoReps, st[1].Stats.ICMPOutEchoReps)
			}
		})
	}
}

// udpFlowsAndFragments sends, from several peers and ports, whole UDP
// datagrams and datagrams in two fragments to a socket, and checks that
// every one was delivered by the shard ShardOf predicts: flows by their
// addresses and ports, fragments by their addresses alone.
func udpFlowsAndFragments(t *testing.T, l *rawLink) {
	c, err := l.s.ListenUDP(ap(addrB, 9))
	if err != nil {
		t.Fatal(err)
	}
	var wantUDP, wantReasm [2]uint64
	var frames [][]byte
	big := bytes.Repeat([]byte("fragment"), 200) // 1600 bytes: two fragments
	// Fragments come from peers picked to land on each shard in turn, so
	// both shards reassemble whatever the hash key.
	fragPeers := [2][4]byte{peerOnShard(t, l, ipv4.ProtoICMP, 0, 0), peerOnShard(t, l, ipv4.ProtoICMP, 0, 1)}
	for i := range 24 {
		src := [4]byte{198, 18, 0, byte(10 + i)}
		sport := uint16(4000 + i)
		if i%3 == 0 {
			src = fragPeers[i%2]
			h := ipv4.Header{Protocol: ipv4.ProtoUDP, ID: uint16(100 + i), Src: src, Dst: l.ours(), Flags: ipv4.FlagMF}
			payload := rawUDP(src, l.ours(), sport, 9, big)
			frames = append(frames, ipFrame(l.stackMAC, l.mac, h, payload[:1024]))
			h.Flags, h.FragOff = 0, 1024
			frames = append(frames, ipFrame(l.stackMAC, l.mac, h, payload[1024:]))
			shard := l.s.ShardOf(ipv4.ProtoICMP, src, l.ours(), 0, 0) // any protocol but TCP and UDP: by addresses
			wantReasm[shard]++
			wantUDP[shard]++
			continue
		}
		frames = append(frames, l.udpTo(src, l.ours(), sport, 9, []byte(fmt.Sprint("datagram ", i))))
		wantUDP[l.s.ShardOf(ipv4.ProtoUDP, src, l.ours(), sport, 9)]++
	}
	l.send(frames...)
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 24 {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatalf("%v after %v", err, l.s.ShardStats())
		}
	}
	st := l.s.ShardStats()
	for i := range 2 {
		if st[i].Stats.UDPInDatagrams != wantUDP[i] || st[i].Stats.ReasmOKs != wantReasm[i] {
			t.Errorf("shard %d delivered %d datagrams and reassembled %d, want %d and %d",
				i, st[i].Stats.UDPInDatagrams, st[i].Stats.ReasmOKs, wantUDP[i], wantReasm[i])
		}
	}
	if wantUDP[0] == 0 || wantUDP[1] == 0 || wantReasm[0] == 0 || wantReasm[1] == 0 {
		t.Errorf("the test's flows all hash to one shard (%v, %v): pick others", wantUDP, wantReasm)
	}
}

// TestRSSAndFragmentsLandOnTheirShard is a port that spreads flows itself:
// the wire's RSS over two queues, one per shard. Nothing is steered.
func TestRSSAndFragmentsLandOnTheirShard(t *testing.T) {
	l := shardedLink(t, 2, ModeNAPI)
	udpFlowsAndFragments(t, l)
	for _, s := range l.s.ShardStats() {
		if s.SteeredOut != 0 || s.SteeredIn != 0 {
			t.Fatalf("shard %d steered %d frames and was steered %d with RSS doing it", s.Shard, s.SteeredOut, s.SteeredIn)
		}
	}
}

// TestOneQueueTwoShardsSteersInSoftware is a port whose queue choice is not
// the stack's (one queue, like TAP): shard 0 receives everything and passes
// each flow to its owner, so fragments still meet on one shard.
func TestOneQueueTwoShardsSteersInSoftware(t *testing.T) {
	l := shardedLink(t, 1, ModeNAPI)
	udpFlowsAndFragments(t, l)
	st := l.s.ShardStats()
	if st[0].SteeredOut == 0 || st[1].SteeredIn != st[0].SteeredOut || st[1].RxFrames != st[1].SteeredIn {
		t.Fatalf("shard 0 steered out %d, shard 1 took in %d and received %d in all", st[0].SteeredOut, st[1].SteeredIn, st[1].RxFrames)
	}
}

// TestSendersOnManyGoroutinesLoseNothing has goroutines send through both
// shards at once, while the shards are busy receiving: every datagram
// arrives once, whether its sender ran the shard's output itself or handed
// it over.
func TestSendersOnManyGoroutinesLoseNothing(t *testing.T) {
	// Rings, pools and the socket's buffer hold every datagram, so that
	// nothing is lost on the way and the count checks the senders alone.
	wp, err := wire.NewPair(wire.Config{Queues: 2, RingSize: 8192, PoolSize: 32768})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the stacks close before their ports.
	t.Cleanup(func() { wp.Ports[0].Close(); wp.Ports[1].Close() })
	mk := func(name string, p engine.Port, addr netip.Prefix) *Stack {
		s, err := New(Config{Name: name, Interfaces: []Interface{{Port: p, Addr: addr}}, UDPRecvBuffer: 64 << 20, PoolSize: 16384})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.StartOn(ModeNAPI, nil, engine.SoftirqConfig{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := mk("a", wp.Ports[0], addrA), mk("b", wp.Ports[1], addrB)
	sink, err := b.ListenUDP(ap(addrB, 9))
	if err != nil {
		t.Fatal(err)
	}
	// Resolve the sink's address first: what waits for ARP is capped
	// (unres_qlen_bytes), and losing it there is not the point.
	prime, err := a.DialUDP(netip.AddrPort{}, ap(addrB, 9))
	if err != nil {
		t.Fatal(err)
	}
	prime.Write([]byte("prime"))
	prime.Close()
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := sink.ReadFromUDPAddrPort(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	const senders, each = 4, 2000
	done := make(chan error, senders)
	for g := range senders {
		go func() {
			c, err := a.ListenUDP(ap(addrA, 0))
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			msg := make([]byte, 8)
			for i := range each {
				msg[0], msg[1], msg[2] = byte(g), byte(i), byte(i>>8)
				for {
					if _, err := c.WriteToUDPAddrPort(msg, ap(addrB, 9)); err == nil {
						break
					} else if err != ErrNoBuffers {
						done <- err
						return
					}
					time.Sleep(10 * time.Microsecond) // a full ring or pool: the shards catch up
				}
			}
			done <- nil
		}()
	}
	for range senders {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[[3]byte]bool)
	buf := make([]byte, 64)
	sink.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(seen) < senders*each {
		n, _, err := sink.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%d of %d datagrams: %v (sender shards %+v)", len(seen), senders*each, err, a.ShardStats())
		}
		k := [3]byte{buf[0], buf[1], buf[2]}
		if n != 8 || seen[k] {
			t.Fatalf("datagram %v twice or cut (%d bytes)", k, n)
		}
		seen[k] = true
	}
	var direct, handed uint64
	for _, s := range a.ShardStats() {
		direct += s.DirectSends
		handed += s.HandedOff
	}
	if direct+handed != senders*each+1 {
		t.Fatalf("%d sent directly and %d handed over, want %d in all", direct, handed, senders*each+1)
	}
	if handed == 0 {
		t.Log("no sender found a shard busy: the handoff ring went untested this run")
	}
}

// TestDatagramsHandedToAShardBusyWithALookAreSent hands datagrams to a
// shard whose lock a reader of its counters holds, in interrupt mode with
// nothing arriving: once the reader lets go they leave, without waiting for
// a burst or a timer to unlock the shard again.
func TestDatagramsHandedToAShardBusyWithALookAreSent(t *testing.T) {
	l := shardedLink(t, 1, ModeNAPI)
	c, err := l.s.DialUDP(netip.AddrPort{}, ap(addrA, 9))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("resolve"))
	if got := l.recv(1, 5*time.Second); len(got) != 1 {
		t.Fatalf("%d frames before the test", len(got))
	}
	for _, sh := range l.s.shards {
		sh.mu.Lock() // as ShardStats or Stats does
	}
	for i := range 8 {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range l.s.shards {
		sh.letGo()
	}
	// letGo sends them before it returns; 50 ms is well before any timer
	// of the shard's would unlock it again (the sockets' 100 ms).
	if got := l.recv(8, 50*time.Millisecond); len(got) != 8 {
		t.Fatalf("%d of 8 datagrams left after the look", len(got))
	}
}

// TestAnIdleShardStillRunsItsTimers: with nothing arriving, a softirq
// sleeps until its wheel's next deadline and fires it (shard 0's socket
// housekeeping, every 100 ms), and a poll loop does the same.
func TestAnIdleShardStillRunsItsTimers(t *testing.T) {
	for _, mode := range []Mode{ModeNAPI, ModePMD} {
		t.Run(string(mode), func(t *testing.T) {
			l := newRawLinkIn(t, mode, addrB, wire.Config{}, nil)
			deadline := time.Now().Add(5 * time.Second)
			for l.s.ShardStats()[0].Timers < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("%d timers fired in 5 s of idling", l.s.ShardStats()[0].Timers)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestDatagramsToOurselvesReachEveryShard: datagrams sent to one of our own
// addresses come back through the loopback device, which shard 0 drains and
// steers: every one of many flows arrives, whichever shard owns it.
func TestDatagramsToOurselvesReachEveryShard(t *testing.T) {
	for _, mode := range []Mode{ModeNAPI, ModePMD} {
		t.Run(string(mode), func(t *testing.T) {
			l := shardedLink(t, 1, mode)
			sink, err := l.s.ListenUDP(netip.MustParseAddrPort("127.0.0.1:9"))
			if err != nil {
				t.Fatal(err)
			}
			const flows = 32
			for i := range flows {
				c, err := l.s.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			seen := map[byte]bool{}
			sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 16)
			for len(seen) < flows {
				n, _, err := sink.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("%d of %d flows arrived: %v (shards %+v)", len(seen), flows, err, l.s.ShardStats())
				}
				seen[buf[0]] = n == 1
			}
			st := l.s.ShardStats()
			if st[0].SteeredOut == 0 || st[1].SteeredIn == 0 {
				t.Fatalf("no flow was steered from shard 0 to shard 1: %d out, %d in", st[0].SteeredOut, st[1].SteeredIn)
			}
		})
	}
}

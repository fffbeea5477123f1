package stack

import (
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/arp"
	"github.com/pollnet/pollnet/stack/eth"
)

// neighState is a neighbour entry's state, a subset of Linux's NUD states.
type neighState uint8

const (
	neighIncomplete neighState = iota // asked, no answer yet; packets wait
	neighReachable                    // answered within the reachable time
	neighStale                        // answered long ago; used, and re-asked on use
	neighFailed                       // gave up; packets to it are dropped
)

// neighbour is one entry of the neighbour table.
type neighbour struct {
	dev      int
	state    neighState
	mac      eth.MAC
	updated  int64 // when the entry was last confirmed (nanotime)
	nextTry  int64 // when to ask again, while incomplete
	tries    int
	pending  []engine.Mbuf // IPv4 packets waiting for the address, oldest first
	failedAt int64
}

type neighKey struct {
	dev int
	ip  [4]byte
}

// neighbours is the ARP neighbour table (net/ipv4/arp.c on top of
// net/core/neighbour.c): it resolves next hops, holds packets while it asks,
// retries, gives up, answers requests and learns from what it hears.
type neighbours struct {
	s       *Stack
	cfg     ARPConfig
	entries map[neighKey]*neighbour
}

func newNeighbours(s *Stack, cfg ARPConfig) *neighbours {
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Reachable == 0 {
		cfg.Reachable = 30 * time.Second
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 101
	}
	return &neighbours{s: s, cfg: cfg, entries: map[neighKey]*neighbour{}}
}

// output sends the IPv4 packet m to next hop ip on dev, resolving its link
// address first if need be. m starts with its IPv4 header. Called under the
// stack lock.
func (n *neighbours) output(dev *device, ip [4]byte, m engine.Mbuf) {
	s := n.s
	if ip == broadcastOf(dev) || ip == [4]byte{255, 255, 255, 255} {
		s.linkOutput(dev, eth.Broadcast, eth.TypeIPv4, m)
		return
	}
	k := neighKey{dev.id, ip}
	e := n.entries[k]
	now := engine.Nanotime()
	if e != nil {
		switch e.state {
		case neighReachable:
			if now-e.updated > int64(n.cfg.Reachable) {
				e.state = neighStale
			}
			s.linkOutput(dev, e.mac, eth.TypeIPv4, m)
			return
		case neighStale:
			// Use the old answer and ask again, without waiting for it.
			s.linkOutput(dev, e.mac, eth.TypeIPv4, m)
			if now >= e.nextTry {
				e.nextTry = now + int64(n.cfg.RetryInterval)
				n.request(dev, ip)
			}
			return
		case neighFailed:
			if now-e.failedAt < int64(n.cfg.RetryInterval) {
				s.stats.ARPResolveFailed++
				s.cs.Free(m)
				return
			}
			e.state, e.tries = neighIncomplete, 0 // try again after a pause
		}
	} else {
		e = &neighbour{dev: dev.id, state: neighIncomplete}
		n.entries[k] = e
	}
	// Incomplete: hold the packet, the oldest dropped beyond the limit, and
	// ask if it is time to.
	if len(e.pending) >= n.cfg.QueueLen {
		s.stats.ARPQueueDrops++
		s.cs.Free(e.pending[0])
		e.pending = append(e.pending[:0], e.pending[1:]...)
	}
	e.pending = append(e.pending, m)
	if e.tries == 0 || now >= e.nextTry {
		e.tries++
		e.nextTry = now + int64(n.cfg.RetryInterval)
		n.request(dev, ip)
	}
}

// request broadcasts a who-has for ip from dev's address.
func (n *neighbours) request(dev *device, ip [4]byte) {
	s := n.s
	m, err := s.cs.Alloc(s.pool)
	if err != nil {
		s.stats.NoMbuf++
		return
	}
	b, _ := m.Append(arp.FrameLen)
	arp.PutRequest(b, dev.mac, dev.addr.Addr().As4(), ip)
	s.stats.ARPOutRequests++
	s.xmit(dev, m)
}

// input handles a received ARP packet (arp_process): answer requests for our
// addresses, and learn the sender's address from anything addressed to us.
func (n *neighbours) input(dev *device, m engine.Mbuf) {
	s := n.s
	defer s.cs.Free(m)
	p, err := arp.Parse(m.Data())
	if err != nil {
		s.stats.ARPInErrors++
		return
	}
	if p.Op == arp.OpRequest {
		s.stats.ARPInRequests++
	} else {
		s.stats.ARPInReplies++
	}
	if dev.loopback || p.IsProbe() || eth.MAC(p.SenderMAC).IsMulticast() {
		return
	}
	ours := p.TargetIP == dev.addr.Addr().As4()
	k := neighKey{dev.id, p.SenderIP}
	e := n.entries[k]
	// Learn from a packet addressed to us, or refresh an entry we have (as
	// Linux updates existing entries from any ARP it hears).
	if ours || e != nil {
		n.learn(dev, p.SenderIP, p.SenderMAC)
	}
	if ours && p.Op == arp.OpRequest {
		r, err := s.cs.Alloc(s.pool)
		if err != nil {
			s.stats.NoMbuf++
			return
		}
		b, _ := r.Append(arp.FrameLen)
		arp.ReplyTo(b, p, dev.mac)
		s.stats.ARPOutReplies++
		s.xmit(dev, r)
	}
}

// learn records that ip is at mac on dev and sends what waited for it.
func (n *neighbours) learn(dev *device, ip [4]byte, mac eth.MAC) {
	k := neighKey{dev.id, ip}
	e := n.entries[k]
	if e == nil {
		e = &neighbour{dev: dev.id}
		n.entries[k] = e
	}
	e.state, e.mac, e.updated, e.tries = neighReachable, mac, engine.Nanotime(), 0
	pending := e.pending
	e.pending = nil
	for _, m := range pending {
		n.s.linkOutput(dev, mac, eth.TypeIPv4, m)
	}
}

// tick retries unanswered requests and gives up after the last one, dropping
// the packets that waited (and counting them).
func (n *neighbours) tick(now int64) {
	for k, e := range n.entries {
		if e.state != neighIncomplete || now < e.nextTry {
			continue
		}
		if e.tries >= n.cfg.Retries {
			e.state, e.failedAt = neighFailed, now
			n.s.stats.ARPResolveFailed += uint64(len(e.pending))
			n.s.cs.FreeBulk(e.pending)
			e.pending = nil
			continue
		}
		e.tries++
		e.nextTry = now + int64(n.cfg.RetryInterval)
		n.request(n.s.devs[k.dev], k.ip)
	}
}

// lookup returns the resolved address of ip on dev.
func (n *neighbours) lookup(dev int, ip [4]byte) (eth.MAC, bool) {
	e := n.entries[neighKey{dev, ip}]
	if e == nil || (e.state != neighReachable && e.state != neighStale) {
		return eth.MAC{}, false
	}
	return e.mac, true
}

// clear drops every entry and the packets they hold.
func (n *neighbours) clear() {
	for k, e := range n.entries {
		n.s.cs.FreeBulk(e.pending)
		delete(n.entries, k)
	}
}

package stack

import (
	"math/rand/v2"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// Linux's fixed neighbour-table timings (net/core/neighbour.c, arp_tbl).
const (
	forcedGCInterval = int64(5 * time.Second)   // a forced collection runs at most this often below gc_thresh3
	forcedGCMinAge   = int64(5 * time.Second)   // forced collection spares entries updated more recently
	rerandomInterval = int64(300 * time.Second) // reachable_time is drawn again this often
	arpLocktime      = int64(time.Second)       // a known address is not replaced sooner than this (locktime)
	minTimerStep     = int64(10 * time.Millisecond)
)

type neighKey struct {
	dev int
	ip  [4]byte
}

// neighbour is one entry of the neighbour table (struct neighbour).
type neighbour struct {
	key       neighKey
	state     nudState
	mac       eth.MAC
	confirmed int64 // when the neighbour last proved reachable
	updated   int64 // when the state or the address last changed
	used      int64 // when a packet was last sent to it
	probes    int   // requests sent in this INCOMPLETE or PROBE period, numbered as Linux's
	timer     timer

	queue      []engine.Mbuf // packets waiting for the address, oldest first
	queueBytes int           // buffer bytes they hold (unres_qlen_bytes counts these)
	queueSegs  int           // mbufs they hold, charged to the stack's heldMemory

	older, newer *neighbour // every entry in the order made (Linux's gc_list)
}

// referenced reports whether something holds the entry, so that collection
// must spare it. In Linux a running timer holds a reference, so entries in
// INCOMPLETE, REACHABLE, DELAY or PROBE are never collected; only
// INCOMPLETE ones hold packets.
func (e *neighbour) referenced() bool { return e.state.timed() || len(e.queue) > 0 }

// neighbours is the ARP neighbour table (net/ipv4/arp.c on top of
// net/core/neighbour.c): it resolves next hops, holds packets while it asks,
// re-checks addresses that have not proved reachable lately, gives up on
// those that do not answer, and stays bounded whatever the link sends.
//
// The state machine is in neigh_nud.go, ARP input and output in arp.go.
// The bounds are Linux's:
//   - Only our own sending and requests for our addresses make entries;
//     replies nobody asked for and gratuitous ARP update an entry we have
//     but never make one (arp_accept=0).
//   - Making an entry past GCThresh2 (when the last forced collection is 5 s
//     old) or at GCThresh3 first runs a forced collection (neigh_forced_gc):
//     unreferenced entries that failed or were not updated for 5 s go,
//     oldest first, down to GCThresh2. At GCThresh3 with nothing collected
//     the new entry is refused (table_fulls).
//   - Every half base reachable time, once the table has GCThresh1 entries,
//     unreferenced entries that failed or went unused for GCStaleTime go
//     (neigh_periodic_work).
//   - Packets waiting for one address may hold QueueBytes of buffers
//     (unres_qlen_bytes; less when the held-memory cap is small), the oldest
//     dropped first, and all waiting packets together stay within the
//     stack's heldMemory.
//
// Every field is used under the stack lock.
type neighbours struct {
	s       *Stack
	cfg     ARPConfig
	clock   func() int64 // nanoseconds; the stack's tick runs the timers on the same clock
	timers  timers
	entries map[neighKey]*neighbour

	oldest, newest *neighbour
	reachable      int64 // this period's randomised reachable time (reachable_time)
	lastRand       int64 // when reachable was drawn
	lastFlush      int64 // when a forced collection last ran
	gc             timer // the periodic collection
}

func newNeighbours(s *Stack, cfg ARPConfig, t timers) *neighbours {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt(&cfg.Retries, 3)
	defInt(&cfg.UnicastProbes, 3)
	def(&cfg.RetryInterval, time.Second)
	def(&cfg.Reachable, 30*time.Second)
	def(&cfg.DelayFirstProbe, 5*time.Second)
	def(&cfg.GCStaleTime, 60*time.Second)
	defInt(&cfg.QueueBytes, 212992)
	defInt(&cfg.GCThresh1, 128)
	defInt(&cfg.GCThresh2, 512)
	defInt(&cfg.GCThresh3, 1024)
	n := &neighbours{s: s, cfg: cfg, clock: engine.Nanotime, timers: t, entries: map[neighKey]*neighbour{}}
	now := n.clock()
	n.reachable = n.randomReachable()
	n.lastRand, n.lastFlush = now, now
	n.gc.fire = n.periodicGC
	n.timers.arm(&n.gc, now+int64(cfg.Reachable)/2)
	return n
}

// randomReachable draws a reachable time uniformly from 0.5 to 1.5 times the
// base, as neigh_rand_reach_time does, so that hosts do not re-check their
// neighbours in step.
func (n *neighbours) randomReachable() int64 {
	base := int64(n.cfg.Reachable)
	return base/2 + rand.Int64N(base)
}

// queueLimit is how many buffer bytes the packets waiting for one address
// may hold: unres_qlen_bytes, but at most a quarter of the held-memory cap,
// so that at least four destinations can wait at once.
func (n *neighbours) queueLimit() int {
	return min(n.cfg.QueueBytes, n.s.held.limit*engine.BufSize/4)
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
	now := n.clock()
	k := neighKey{dev.ID, ip}
	e := n.entries[k]
	if e == nil {
		if e = n.create(k, now); e == nil {
			s.cs.Free(m) // the table is full; counted in ARPTableFulls
			return
		}
	}
	n.send(dev, e, m, now)
}

// create makes an entry in state NONE, collecting first when the table is
// large (neigh_alloc). It returns nil, counted, when the table is full.
func (n *neighbours) create(k neighKey, now int64) *neighbour {
	entries := len(n.entries)
	if entries >= n.cfg.GCThresh3 || entries >= n.cfg.GCThresh2 && now > n.lastFlush+forcedGCInterval {
		if n.forcedGC(now) == 0 && entries >= n.cfg.GCThresh3 {
			n.s.stats.ARPTableFulls++
			return nil
		}
	}
	e := &neighbour{key: k, state: nudNone, updated: now, used: now,
		confirmed: now - 2*int64(n.cfg.Reachable)}
	e.timer.fire = func(now int64) { n.expire(e, now) }
	e.older = n.newest
	if n.newest != nil {
		n.newest.newer = e
	} else {
		n.oldest = e
	}
	n.newest = e
	n.entries[k] = e
	n.s.stats.ARPAllocs++
	return e
}

// remove takes an entry out of the table, dropping what it holds.
func (n *neighbours) remove(e *neighbour) {
	n.timers.cancel(&e.timer)
	n.dropQueue(e)
	delete(n.entries, e.key)
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		n.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		n.newest = e.older
	}
	e.older, e.newer = nil, nil
	e.state = nudNone
}

// forcedGC removes unreferenced entries that failed or were not updated
// for 5 s, oldest first, until the table is down to GCThresh2, like
// neigh_forced_gc. It returns how many went.
func (n *neighbours) forcedGC(now int64) int {
	n.s.stats.ARPForcedGCRuns++
	maxClean := len(n.entries) - n.cfg.GCThresh2
	shrunk := 0
	for e := n.oldest; e != nil && shrunk < maxClean; {
		next := e.newer
		if !e.referenced() && (e.state == nudFailed || e.updated < now-forcedGCMinAge) {
			n.remove(e)
			shrunk++
		}
		e = next
	}
	n.s.stats.ARPForcedGCEvictions += uint64(shrunk)
	n.lastFlush = now
	return shrunk
}

// periodicGC runs every half base reachable time (neigh_periodic_work): it
// draws the reachable time again every 300 s and, once the table holds
// GCThresh1 entries, removes unreferenced ones that failed or were not used
// for GCStaleTime.
func (n *neighbours) periodicGC(now int64) {
	n.s.stats.ARPPeriodicGCRuns++
	if now-n.lastRand > rerandomInterval {
		n.reachable = n.randomReachable()
		n.lastRand = now
	}
	if len(n.entries) >= n.cfg.GCThresh1 {
		for e := n.oldest; e != nil; {
			next := e.newer
			if !e.referenced() {
				if e.used < e.confirmed && e.confirmed <= now {
					e.used = e.confirmed
				}
				if e.state == nudFailed || now >= e.used+int64(n.cfg.GCStaleTime) {
					n.remove(e)
					n.s.stats.ARPPeriodicGCEvictions++
				}
			}
			e = next
		}
	}
	n.timers.arm(&n.gc, now+int64(n.cfg.Reachable)/2)
}

// enqueue holds m until e's address is known, dropping the entry's oldest
// packets beyond its byte limit (unres_discards) and m itself when the
// stack's held memory is full.
func (n *neighbours) enqueue(e *neighbour, m engine.Mbuf) {
	s := n.s
	segs := m.Segs()
	cost := segs * engine.BufSize
	limit := n.queueLimit()
	drop := 0
	for drop < len(e.queue) && e.queueBytes+cost > limit {
		old := e.queue[drop]
		e.queueBytes -= old.Segs() * engine.BufSize
		e.queueSegs -= old.Segs()
		s.held.Uncharge(old.Segs())
		s.cs.Free(old)
		s.stats.ARPQueueDrops++
		drop++
	}
	if drop > 0 {
		k := copy(e.queue, e.queue[drop:])
		clear(e.queue[k:])
		e.queue = e.queue[:k]
	}
	if !s.held.Charge(segs) {
		s.stats.ARPQueueDrops++
		s.cs.Free(m)
		return
	}
	e.queue = append(e.queue, m)
	e.queueBytes += cost
	e.queueSegs += segs
}

// dropQueue frees every packet waiting on e and gives back their charge.
func (n *neighbours) dropQueue(e *neighbour) int {
	k := len(e.queue)
	n.s.held.Uncharge(e.queueSegs)
	n.s.cs.FreeBulk(e.queue)
	clear(e.queue)
	e.queue = e.queue[:0]
	e.queueBytes, e.queueSegs = 0, 0
	return k
}

// clear drops every entry and the packets they hold, and stops the
// periodic collection.
func (n *neighbours) clear() {
	for n.oldest != nil {
		n.remove(n.oldest)
	}
	n.timers.cancel(&n.gc)
}

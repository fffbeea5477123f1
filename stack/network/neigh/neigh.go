// Package neigh is the IPv4 neighbour table: ARP (RFC 826) on top of
// Linux's neighbour state machine (net/ipv4/arp.c over net/core/neighbour.c).
// It resolves next hops, holds packets while it asks, re-checks addresses
// that have not proved reachable lately, gives up on those that do not
// answer, and stays bounded whatever the link sends.
//
// The state machine is in nud.go, the hash table readers walk without a lock
// in hash.go, creation and collection in gc.go, the queue of packets waiting
// for an address in queue.go, ARP input and output in arp.go.
//
// # Bounds (Linux's)
//
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
//     stack's held-memory cap (the Accountant).
//
// # Concurrency
//
// Several shards of a stack, each on its own goroutine, share one table.
// The per-packet path, Output to a neighbour whose address is known and
// usable (REACHABLE, DELAY, PROBE), takes no lock and allocates nothing: it
// finds the entry in a hash table walked without a lock (hash.go argues
// why that is safe), reads the entry's address and state from one atomic
// word, and stores the time it was used atomically. Everything else takes
// the table's mutex: STALE going to DELAY, queueing for an INCOMPLETE
// entry, making an entry, ARP input, timers and collection. None of that
// happens per packet once the neighbours are resolved.
//
// The timers (retransmission, reachable and delay times, the periodic
// collection) are embedded in the entries and sit on a timer.Wheel the
// table owns. Every shard's loop calls Advance; the first to find a timer
// due turns the wheel under the mutex, taken with TryLock so that no shard
// waits for another, and publishes the next deadline in an atomic word that
// Next and Advance read without the lock.
//
// Time, to the table, is what Advance was last given (or New, at first),
// kept in one atomic word, the way Linux's neighbour code reads jiffies:
// every shard's loop calls Advance, and the per-packet path reads the word
// instead of a clock. The word moves in steps of at least clockGrain, so
// that shards calling Advance on every round do not keep writing it.
package neigh

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/timer"
)

// Linux's fixed neighbour-table timings (net/core/neighbour.c, arp_tbl),
// and ours.
const (
	forcedGCInterval = int64(5 * time.Second)   // a forced collection runs at most this often below gc_thresh3
	forcedGCMinAge   = int64(5 * time.Second)   // forced collection spares entries updated more recently
	rerandomInterval = int64(300 * time.Second) // reachable_time is drawn again this often
	arpLocktime      = int64(time.Second)       // a known address is not replaced sooner than this (locktime)
	minTimerStep     = int64(10 * time.Millisecond)
	wheelTick        = int64(time.Millisecond) // the timer wheel's resolution
	clockGrain       = int64(time.Millisecond) // the table's clock moves by at least this much
	maxEntries       = 1 << 20                 // the largest GCThresh3 accepted: the hash table has as many buckets
)

// Config are the table's knobs, Linux's net.ipv4.neigh.* settings; zero
// fields take Linux's defaults.
type Config struct {
	Retries         int           // broadcast requests for an unknown address before giving up (default 3, mcast_solicit)
	UnicastProbes   int           // unicast requests re-checking a known address before giving up (default 3, ucast_solicit)
	RetryInterval   time.Duration // between requests (default 1 s, retrans_time)
	Reachable       time.Duration // how long a confirmation lasts, drawn from 0.5 to 1.5 times this (default 30 s, base_reachable_time)
	DelayFirstProbe time.Duration // how long an address in use waits to be confirmed before it is re-checked (default 5 s, delay_first_probe_time)
	GCStaleTime     time.Duration // how long an unused entry is kept once the table is large (default 60 s, gc_stale_time)
	QueueBytes      int           // buffer bytes held for one unresolved address (default 212992, unres_qlen_bytes)
	GCThresh1       int           // entries below which nothing is collected (default 128, gc_thresh1)
	GCThresh2       int           // entries above which collection is forced every 5 s (default 512, gc_thresh2)
	GCThresh3       int           // entries never exceeded (default 1024, gc_thresh3)
}

// withDefaults fills the zero fields and checks the result.
func (c Config) withDefaults() (Config, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"Retries", &c.Retries, 3}, {"UnicastProbes", &c.UnicastProbes, 3}, {"QueueBytes", &c.QueueBytes, 212992},
		{"GCThresh1", &c.GCThresh1, 128}, {"GCThresh2", &c.GCThresh2, 512}, {"GCThresh3", &c.GCThresh3, 1024},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return c, fmt.Errorf("neigh: %s %d is negative: use 0 for the default (%d)", f.name, *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RetryInterval", &c.RetryInterval, time.Second}, {"Reachable", &c.Reachable, 30 * time.Second},
		{"DelayFirstProbe", &c.DelayFirstProbe, 5 * time.Second}, {"GCStaleTime", &c.GCStaleTime, 60 * time.Second},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return c, fmt.Errorf("neigh: %s %v is negative: use 0 for the default (%v)", f.name, *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.GCThresh1 > c.GCThresh2 || c.GCThresh2 > c.GCThresh3 {
		return c, fmt.Errorf("neigh: GCThresh1 %d, GCThresh2 %d, GCThresh3 %d do not rise: set the lower thresholds too (defaults 128, 512, 1024)",
			c.GCThresh1, c.GCThresh2, c.GCThresh3)
	}
	if c.GCThresh3 > maxEntries {
		return c, fmt.Errorf("neigh: GCThresh3 %d is above %d entries: lower it", c.GCThresh3, maxEntries)
	}
	return c, nil
}

// Stats are the table's counters; Linux's /proc/net/stat/arp_cache names
// and the SNMP ARP counters are given where there is one.
type Stats struct {
	Entries             uint64 // the number of entries now (entries)
	Allocs              uint64 // the number of entries made (allocs)
	ResolveFailed       uint64 // the number of addresses given up as unanswered (res_failed)
	QueueDrops          uint64 // the number of packets dropped while waiting for an address: past the queue's bytes (unres_discards), past the held-memory cap, or when the address was given up
	TableFulls          uint64 // the number of entries refused because the table was full (table_fulls)
	ForcedGCRuns        uint64 // the number of forced collections (forced_gc_runs)
	ForcedGCEvictions   uint64 // the number of entries a forced collection removed
	PeriodicGCRuns      uint64 // the number of periodic collections (periodic_gc_runs)
	PeriodicGCEvictions uint64 // the number of entries a periodic collection removed
	InRequests          uint64 // the number of ARP requests received
	InReplies           uint64 // the number of ARP replies received
	OutRequests         uint64 // the number of ARP requests sent
	OutReplies          uint64 // the number of ARP replies sent
	InErrors            uint64 // the number of ARP packets dropped as malformed
	NoMbuf              uint64 // the number of ARP packets not sent for want of a buffer
}

// Link is what the table needs from the shard calling it. Its methods run
// on the calling goroutine, some under the table's mutex: they must not
// call back into the table.
type Link interface {
	// Output puts an Ethernet header (dst, dev's MAC, typ) on m and
	// queues it on the calling shard's transmit queue of dev. It takes m.
	Output(dev *link.Device, dst eth.MAC, typ uint16, m engine.Mbuf)
	// Alloc takes a buffer from the calling shard's caches (for ARP frames).
	Alloc() (engine.Mbuf, error)
	// Free returns m to the calling shard's caches.
	Free(m engine.Mbuf)
}

// Accountant is the stack-wide cap on mbufs held by packets waiting for
// something, shared with the reassembler (the same method set as
// frag.Accountant). The table calls it under its mutex; it must be safe
// for other holders calling it at the same time.
type Accountant interface {
	// Charge counts n more mbufs as held and reports true, or reports
	// false, counting nothing, when they would pass the bound.
	Charge(n int) bool
	// Uncharge gives back n mbufs charged earlier.
	Uncharge(n int)
	// Room is how many more mbufs may be charged now.
	Room() int
}

// Table is the neighbour table of a stack, shared by its shards.
type Table struct {
	// Read by every shard without the lock; fixed at New but for the
	// atomics.
	buckets []atomic.Pointer[entry] // chains of entries by hash (hash.go); a power of two long
	mask    uint64
	key     siphash.Key
	cfg     Config
	routes  *route.Routes
	clock   atomic.Int64 // the table's time, in nanoseconds: the latest Advance's (or New's) now
	next    atomic.Int64 // the earliest timer's deadline, math.MaxInt64 when none; written under mu

	held       Accountant // called under mu
	queueLimit int        // buffer bytes one address's waiting packets may hold

	// Everything below is guarded by mu (+checklocks:mu), and so is every
	// entry's field that is not atomic.
	mu        sync.Mutex
	link      Link        // the calling shard's, while it holds mu
	wheel     timer.Wheel // the timers of the entries and the periodic collection
	n         int         // entries in the table
	oldest    *entry      // every entry in the order made (Linux's gc_list)
	newest    *entry
	reachable int64       // this period's randomised reachable time (reachable_time)
	lastRand  int64       // when reachable was drawn
	lastFlush int64       // when a forced collection last ran
	gc        timer.Timer // the periodic collection
	stats     Stats
	rng       *rand.Rand // draws reachable times
}

// New makes a table at time now (nanoseconds, the clock later passed to
// Advance). routes tells which addresses are ours (answered, never
// neighbours). held is the stack-wide cap on waiting mbufs and heldLimit
// its bound, in mbufs: the packets waiting for one address hold at most a
// quarter of it, so that at least four destinations can wait at once. key
// keys the hash that places entries, so that a sender cannot aim many
// addresses at one chain, and seeds the draws of the reachable time. A
// config that cannot work is refused with a message saying what to change.
func New(cfg Config, routes *route.Routes, held Accountant, heldLimit int, key siphash.Key, now int64) (*Table, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if routes == nil || held == nil {
		return nil, errors.New("neigh: New needs the stack's routes and its held-memory Accountant")
	}
	if heldLimit < 1 {
		return nil, fmt.Errorf("neigh: held-memory bound %d mbufs is below 1: pass the Accountant's bound", heldLimit)
	}
	n := 1 << bits.Len(uint(cfg.GCThresh3-1)) // a bucket per entry the table may hold
	t := &Table{
		buckets:    make([]atomic.Pointer[entry], n),
		mask:       uint64(n - 1),
		key:        key,
		cfg:        cfg,
		routes:     routes,
		held:       held,
		queueLimit: min(cfg.QueueBytes, heldLimit*engine.BufSize/4),
		rng:        rand.New(rand.NewPCG(key.Hash2(seedReach, 0), key.Hash2(seedReach, 1))),
	}
	t.clock.Store(now)
	t.wheel.Init(now, wheelTick)
	t.reachable = t.randomReachable()
	t.lastRand, t.lastFlush = now, now
	t.gc.Init(t.periodicGC)
	t.mu.Lock()
	t.arm(&t.gc, now, int64(cfg.Reachable)/2)
	t.unlock()
	return t, nil
}

// seedReach separates the key's use for reachable-time draws from its use
// for placing entries.
const seedReach = 'r' << 56

// randomReachable draws a reachable time uniformly from 0.5 to 1.5 times the
// base, as neigh_rand_reach_time does, so that hosts do not re-check their
// neighbours in step. Called under mu.
func (t *Table) randomReachable() int64 {
	base := int64(t.cfg.Reachable)
	return base/2 + t.rng.Int64N(base)
}

// Output sends the IPv4 datagram m, which starts with its IPv4 header, to
// the next hop next on dev, resolving next's link address first if need
// be (neigh_resolve_output). Broadcast next hops go to the Ethernet
// broadcast address. It takes m. Without a lock or an allocation when
// next's address is known and usable.
func (t *Table) Output(l Link, dev *link.Device, next [4]byte, m engine.Mbuf) {
	if isBroadcast(dev, next) {
		l.Output(dev, eth.Broadcast, eth.TypeIPv4, m)
		return
	}
	if e := t.lookup(dev.ID, next); e != nil {
		if mac, st := unpack(e.link.Load()); st.connected() {
			e.use(t.clock.Load())
			l.Output(dev, mac, eth.TypeIPv4, m)
			return
		}
	}
	t.lock(l)
	defer t.unlock()
	now := t.clock.Load()
	e := t.lookup(dev.ID, next)
	if e == nil {
		if e = t.create(dev, next, now); e == nil {
			l.Free(m) // the table is full; counted in TableFulls
			return
		}
	}
	t.send(e, m, now)
}

// isBroadcast reports whether ip is the limited broadcast or dev's subnet's
// broadcast address.
func isBroadcast(dev *link.Device, ip [4]byte) bool {
	if ip == [4]byte{255, 255, 255, 255} {
		return true
	}
	b, ok := route.Broadcast(dev.Addr)
	return ok && ip == b.As4()
}

// Advance runs the timers due by now (nanoseconds) and returns how many
// ran. Every shard's loop calls it; it returns 0 at once when nothing is
// due or another goroutine is advancing, so shards never wait on each
// other for it. l is the caller's: requests the timers send leave on its
// transmit queues.
func (t *Table) Advance(l Link, now int64) int {
	t.tick(now, clockGrain)
	if now < t.next.Load() || !t.mu.TryLock() {
		return 0
	}
	defer t.unlock()
	t.link = l
	t.tick(now, 1)
	return t.wheel.Advance(now)
}

// tick moves the table's clock on to now if that is at least grain ahead.
func (t *Table) tick(now, grain int64) {
	for {
		c := t.clock.Load()
		if now-c < grain || t.clock.CompareAndSwap(c, now) {
			return
		}
	}
}

// Next is a time at or before the table's earliest deadline, for a loop to
// know how long it may sleep; ok is false when no timer is armed. It takes
// no lock. A call into the table may arm an earlier timer, so a loop reads
// Next after its round's work, before it sleeps.
func (t *Table) Next() (when int64, ok bool) {
	w := t.next.Load()
	return w, w != math.MaxInt64
}

// lock takes mu for the shard whose Link is l.
func (t *Table) lock(l Link) {
	t.mu.Lock()
	t.link = l
}

// unlock publishes the earliest deadline, which the locked section may have
// moved, and releases mu.
func (t *Table) unlock() {
	t.link = nil
	w, ok := t.wheel.Next()
	if !ok {
		w = math.MaxInt64
	}
	t.next.Store(w)
	t.mu.Unlock()
}

// arm arms tm for d after now, and never sooner than minTimerStep, so that
// no timer can fire on every round of a loop.
func (t *Table) arm(tm *timer.Timer, now, d int64) {
	t.wheel.Arm(tm, now+max(d, minTimerStep))
}

// Stats returns a copy of the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	st.Entries = uint64(t.n)
	return st
}

// Len is the number of entries.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Clear drops every entry, frees every waiting packet into l's caches and
// stops the periodic collection: for a stack closing down.
func (t *Table) Clear(l Link) {
	t.lock(l)
	defer t.unlock()
	for t.oldest != nil {
		t.remove(t.oldest)
	}
	t.wheel.Cancel(&t.gc)
}

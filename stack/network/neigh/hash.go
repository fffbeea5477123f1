package neigh

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/timer"
)

// entry is one neighbour (struct neighbour). The fields the per-packet path
// reads come first; they are atomic or fixed when the entry is made. The
// rest are guarded by the table's mutex.
type entry struct {
	next atomic.Pointer[entry] // the next entry of the bucket's chain (see below)
	id   int                   // dev.ID, with ip the entry's key
	ip   [4]byte
	// link is the address and the state in one word (pack), so that a
	// reader sees a pair the table wrote together. Written under mu.
	link      atomic.Uint64
	used      atomic.Int64 // when a packet was last sent to it
	confirmed atomic.Int64 // when the neighbour last proved reachable

	dev     *link.Device
	bucket  uint32
	updated int64 // when the state or the address last changed
	probes  int   // requests sent in this INCOMPLETE or PROBE period, numbered as Linux's
	timer   timer.Timer

	queue      []engine.Mbuf // packets waiting for the address, oldest first
	queueBytes int           // buffer bytes they hold (unres_qlen_bytes counts these)
	queueSegs  int           // mbufs they hold, charged to the Accountant

	older, newer *entry // every entry in the order made (Linux's gc_list)
}

// pack puts a MAC and a state in one word: the MAC in the top six bytes,
// the state in the lowest.
func pack(mac eth.MAC, st nudState) uint64 {
	var b [8]byte
	copy(b[:6], mac[:])
	return binary.BigEndian.Uint64(b[:]) | uint64(st)
}

func unpack(w uint64) (eth.MAC, nudState) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], w)
	return eth.MAC(b[:6]), nudState(w)
}

// state and mac read the entry's link word.
func (e *entry) state() nudState { return nudState(e.link.Load()) }

func (e *entry) mac() eth.MAC {
	mac, _ := unpack(e.link.Load())
	return mac
}

// set writes the entry's address and state. Called under mu.
func (e *entry) set(mac eth.MAC, st nudState) { e.link.Store(pack(mac, st)) }

// use records that a packet went to the entry at now. The clock moves in
// steps, so most packets find the time stored already and write nothing:
// shards sending to one neighbour do not keep taking its cache line from
// each other.
func (e *entry) use(now int64) {
	if e.used.Load() != now {
		e.used.Store(now)
	}
}

// referenced reports whether something holds the entry, so that collection
// must spare it. In Linux a running timer holds a reference, so entries in
// INCOMPLETE, REACHABLE, DELAY or PROBE are never collected; only
// INCOMPLETE ones hold packets. Called under mu.
func (e *entry) referenced() bool { return e.state().timed() || len(e.queue) > 0 }

// The hash table is a fixed array of buckets, each the head of a chain of
// entries linked through entry.next, all atomic pointers. Readers walk a
// chain without a lock; only holders of the table's mutex change one:
//
//   - insert makes the new entry whole, points its next at the bucket's
//     head, then stores it as the head. A reader sees either the old head
//     or the whole new entry.
//   - unlink stores the removed entry's next in its predecessor (or the
//     bucket) and leaves the removed entry's own next as it was, so that a
//     reader standing on it walks on to the rest of the chain.
//
// Every pointer so leads from an entry to one inserted before it (insert
// points the newest at older ones; unlink replaces a pointer to e by e's
// own, older still), so no walk can loop, even through removed entries.
// A reader may miss an entry inserted while it walks, or find one removed
// meanwhile: Output then takes the mutex and looks again, and a removed
// entry's state is NONE (remove), which sends Output there. Go's garbage
// collector keeps a removed entry alive while any reader still holds it,
// so nothing is freed under a reader's feet.

// hash places (id, ip) in a bucket with the table's key, so that a sender
// choosing addresses cannot pile them into one chain.
func (t *Table) hash(id int, ip [4]byte) uint32 {
	return uint32(t.key.Hash2(seedBucket|uint64(uint32(id)), uint64(binary.BigEndian.Uint32(ip[:]))) & t.mask)
}

// seedBucket separates the key's use for buckets from its other uses.
const seedBucket = 'b' << 56

// lookup finds the entry for ip on device id, without a lock.
func (t *Table) lookup(id int, ip [4]byte) *entry {
	for e := t.buckets[t.hash(id, ip)].Load(); e != nil; e = e.next.Load() {
		if e.ip == ip && e.id == id {
			return e
		}
	}
	return nil
}

// insert publishes a whole entry at the head of its chain. Called under mu.
func (t *Table) insert(e *entry) {
	e.bucket = t.hash(e.id, e.ip)
	b := &t.buckets[e.bucket]
	e.next.Store(b.Load())
	b.Store(e)
}

// unlink takes e out of its chain. Called under mu.
func (t *Table) unlink(e *entry) {
	p := &t.buckets[e.bucket]
	for c := p.Load(); c != nil; c = p.Load() {
		if c == e {
			p.Store(e.next.Load())
			return
		}
		p = &c.next
	}
}

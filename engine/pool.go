package engine

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pollnet/pollnet/engine/ring"
)

// Pool is a fixed set of mbufs carved from one pointer-free arena, with a
// shared free ring and per-goroutine caches in front of it (the design of
// rte_mempool and its per-lcore caches). Most gets and puts touch only the
// caller's cache; the shared ring is touched in bulk, once per CacheSize mbufs.
type Pool struct {
	id        uint8
	name      string
	size      int
	cacheSize int
	arena     []byte
	meta      []meta
	mem       packetMem
	ext       []extSeg // indexed like meta; set only on mbufs with flagExternal
	free      *ring.MPMC[Mbuf]
	dbg       debugInfo // the debug build's side table; empty otherwise

	// External buffers' shared records, made on the first NewExtBuf.
	sharedOnce sync.Once
	shared     []extShared
	sharedFree *ring.MPMC[uint32] // indices of unused records

	emptyEvents atomic.Uint64 // allocations refused because the pool was empty
	doubleFrees atomic.Uint64

	mu     sync.Mutex
	caches []*Cache // the open caches; Cache.Close removes one
}

var poolsMu sync.Mutex

// DefaultCacheSize is the per-goroutine cache size, as DPDK's usual 256.
const DefaultCacheSize = 256

// NewPool creates a pool of size mbufs. cacheSize is how many mbufs each
// goroutine's cache holds before it spills to the shared ring (0 means
// DefaultCacheSize, or an eighth of a small pool).
func NewPool(name string, size, cacheSize int) (*Pool, error) {
	if size < 1 || size > MaxPoolSize {
		return nil, fmt.Errorf("pool %q: size %d out of range 1..%d", name, size, MaxPoolSize)
	}
	if cacheSize == 0 {
		cacheSize = max(1, min(DefaultCacheSize, size/8))
	}
	if cacheSize < 1 || cacheSize > size {
		return nil, fmt.Errorf("pool %q: cache size %d out of range 1..%d (the pool size)", name, cacheSize, size)
	}
	ringSize := 2
	for ringSize < size {
		ringSize <<= 1
	}
	free, err := ring.NewMPMC[Mbuf](ringSize)
	if err != nil {
		return nil, err
	}
	mem, err := packetMemory(size)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", name, err)
	}
	p := &Pool{
		name:      name,
		size:      size,
		cacheSize: cacheSize,
		arena:     mem.arena,
		meta:      mem.metas,
		mem:       mem,
		ext:       make([]extSeg, size),
		free:      free,
	}
	if debug {
		p.debugInit()
	}
	poolsMu.Lock()
	id := -1
	for i, q := range pools[:maxPools] {
		if q == nil {
			id = i
			break
		}
	}
	if id < 0 {
		poolsMu.Unlock()
		mem.unmap()
		return nil, fmt.Errorf("pool %q: all %d pool slots in use; close unused pools", name, maxPools)
	}
	p.id = uint8(id)
	pools[id] = p
	poolsMu.Unlock()

	batch := make([]Mbuf, 0, 256)
	for i := 0; i < size; i++ {
		batch = append(batch, Mbuf(uint32(id)<<poolShift|uint32(i)))
		if len(batch) == cap(batch) || i == size-1 {
			free.EnqueueBulk(batch)
			batch = batch[:0]
		}
	}
	recordPoolMemory(p)
	return p, nil
}

// Close releases the pool's slot so a new pool may take it. Every mbuf of the
// pool must be back, and every external buffer made by it released, or Close
// refuses.
func (p *Pool) Close() error {
	if n := p.Available(); n != p.size {
		return fmt.Errorf("pool %q: %d of %d mbufs still in use", p.name, p.size-n, p.size)
	}
	if p.sharedFree != nil {
		if n := p.sharedFree.Len(); n != p.size {
			return fmt.Errorf("pool %q: %d external buffers still in use", p.name, p.size-n)
		}
	}
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if pools[p.id] == p {
		pools[p.id] = nil
		p.mem.unmap()
	}
	return nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Size is the number of mbufs in the pool.
func (p *Pool) Size() int { return p.size }

// EmptyEvents counts allocations refused because the pool was empty.
func (p *Pool) EmptyEvents() uint64 { return p.emptyEvents.Load() }

// DoubleFrees is the number of frees of an mbuf of this pool that was
// already free (its count 0), and of releases of an external buffer already
// released. Each was refused: the mbuf was not handed back a second time,
// and a chain was not followed past the free segment. The debug build panics
// at the first instead. A free of an mbuf that has been handed out again
// since is its new owner's as far as any count can tell, and is not seen.
func (p *Pool) DoubleFrees() uint64 { return p.doubleFrees.Load() }

// doubleFree counts a free of the free mbuf m, which panics in the debug
// build.
func (p *Pool) doubleFree(m Mbuf) {
	p.doubleFrees.Add(1)
	if debug {
		p.debugDoubleFree(m)
	}
}

// Available counts the free mbufs in the shared ring and in every cache. It
// reads the caches without synchronising with their owners, so it may only be
// called while no goroutine is using the pool, as at the end of a run.
func (p *Pool) Available() int {
	n := p.free.Len()
	p.mu.Lock()
	for _, c := range p.caches {
		n += len(c.objs)
	}
	p.mu.Unlock()
	return n
}

// reset prepares a freshly allocated mbuf.
func (p *Pool) reset(m Mbuf) {
	// One whole-line store; the count needs no atomic here because no
	// other goroutine can see an mbuf that is being handed out.
	p.meta[m.index()] = freshMeta
}

var freshMeta = meta{refcnt: 1, dataOff: Headroom, next: NoMbuf, direct: NoMbuf, tail: NoMbuf, nbSegs: 1}

// giveBack returns free mbufs to the shared ring. The ring holds the whole
// pool, so there is always room in the end; a burst can still come up short
// while a preempted consumer holds a slot it has claimed but not yet read.
func (p *Pool) giveBack(ms []Mbuf) {
	if n := p.free.EnqueueBurst(ms); n < len(ms) {
		enqueueAll(p.free, ms[n:], p.name)
	}
}

// giveBackPatience bounds how long enqueueAll waits for room in a free ring.
//
// Why a bound, then a panic: a free ring has a slot for every object of its
// pool, so a give-back can only come up short for two reasons. Either a
// consumer claimed slots and was preempted before reading them (the ring
// frees a slot only once it is read), which lasts as long as the operating
// system keeps that thread off a core: milliseconds, even on a loaded
// machine; or more objects are being given back than the pool holds, which
// is corruption (a double free the counts could not see) and never ends.
// Spinning for ever turns the second into a hang with no clue, so we retry
// for a time no preemption lasts, then panic and say why.
var giveBackPatience = time.Second

// enqueueAll puts every value into r, a free ring with room for all of its
// pool, retrying while a preempted consumer holds slots, and panics when
// there is still no room after giveBackPatience.
func enqueueAll[T any](r *ring.MPMC[T], vals []T, pool string) {
	var start int64
	for try := 0; ; try++ {
		vals = vals[r.EnqueueBurst(vals):]
		if len(vals) == 0 {
			return
		}
		if try < 64 {
			runtime.Gosched() // the consumer may be a goroutine on our thread
			continue
		}
		now := Nanotime()
		if start == 0 {
			start = now
		} else if time.Duration(now-start) > giveBackPatience {
			panic(fmt.Sprintf("engine: pool %q: free ring full for %v with %d still to give back: "+
				"the pool is being given more mbufs than it holds (a double free, or a corrupt handle)",
				pool, giveBackPatience, len(vals)))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Get takes one mbuf straight from the shared ring. Goroutines on a hot path
// use a Cache instead.
func (p *Pool) Get() (Mbuf, error) {
	m, ok := p.free.Dequeue()
	if !ok {
		p.emptyEvents.Add(1)
		return NoMbuf, ErrPoolEmpty
	}
	p.reset(m)
	return m, nil
}

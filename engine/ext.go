package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pollnet/pollnet/engine/ring"
)

// ExtFree gives external memory back to its owner once neither an mbuf nor
// its creator refers to it. It runs once per ExtBuf, on the goroutine that
// drops the last reference (in a Free, or in ExtBuf.Release), and must not
// block.
type ExtFree func(cookie uint64)

// ExtFreeID names a function registered with RegisterExtFree. 0 names none:
// the memory needs no release.
type ExtFreeID uint16

// extFrees is the table of registered functions, copied on write so that a
// release reads it without a lock. Entry 0 is nil.
var extFrees struct {
	mu  sync.Mutex
	fns atomic.Pointer[[]ExtFree]
}

// RegisterExtFree registers fn, once, at setup (a package's init, a driver's
// constructor), and returns the id that external buffers name it by. It
// panics after 65535 registrations: functions are meant to be static.
func RegisterExtFree(fn ExtFree) ExtFreeID {
	extFrees.mu.Lock()
	defer extFrees.mu.Unlock()
	old := []ExtFree{nil}
	if p := extFrees.fns.Load(); p != nil {
		old = *p
	}
	if len(old) > 0xffff {
		panic("engine: more than 65535 ExtFree functions registered; register each once, at setup")
	}
	fns := append(slices.Clip(old), fn)
	extFrees.fns.Store(&fns)
	return ExtFreeID(len(fns) - 1)
}

func extFreeFunc(id ExtFreeID) (ExtFree, bool) {
	if id == 0 {
		return nil, true
	}
	p := extFrees.fns.Load()
	if p == nil || int(id) >= len(*p) {
		return nil, false
	}
	return (*p)[id], true
}

// ExtBuf is a handle on a piece of external memory: memory the pool does not
// own (the pages of a file for sendfile, a region a driver maps), sent
// without a copy. Like DPDK's rte_mbuf_ext_shared_info, each piece has one
// shared record holding its address, size, reference count and the function
// that gives it back, and any number of mbufs attach windows of it. Like an
// Mbuf the handle is a plain integer (the number of the pool whose table
// holds the record in the top 8 bits, its index below), and neither the
// record nor an mbuf's note of its window holds a Go pointer, so the
// collector scans none of it.
//
// The memory-lifetime contract. The engine keeps the address as an integer,
// which keeps nothing alive, so the caller guarantees that addr..addr+size
// stays valid, at that address, until the release function runs:
//   - memory outside the Go heap (an mmap of a file, a driver's region)
//     stays until the caller unmaps it, which it does in the release
//     function, not before;
//   - Go heap memory does not move (the collector does not compact), but it
//     is freed once unreachable: the caller keeps a reference to it (in a
//     table the cookie indexes, say) until the release function runs.
//
// Attached memory is never written through an mbuf (Writable is false): it
// belongs to its owner and may be read by every mbuf attached to it.
type ExtBuf uint32

// extShared is an ExtBuf's record (rte_mbuf_ext_shared_info).
type extShared struct {
	refcnt int32 // atomic: the creator's reference until Release, plus one per attached mbuf; 0 when unused
	free   ExtFreeID
	_      uint16
	cookie uint64
	addr   uintptr
	size   uint64
}

// extSeg is what an mbuf attached to external memory records: its window of
// the memory and the ExtBuf it holds a reference to.
type extSeg struct {
	addr   uintptr
	size   uint32
	shared ExtBuf
}

// bytes returns the window as a slice. The address was a pointer when the
// caller made the ExtBuf; reading the integer back as an unsafe.Pointer (not
// converting it) is how a pointer-free table hands out memory without the
// conversion rules of unsafe.Pointer(uintptr) applying.
func (s *extSeg) bytes() []byte {
	ptr := *(*unsafe.Pointer)(unsafe.Pointer(&s.addr))
	return unsafe.Slice((*byte)(ptr), s.size)
}

// initShared makes the pool's table of external buffer records: as many as
// the pool has mbufs, since each record lives while an mbuf (or its creator)
// holds it.
func (p *Pool) initShared() {
	free, err := ring.NewMPMC[uint32](p.free.Cap())
	if err != nil {
		panic(err) // the same size as the mbuf ring, which exists
	}
	p.shared = make([]extShared, p.size)
	idx := make([]uint32, p.size)
	for i := range idx {
		idx[i] = uint32(i)
	}
	free.EnqueueBulk(idx)
	p.sharedFree = free
}

// NewExtBuf makes a record for size bytes of external memory at addr, which
// mbufs then attach with AttachExternal. free (with cookie) runs when the
// last reference goes; the caller holds the first reference, and drops it
// with Release once it has attached what it needs. The memory must stay
// valid until free runs (see ExtBuf for the contract). The record is taken
// from p's table, of p.Size() records; with none left it returns
// ErrPoolEmpty.
func (p *Pool) NewExtBuf(addr uintptr, size int, free ExtFreeID, cookie uint64) (ExtBuf, error) {
	if addr == 0 || size <= 0 {
		return 0, fmt.Errorf("mbuf: external buffer of %d bytes at %#x", size, addr)
	}
	if _, ok := extFreeFunc(free); !ok {
		return 0, fmt.Errorf("mbuf: external buffer release function %d is not registered", free)
	}
	p.sharedOnce.Do(p.initShared)
	i, ok := p.sharedFree.Dequeue()
	if !ok {
		p.emptyEvents.Add(1)
		return 0, ErrPoolEmpty
	}
	sh := &p.shared[i]
	sh.free, sh.cookie, sh.addr, sh.size = free, cookie, addr, uint64(size)
	atomic.StoreInt32(&sh.refcnt, 1)
	return ExtBuf(uint32(p.id)<<poolShift | i), nil
}

var errExtReleased = errors.New("mbuf: external buffer is released")

// record returns e's record, or an error for a handle that names none.
func (e ExtBuf) record() (*extShared, error) {
	p := pools[e>>poolShift]
	i := uint32(e) & indexMask
	if p == nil || int(i) >= len(p.shared) {
		return nil, fmt.Errorf("mbuf: %#x is not an external buffer", uint32(e))
	}
	sh := &p.shared[i]
	if atomic.LoadInt32(&sh.refcnt) <= 0 {
		return nil, errExtReleased
	}
	return sh, nil
}

// Release drops the creator's reference to e. The release function runs now
// if no mbuf is attached, or when the last attached one is freed.
func (e ExtBuf) Release() { e.put() }

// put drops one reference to e and gives the memory back with the last.
func (e ExtBuf) put() {
	p := pools[e>>poolShift]
	i := uint32(e) & indexMask
	sh := &p.shared[i]
	switch n := atomic.AddInt32(&sh.refcnt, -1); {
	case n == 0:
		fn, _ := extFreeFunc(sh.free)
		cookie := sh.cookie
		sh.free, sh.cookie, sh.addr, sh.size = 0, 0, 0, 0
		if fn != nil {
			fn(cookie)
		}
		enqueueAll(p.sharedFree, []uint32{i}, p.name)
	case n < 0:
		p.doubleFrees.Add(1)
		if debug {
			panic(fmt.Sprintf("engine: external buffer %#x released twice", uint32(e)))
		}
	}
}

// AttachExternal returns an mbuf of pool p whose data is the n bytes at off
// in e's memory, holding a reference to e until it is freed. The caller holds
// e (made it and has not released it yet). Clones of the mbuf share its
// window as clones do. A window is at most 65535 bytes, a segment's limit.
func (cs *Caches) AttachExternal(p *Pool, e ExtBuf, off, n int) (Mbuf, error) {
	sh, err := e.record()
	if err != nil {
		return NoMbuf, err
	}
	if off < 0 || n < 0 || n > 0xffff || uint64(off)+uint64(n) > sh.size {
		return NoMbuf, fmt.Errorf("mbuf: window of %d bytes at %d of a %d-byte external buffer (at most 65535)", n, off, sh.size)
	}
	m, err := cs.Alloc(p)
	if err != nil {
		return NoMbuf, err
	}
	atomic.AddInt32(&sh.refcnt, 1)
	p.ext[m.index()] = extSeg{addr: sh.addr + uintptr(off), size: uint32(n), shared: e}
	md := m.meta()
	md.flags |= flagExternal
	md.dataOff = 0
	md.dataLen = uint16(n)
	md.pktLen = uint32(n)
	return m, nil
}

package engine

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

// extFreed counts, per cookie, the release calls of test external buffers.
var extFreed struct {
	sync.Mutex
	n map[uint64]int
}

var testExtFree = RegisterExtFree(func(cookie uint64) {
	extFreed.Lock()
	defer extFreed.Unlock()
	if extFreed.n == nil {
		extFreed.n = map[uint64]int{}
	}
	extFreed.n[cookie]++
})

func freedCount(cookie uint64) int {
	extFreed.Lock()
	defer extFreed.Unlock()
	return extFreed.n[cookie]
}

// addrOf is the address of b's first byte, for attaching b as external
// memory; the caller keeps b reachable until its release runs.
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func TestExternalBufferReleasedOnLastReference(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	page := bytes.Repeat([]byte("filepage"), 512)
	defer runtime.KeepAlive(page)
	const cookie = 101
	e, err := p.NewExtBuf(addrOf(page), len(page), testExtFree, cookie)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cs.AttachExternal(p, e, 0, len(page))
	if err != nil {
		t.Fatal(err)
	}
	e.Release() // the mbuf holds the memory now
	if !bytes.Equal(m.Data(), page) || m.Writable() {
		t.Fatal("external mbuf does not show the page, or claims to be writable")
	}
	// Two segments cut from the page, as sendfile would send it.
	s1, _ := cs.Clone(m, p)
	s2, _ := cs.Clone(m, p)
	s1.Trim(2048)
	s2.Adj(2048)
	if !bytes.Equal(s2.Data(), page[2048:]) || !bytes.Equal(s1.Data(), page[:2048]) {
		t.Fatal("segments of an external buffer show the wrong bytes")
	}
	cs.Free(m)
	cs.Free(s1)
	if freedCount(cookie) != 0 {
		t.Fatal("released while a clone still refers to the page")
	}
	cs.Free(s2)
	if n := freedCount(cookie); n != 1 {
		t.Fatalf("release ran %d times, want 1", n)
	}
	// The header mbuf went back to the pool and is an ordinary mbuf again.
	cs.Flush()
	if p.Available() != 16 {
		t.Fatalf("available %d", p.Available())
	}
	n, _ := cs.Alloc(p)
	if n.Tailroom() != DataRoom || !n.Writable() {
		t.Fatal("a recycled external mbuf is not reset")
	}
	cs.Free(n)
}

func TestSeveralMbufsAttachTheSameExternalMemory(t *testing.T) {
	p := newTestPool(t, 16, 4)
	q := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i * 3)
	}
	defer runtime.KeepAlive(page)
	const cookie = 202
	e, err := p.NewExtBuf(addrOf(page), len(page), testExtFree, cookie)
	if err != nil {
		t.Fatal(err)
	}
	// Three segments of one page, one of them from another pool, each
	// a direct mbuf of its own: no clone headers.
	var segs []Mbuf
	for i, pool := range []*Pool{p, q, p} {
		m, err := cs.AttachExternal(pool, e, i*1448, min(1448, len(page)-i*1448))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, m)
	}
	e.Release()
	for i, m := range segs {
		if !bytes.Equal(m.Data(), page[i*1448:min(len(page), (i+1)*1448)]) {
			t.Fatalf("segment %d shows the wrong bytes", i)
		}
		if _, err := m.Append(1); !errors.Is(err, ErrShared) {
			t.Fatalf("append to external memory: %v", err)
		}
	}
	// Chained into one packet, freed as one.
	segs[0].Chain(segs[1])
	segs[0].Chain(segs[2])
	out := make([]byte, len(page))
	if n := segs[0].CopyOut(out, 0); n != len(page) || !bytes.Equal(out, page) {
		t.Fatalf("the chained page reads back %d bytes, wrong", n)
	}
	cs.Free(segs[0])
	if n := freedCount(cookie); n != 1 {
		t.Fatalf("release ran %d times, want 1", n)
	}
	cs.Flush()
	if p.Available() != 16 || q.Available() != 16 {
		t.Fatalf("available %d and %d", p.Available(), q.Available())
	}
}

func TestExternalMemoryOutOfBoundsIsRefused(t *testing.T) {
	p := newTestPool(t, 16, 4)
	var cs Caches
	defer cs.Flush()
	page := make([]byte, 70000)
	defer runtime.KeepAlive(page)
	const cookie = 303
	e, err := p.NewExtBuf(addrOf(page), len(page), testExtFree, cookie)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int }{{-1, 10}, {0, -1}, {0, 65536}, {69990, 11}, {70001, 0}} {
		if m, err := cs.AttachExternal(p, e, c.off, c.n); err == nil {
			cs.Free(m)
			t.Errorf("attached %d bytes at %d of a %d-byte buffer", c.n, c.off, len(page))
		}
	}
	if m, err := cs.AttachExternal(p, e, 69990, 10); err != nil {
		t.Fatal(err)
	} else {
		cs.Free(m)
	}
	if freedCount(cookie) != 0 {
		t.Fatal("released while its creator still holds it")
	}
	e.Release()
	if freedCount(cookie) != 1 {
		t.Fatal("not released when its creator let go")
	}
	if _, err := cs.AttachExternal(p, e, 0, 10); err == nil {
		t.Fatal("attached a released external buffer")
	}
	if _, err := p.NewExtBuf(0, 10, testExtFree, 1); err == nil {
		t.Fatal("made an external buffer at address 0")
	}
	if _, err := p.NewExtBuf(addrOf(page), 10, ExtFreeID(60000), 1); err == nil {
		t.Fatal("made an external buffer with an unregistered release function")
	}
	cs.Flush()
	if p.Available() != 16 {
		t.Fatalf("available %d", p.Available())
	}
}

func TestAPoolWithLiveExternalBuffersDoesNotClose(t *testing.T) {
	p, err := NewPool(t.Name(), 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 100)
	defer runtime.KeepAlive(page)
	e, err := p.NewExtBuf(addrOf(page), len(page), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err == nil {
		t.Fatal("closed a pool whose external buffer is alive")
	}
	e.Release()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// hasPointers reports whether values of type t hold anything the garbage
// collector must scan.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Slice, reflect.String,
		reflect.Func, reflect.Chan, reflect.Interface:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

func TestExternalBufferRecordsHoldNoPointers(t *testing.T) {
	p := newTestPool(t, 8, 2)
	if et := reflect.TypeOf(p.ext).Elem(); hasPointers(et) {
		t.Fatalf("the per-mbuf external record %v holds pointers the collector scans", et)
	}
	if st := reflect.TypeOf(extShared{}); hasPointers(st) {
		t.Fatalf("the shared info %v holds pointers", st)
	}
	if hasPointers(reflect.TypeOf(meta{})) || unsafe.Sizeof(meta{}) != 64 {
		t.Fatalf("meta is %d bytes or holds pointers", unsafe.Sizeof(meta{}))
	}
}

func TestAttachingExternalMemoryAllocatesNothing(t *testing.T) {
	p := newTestPool(t, 64, 8)
	var cs Caches
	defer cs.Flush()
	page := make([]byte, 4096)
	defer runtime.KeepAlive(page)
	allocs := testing.AllocsPerRun(200, func() {
		e, err := p.NewExtBuf(addrOf(page), len(page), testExtFree, 404)
		if err != nil {
			t.Fatal(err)
		}
		m, err := cs.AttachExternal(p, e, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := cs.Clone(m, p)
		e.Release()
		cs.Free(m)
		cs.Free(c)
	})
	if allocs != 0 {
		t.Fatalf("attach and free allocate %v objects, want 0", allocs)
	}
}

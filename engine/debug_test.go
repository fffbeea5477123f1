package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// catch runs f and returns what it panicked with, as a string.
func catch(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

//go:noinline
func freeInSomeDistantFunction(cs *Caches, m Mbuf) { cs.Free(m) }

func TestDebugBuildPanicsOnADoubleFreeNamingTheFirstFree(t *testing.T) {
	if !debug {
		t.Skip("needs -tags pollnetdebug")
	}
	p := newTestPool(t, 8, 2)
	var cs Caches
	defer cs.Flush()
	m, _ := cs.Alloc(p)
	freeInSomeDistantFunction(&cs, m)
	for name, f := range map[string]func(){
		"Free":        func() { cs.Free(m) },
		"FreeBulk":    func() { cs.FreeBulk([]Mbuf{m}) },
		"engine.Free": func() { Free(m) },
	} {
		msg := catch(f)
		if !strings.Contains(msg, m.String()+" freed twice; first freed at") || !strings.Contains(msg, "freeInSomeDistantFunction") {
			t.Errorf("%s of a free mbuf panicked with %q, want the first free's stack", name, msg)
		}
	}
	if n := p.DoubleFrees(); n != 3 {
		t.Fatalf("DoubleFrees = %d, want 3", n)
	}
}

func TestDebugBuildPoisonsFreedData(t *testing.T) {
	if !debug {
		t.Skip("needs -tags pollnetdebug")
	}
	p := newTestPool(t, 8, 2)
	var cs Caches
	defer cs.Flush()
	for _, bulk := range []bool{false, true} {
		m, _ := cs.Alloc(p)
		d, _ := m.Append(100)
		copy(d, bytes.Repeat([]byte{0xaa}, 100))
		c, _ := cs.Clone(m, p)
		cs.Free(m)
		if d[0] != 0xaa {
			t.Fatal("freeing the original poisoned bytes a clone still reads")
		}
		if bulk {
			cs.FreeBulk([]Mbuf{c})
		} else {
			cs.Free(c)
		}
		if !bytes.Equal(d, bytes.Repeat([]byte{poisonByte}, 100)) {
			t.Fatalf("bulk %v: freed bytes read % x, want the poison", bulk, d[:8])
		}
	}
	// The bulk fast path poisons too.
	m, _ := cs.Alloc(p)
	d, _ := m.Append(10)
	cs.FreeBulk([]Mbuf{m})
	if d[0] != poisonByte {
		t.Fatal("the bulk fast path left freed bytes unpoisoned")
	}
}

func TestDebugBuildCatchesAUseAfterFree(t *testing.T) {
	if !debug {
		t.Skip("needs -tags pollnetdebug")
	}
	p := newTestPool(t, 8, 2)
	var cs Caches
	defer cs.Flush()
	m, _ := cs.Alloc(p)
	m.Append(10)
	freeInSomeDistantFunction(&cs, m)
	for name, f := range map[string]func(){
		"Data":    func() { _ = m.Data() },
		"Append":  func() { m.Append(1) },
		"Prepend": func() { m.Prepend(1) },
		"Clone":   func() { cs.Clone(m, p) },
		"Ref":     func() { Ref(m) },
	} {
		msg := catch(f)
		if !strings.Contains(msg, m.String()+" used after free; freed at") || !strings.Contains(msg, "freeInSomeDistantFunction") {
			t.Errorf("%s of a free mbuf panicked with %q", name, msg)
		}
	}
}

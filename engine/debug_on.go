//go:build pollnetdebug

package engine

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
)

// debug is true in the debug build: see debug.go.
const debug = true

// freeDepth is how many frames of a free's stack are kept.
const freeDepth = 16

// debugInfo is the debug build's side table: for each mbuf of the pool, the
// stack of its last free. A fixed array per mbuf, so recording a free
// allocates nothing and the allocation tests hold in this build too.
type debugInfo struct {
	freedAt [][freeDepth]uintptr
}

var poisonBuf = func() (b [BufSize]byte) {
	for i := range b {
		b[i] = poisonByte
	}
	return
}()

func (p *Pool) debugInit() {
	p.dbg.freedAt = make([][freeDepth]uintptr, p.size)
}

// debugFreed records who freed m and poisons its own buffer. A clone's own
// buffer was never used; its direct's is poisoned when the direct goes.
func (p *Pool) debugFreed(m Mbuf) {
	i := m.index()
	pcs := &p.dbg.freedAt[i]
	*pcs = [freeDepth]uintptr{}
	runtime.Callers(2, pcs[:])
	off := int(i) * BufSize
	copy(p.arena[off:off+BufSize], poisonBuf[:])
}

// freedAt formats the recorded stack of m's last free.
func (p *Pool) freedAt(m Mbuf) string {
	pcs := p.dbg.freedAt[m.index()][:]
	for len(pcs) > 0 && pcs[len(pcs)-1] == 0 {
		pcs = pcs[:len(pcs)-1]
	}
	if len(pcs) == 0 {
		return "\n\t(never freed by this build: a free mbuf from the pool's start)"
	}
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "\n\t%s\n\t\t%s:%d", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return b.String()
}

func (p *Pool) debugDoubleFree(m Mbuf) {
	panic(fmt.Sprintf("engine: %v freed twice; first freed at%s", m, p.freedAt(m)))
}

// checkLive panics if m is free.
func (p *Pool) checkLive(m Mbuf, md *meta) {
	if atomic.LoadInt32(&md.refcnt) <= 0 {
		panic(fmt.Sprintf("engine: %v used after free; freed at%s", m, p.freedAt(m)))
	}
}

//go:build !pollnetdebug

package engine

// debug is false outside the debug build: see debug.go.
const debug = false

type debugInfo struct{}

func (p *Pool) debugInit()                 {}
func (p *Pool) debugFreed(Mbuf)            {}
func (p *Pool) debugDoubleFree(Mbuf)       {}
func (p *Pool) checkLive(m Mbuf, md *meta) {}

package flow

import (
	"errors"
	"time"
)

// Clock is the time the scheduler's periods run on; tests give a fake one.
type Clock interface {
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the system's clock.
type RealClock struct{}

// After is time.After.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var errNoCore = errors.New("flow: no free core for another instance")

// schedule runs the scheduler every period until Stop, as nff-go's
// scheduler loop does every schedTime.
func (g *Graph) schedule() {
	defer close(g.schedDone)
	for {
		select {
		case <-g.schedStop:
			return
		case <-g.cfg.Clock.After(g.cfg.Period):
			g.tick()
		}
	}
}

// tick looks once at every cloneable stage's input ring. A fill above
// CloneAbove for ClonePeriods periods in a row starts a clone (if MaxClones
// and the free cores allow); a fill under RetireBelow for RetirePeriods in a
// row retires the newest clone. Anything between resets both runs, so a
// stage does not flap around one mark.
func (g *Graph) tick() {
	for _, st := range g.stages {
		if !st.cloneable {
			continue
		}
		st.reap()
		fill := st.in.Len()
		switch {
		case fill > g.cfg.CloneAbove:
			st.high++
			st.low = 0
		case fill < g.cfg.RetireBelow:
			st.low++
			st.high = 0
		default:
			st.high, st.low = 0, 0
		}
		clones := st.runningClones()
		if st.high >= g.cfg.ClonePeriods && clones < g.cfg.MaxClones {
			if _, err := st.startInstance(true); err == nil {
				st.clonesStarted.Add(1)
			}
			st.high = 0
		}
		if st.low >= g.cfg.RetirePeriods && clones > 0 {
			st.retireNewest()
			st.low = 0
		}
	}
	g.ticks.Add(1)
}

// runningClones counts the clones that are neither retiring nor gone.
func (st *stage) runningClones() int {
	n := 0
	for _, in := range st.instances() {
		if in.clone && in.state.Load() == stateRun {
			n++
		}
	}
	return n
}

// retireNewest asks the newest running clone to hand on what it holds and
// exit; the scheduler does not wait for it (a blocked output would block
// the scheduler too), reap gives its core back once it has gone.
func (st *stage) retireNewest() {
	insts := st.instances()
	for i := len(insts) - 1; i > 0; i-- {
		if in := insts[i]; in.clone && in.state.CompareAndSwap(stateRun, stateRetire) {
			st.clonesRetired.Add(1)
			return
		}
	}
}

// reap gives back the cores of retired clones that have exited.
func (st *stage) reap() {
	for _, in := range st.instances() {
		if in.state.Load() != stateRetire || !in.exited() {
			continue
		}
		if in.w != nil {
			in.w.Stop()
		}
		st.g.mu.Lock()
		if in.core != noCore {
			st.g.freeCores = append(st.g.freeCores, in.core)
			in.core = noCore
		}
		st.g.mu.Unlock()
	}
}

package flow

// Stats are a graph's counters.
type Stats struct {
	// Ticks is the number of periods the scheduler has looked at the rings.
	Ticks uint64
	// Flushed is the number of packets Stop freed because they were still
	// in a ring or held by a stage when the drain timed out.
	Flushed uint64
	Stages  []StageStats
}

// StageStats are one stage's counters, summed over its instances, and each
// instance's own.
type StageStats struct {
	Name string // kind and number: "handler1"
	Kind Kind

	// In is the number of packets the stage took: from its input ring, or
	// for a source, received from the port or made by the generator.
	In uint64
	// Out is the number of packets it handed on: into its output rings,
	// or for a sender, to the port.
	Out uint64
	// Dropped is the number of packets it freed: refused by a handler,
	// sent out of range by a splitter, all of a stopper's.
	Dropped uint64

	// InputLen is the fill of the stage's input ring now (0 for a source).
	InputLen int
	// Clones is the number of clones running now.
	Clones int
	// ClonesStarted is the number of clones the scheduler started.
	ClonesStarted uint64
	// ClonesRetired is the number of clones the scheduler retired.
	ClonesRetired uint64

	// Instances lists every instance ever started, the original first.
	Instances []InstanceStats
}

// InstanceStats are one instance's counters.
type InstanceStats struct {
	Clone   bool
	Running bool // not retired, halted or gone
	Worker  int  // the engine.Worker's ID, or -1 on a plain goroutine
	In      uint64
	Out     uint64
	Dropped uint64
	// Bursts is the number of bursts that took packets.
	Bursts uint64
}

// Stats reads the counters; any goroutine may call it.
func (g *Graph) Stats() Stats {
	s := Stats{Ticks: g.ticks.Load(), Flushed: g.flushed.Load()}
	for _, st := range g.stages {
		ss := StageStats{
			Name:          st.name,
			Kind:          st.kind,
			ClonesStarted: st.clonesStarted.Load(),
			ClonesRetired: st.clonesRetired.Load(),
		}
		if g.started && st.in != nil {
			ss.InputLen = st.in.Len()
		}
		for _, in := range st.instances() {
			is := InstanceStats{
				Clone:   in.clone,
				Running: in.state.Load() == stateRun && !in.exited(),
				Worker:  -1,
				In:      in.in.Load(),
				Out:     in.out.Load(),
				Dropped: in.dropped.Load(),
				Bursts:  in.bursts.Load(),
			}
			if in.w != nil {
				is.Worker = in.w.ID()
			}
			if in.clone && is.Running {
				ss.Clones++
			}
			ss.In += is.In
			ss.Out += is.Out
			ss.Dropped += is.Dropped
			ss.Instances = append(ss.Instances, is)
		}
		s.Stages = append(s.Stages, ss)
	}
	return s
}

// Stage returns the counters of the stage called name, and whether there is
// one.
func (s Stats) Stage(name string) (StageStats, bool) {
	for _, st := range s.Stages {
		if st.Name == name {
			return st, true
		}
	}
	return StageStats{}, false
}

package stack

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/neigh"
)

// ARPConfig are the neighbour table's knobs, Linux's net.ipv4.neigh.*
// settings; zero fields take Linux's defaults.
type ARPConfig = neigh.Config

// neighLink is the stack as the neighbour table's Link, until the stack
// has shards: frames go out through linkOutput, buffers come from the
// stack's caches. The table calls it under the stack lock, which every
// caller of the table holds.
type neighLink Stack

func (s *Stack) neighLink() neigh.Link { return (*neighLink)(s) }

func (l *neighLink) Output(dev *link.Device, dst eth.MAC, typ uint16, m engine.Mbuf) {
	s := (*Stack)(l)
	s.linkOutput(s.devs[dev.ID], dst, typ, m)
}

func (l *neighLink) Alloc() (engine.Mbuf, error) { return l.cs.Alloc(l.pool) }

func (l *neighLink) Free(m engine.Mbuf) { l.cs.Free(m) }

// copyNeighStats puts the table's counters in the stack's.
func copyNeighStats(st *Stats, n neigh.Stats) {
	st.ARPInRequests, st.ARPInReplies, st.ARPOutRequests, st.ARPOutReplies = n.InRequests, n.InReplies, n.OutRequests, n.OutReplies
	st.ARPInErrors = n.InErrors
	st.ARPEntries, st.ARPAllocs, st.ARPResolveFailed, st.ARPQueueDrops = n.Entries, n.Allocs, n.ResolveFailed, n.QueueDrops
	st.ARPTableFulls, st.ARPForcedGCRuns, st.ARPForcedGCEvictions = n.TableFulls, n.ForcedGCRuns, n.ForcedGCEvictions
	st.ARPPeriodicGCRuns, st.ARPPeriodicGCEvictions = n.PeriodicGCRuns, n.PeriodicGCEvictions
	st.NoMbuf += n.NoMbuf
}

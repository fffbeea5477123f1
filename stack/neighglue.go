package stack

import (
	"github.com/pollnet/pollnet/stack/network/neigh"
)

// ARPConfig are the neighbour table's knobs, Linux's net.ipv4.neigh.*
// settings; zero fields take Linux's defaults.
type ARPConfig = neigh.Config

// copyNeighStats puts the table's counters in the stack's.
func copyNeighStats(st *Stats, n neigh.Stats) {
	st.ARPInRequests, st.ARPInReplies, st.ARPOutRequests, st.ARPOutReplies = n.InRequests, n.InReplies, n.OutRequests, n.OutReplies
	st.ARPInErrors = n.InErrors
	st.ARPEntries, st.ARPAllocs, st.ARPResolveFailed, st.ARPQueueDrops = n.Entries, n.Allocs, n.ResolveFailed, n.QueueDrops
	st.ARPTableFulls, st.ARPForcedGCRuns, st.ARPForcedGCEvictions = n.TableFulls, n.ForcedGCRuns, n.ForcedGCEvictions
	st.ARPPeriodicGCRuns, st.ARPPeriodicGCEvictions = n.PeriodicGCRuns, n.PeriodicGCEvictions
	st.NoMbuf += n.NoMbuf
}

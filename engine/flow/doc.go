// Package flow builds packet-processing graphs in the manner of nff-go's flow
// package: stages joined by rings, each stage running on its own worker in
// bursts of engine.Burst, and a scheduler that adds a clone of a busy stage
// on another worker and retires it when the load falls.
//
// A Flow is an edge of the graph: a stream of mbufs that one stage produces
// and exactly one stage consumes. Stages that keep their input flow alive
// (Handler, Separator) replace its ring with their own output, so the caller
// goes on using the same Flow, as in nff-go.
//
// Our names beside nff-go's:
//
//	flow.Graph            the global state behind flow.SystemInit
//	Graph.Start / Stop    flow.SystemStart / SystemStop
//	Graph.Receiver        flow.SetReceiver: bursts from a port's receive queue
//	Graph.Generator       flow.SetGenerator (SetFastGenerator): a function fills fresh mbufs
//	Graph.Handler         flow.SetHandlerDrop (and SetHandler, whose function keeps all): in place, keep or drop
//	Graph.Separator       flow.SetSeparator: true stays on the flow, false goes to the new one
//	Graph.Splitter        flow.SetSplitter: a function picks one of n outputs
//	Graph.Partitioner     flow.SetPartitioner: fixed counts in turn (nff-go has two outputs, we have n)
//	Graph.Merger          flow.SetMerger: producers of n flows write one ring; no stage of its own
//	Graph.Sender          flow.SetSender: bursts to a port's transmit queue
//	Graph.Stopper         flow.SetStopper: frees everything
//	Config.Period         the scheduler's schedTime
//	Config.CloneAbove     maxPacketsToClone: input fill that asks for a clone
//	Config.MaxClones      bounded in nff-go by the free cores alone
//
// Differences, on purpose: a full output ring holds its stage back
// (backpressure) instead of dropping, so no packet is lost inside a graph;
// nff-go retires a clone from its measured speed and empty polls, we from
// the input ring's fill staying under Config.RetireBelow for
// Config.RetirePeriods; receivers are not cloned (nff-go clones them by
// rewriting the port's RSS redirection table).
//
// Order. Without clones a flow keeps its order end to end. A cloned stage's
// instances take bursts from one ring and finish them at their own pace, so
// packets of one flow may leave a cloned stage reordered, exactly as in
// nff-go. A stage's function must therefore also be safe to run on several
// goroutines at once when Config.MaxClones is above zero.
//
// Handler, Separator and Splitter stages are cloneable; sources, senders,
// partitioners (whose count is state) and stoppers are not. The rings are
// chosen at Start: SPSC where one instance writes and one reads, MPMC where
// a merge or a clone puts several on one side.
package flow

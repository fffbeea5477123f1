package bench

import (
	"time"

	"github.com/pollnet/pollnet/bench/pktgen"
	"github.com/pollnet/pollnet/engine"
)

// A measured window of the wire pipeline is the difference between two
// snapshots of every counter the run reads, one taken when the warm-up (or a
// trial's settling time) ends and one when the window ends. Nothing counted
// before the first snapshot reaches a result: counters, CPU times, latencies
// and drops all cover the window only.
//
// Each counter is read where it may be read without a race: the generator
// and the sink's counters by the generator's own goroutine (a genMark, taken
// on request between two of its rounds), port counters and thread CPU
// clocks by anyone. The two halves of a snapshot are microseconds apart.

// genMark is what the generator and sink worker hands over at the edge of a
// window: its clock, its counters, and for the window's end the latencies the
// sink recorded since its start.
type genMark struct {
	At         int64  // Nanotime when the mark was taken
	Seq        uint64 // the number of frames generated so far
	AllocFails uint64 // the number of bursts not sent because the generator's pool was empty
	Sink       pktgen.SinkStats
	// Latency holds, in an end mark, the one-way latencies the sink
	// recorded since the start mark (which empties the histogram).
	Latency *pktgen.Histogram
}

// wireSnap is one snapshot of the pipeline's counters.
type wireSnap struct {
	gen genMark
	// Port counters: A is the device under test's receive port, S the
	// sink's; G and B are the transmit sides of the generator and of the
	// device.
	aRx, sRx, gTx, bTx engine.QueueStats
	irq                time.Duration // A's interrupt time (engine.RxInterrupt.HandlerTime)
	fwd                engine.PollStats
	softnet            engine.SoftnetStats
	fwdCPU             time.Duration // the device under test's thread (poll loop or softirq)
	procCPU            time.Duration // the whole process
}

// window is what one measured window saw.
type window struct {
	Mode Mode
	Rate float64       // the offered rate asked for; 0: as fast as the generator can
	Wall time.Duration // between the generator's two marks

	Offered   uint64 // the number of frames the generator sent
	Received  uint64 // the number of frames the sink received
	Forwarded uint64 // the number of frames the device under test received
	// Lost is the number of frames dropped anywhere on the path: receive
	// rings full or no buffer at the device or at the sink, frames the
	// sending ports refused, and frames the forwarder could not transmit.
	Lost uint64

	// DUTCPU is the device under test's CPU time: its thread's, plus in
	// NAPI mode the hard interrupt work done on the sender's thread.
	DUTCPU     time.Duration
	ThreadCPU  time.Duration // the device under test's thread alone
	IRQTime    time.Duration // the interrupt work (NAPI mode)
	ProcessCPU time.Duration
	Busy       float64 // dut_busy, 0..1 (see dutBusy)
	GOMAXPROCS int

	Fwd     engine.PollStats    // PMD mode
	Softnet engine.SoftnetStats // NAPI mode
	Sink    pktgen.SinkStats
	Latency pktgen.Histogram
	aRx     engine.QueueStats // the device's receive port
	sRx     engine.QueueStats // the sink's receive port
	noMbuf  uint64            // generator bursts not sent for want of buffers
}

// sub is the window from snapshot a to snapshot b (b taken later).
func (b *wireSnap) sub(a *wireSnap, mode Mode) window {
	w := window{
		Mode:       mode,
		Wall:       time.Duration(b.gen.At - a.gen.At),
		Offered:    b.gen.Seq - a.gen.Seq,
		Fwd:        subPoll(b.fwd, a.fwd),
		Softnet:    subSoftnet(b.softnet, a.softnet),
		Sink:       subSink(b.gen.Sink, a.gen.Sink),
		aRx:        subQueue(b.aRx, a.aRx),
		sRx:        subQueue(b.sRx, a.sRx),
		ThreadCPU:  b.fwdCPU - a.fwdCPU,
		ProcessCPU: b.procCPU - a.procCPU,
		noMbuf:     b.gen.AllocFails - a.gen.AllocFails,
	}
	if b.gen.Latency != nil {
		w.Latency = *b.gen.Latency
	}
	w.Received = w.Sink.Received
	w.Forwarded = w.aRx.Packets
	gTx, bTx := subQueue(b.gTx, a.gTx), subQueue(b.bTx, a.bTx)
	w.Lost = w.aRx.Dropped() + w.sRx.Dropped() + gTx.Dropped() + bTx.Dropped() + w.Fwd.TxDropped
	w.DUTCPU = w.ThreadCPU
	if mode == ModeNAPI {
		w.IRQTime = b.irq - a.irq
		w.DUTCPU += w.IRQTime
	}
	w.Busy = dutBusy(mode, w.Fwd, w.DUTCPU, w.Wall)
	return w
}

// dutBusy is how busy the device under test was over a window, 0..1. In PMD
// mode it is the share of its polls that found frames: a poller is always on
// its core, so its CPU time says nothing, but an empty poll is time it had
// to spare. In NAPI mode it is the softirq's CPU time plus the hard interrupt
// work, over the window's wall time: a softirq sleeps when it has nothing to
// do. (The interrupt work runs on another thread at the same time as the
// softirq, so the sum can pass one core; it is capped at 1.)
func dutBusy(mode Mode, fwd engine.PollStats, dutCPU, wall time.Duration) float64 {
	if mode == ModePMD {
		if fwd.Polls == 0 {
			return 0
		}
		return float64(fwd.Polls-fwd.EmptyPolls) / float64(fwd.Polls)
	}
	if wall <= 0 {
		return 0
	}
	return min(1, max(0, dutCPU.Seconds()/wall.Seconds()))
}

// Figures of a window.

// ReceivedRate is the sink's packets per second.
func (w *window) ReceivedRate() float64 { return perSecond(w.Received, w.Wall) }

// OfferedRate is the generator's packets per second.
func (w *window) OfferedRate() float64 { return perSecond(w.Offered, w.Wall) }

// LossRatio is the share of offered frames lost on the path.
func (w *window) LossRatio() float64 {
	if w.Offered == 0 {
		return 0
	}
	return float64(w.Lost) / float64(w.Offered)
}

// CPUPerPacket is the device under test's CPU time per frame it received,
// in nanoseconds; 0 when it received none.
func (w *window) CPUPerPacket() float64 {
	if w.Forwarded == 0 {
		return 0
	}
	return float64(w.DUTCPU.Nanoseconds()) / float64(w.Forwarded)
}

// CPUShare is the device under test's CPU time over the wall time: the
// cores it burnt.
func (w *window) CPUShare() float64 {
	if w.Wall <= 0 {
		return 0
	}
	return w.DUTCPU.Seconds() / w.Wall.Seconds()
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// counters are the window's counters under the names result files use, all
// over the window alone:
//
//   - generator_frames: the number of frames the generator sent;
//     generator_no_mbuf the number of its bursts not sent for want of buffers
//   - dut_received: the number of frames the device under test received
//   - rx_missed, rx_nombuf: the number of frames the device's receive port
//     dropped because its ring was full or it had no buffer;
//     sink_rx_missed, sink_rx_nombuf: the same at the sink's port
//   - lost: the number of frames dropped anywhere on the path (see window.Lost)
//   - interrupts: the number of receive interrupts the device's port raised
//   - sink_received, sink_lost, sink_duplicates, sink_reordered,
//     sink_malformed: the number of frames the sink received, found missing
//     from the sequence, saw twice, saw out of order, could not parse
//   - latency_samples: the number of one-way latencies recorded
//   - dut_thread_cpu_ns, interrupt_cpu_ns, dut_cpu_ns, process_cpu_ns: the
//     CPU nanoseconds of the device's thread, of the interrupt work, of
//     both, and of the whole process; window_wall_ns the window's length
//   - dut_rx_bytes, sink_received_bytes: the number of bytes received
//   - NAPI: processed, time_squeeze, softirq_rounds, napi_polls,
//     napi_completes, wakeups, parks (engine.SoftnetStats)
//   - PMD: fwd_polls, fwd_empty_polls, fwd_tx_dropped, fwd_full_bursts
//     (engine.PollStats)
func (w *window) counters() map[string]uint64 {
	c := map[string]uint64{
		"generator_frames":    w.Offered,
		"generator_no_mbuf":   w.noMbuf,
		"dut_received":        w.Forwarded,
		"rx_missed":           w.aRx.Drops[engine.DropRingFull],
		"rx_nombuf":           w.aRx.Drops[engine.DropNoMbuf],
		"sink_rx_missed":      w.sRx.Drops[engine.DropRingFull],
		"sink_rx_nombuf":      w.sRx.Drops[engine.DropNoMbuf],
		"lost":                w.Lost,
		"interrupts":          w.aRx.Interrupts,
		"sink_received":       w.Sink.Received,
		"sink_lost":           w.Sink.Lost,
		"sink_duplicates":     w.Sink.Duplicates,
		"sink_reordered":      w.Sink.Reordered,
		"sink_malformed":      w.Sink.Malformed,
		"latency_samples":     w.Latency.Count(),
		"dut_thread_cpu_ns":   uint64(w.ThreadCPU.Nanoseconds()),
		"interrupt_cpu_ns":    uint64(w.IRQTime.Nanoseconds()),
		"process_cpu_ns":      uint64(max(w.ProcessCPU, 0).Nanoseconds()),
		"window_wall_ns":      uint64(max(w.Wall, 0).Nanoseconds()),
		"dut_cpu_ns":          uint64(max(w.DUTCPU, 0).Nanoseconds()),
		"dut_rx_bytes":        w.aRx.Bytes,
		"sink_received_bytes": w.Sink.Bytes,
	}
	if w.Mode == ModeNAPI {
		c["processed"] = w.Softnet.Processed
		c["time_squeeze"] = w.Softnet.TimeSqueeze
		c["softirq_rounds"] = w.Softnet.Rounds
		c["napi_polls"] = w.Softnet.Polls
		c["napi_completes"] = w.Softnet.Completes
		c["wakeups"] = w.Softnet.Wakeups
		c["parks"] = w.Softnet.Parks
	} else {
		c["fwd_polls"] = w.Fwd.Polls
		c["fwd_empty_polls"] = w.Fwd.EmptyPolls
		c["fwd_tx_dropped"] = w.Fwd.TxDropped
		c["fwd_full_bursts"] = w.Fwd.BurstHist[engine.Burst]
	}
	return c
}

// Differences of the engine's counter structs, field by field by name; a
// test checks by reflection that every field is covered, so a counter added
// to one of them cannot silently read 0. A counter that went backwards (it
// cannot) gives 0.

func d(b, a uint64) uint64 {
	if b < a {
		return 0
	}
	return b - a
}

func subQueue(b, a engine.QueueStats) engine.QueueStats {
	s := engine.QueueStats{Packets: d(b.Packets, a.Packets), Bytes: d(b.Bytes, a.Bytes), Interrupts: d(b.Interrupts, a.Interrupts)}
	for i := range s.Drops {
		s.Drops[i] = d(b.Drops[i], a.Drops[i])
	}
	return s
}

func subPoll(b, a engine.PollStats) engine.PollStats {
	s := engine.PollStats{
		Rounds: d(b.Rounds, a.Rounds), Polls: d(b.Polls, a.Polls), EmptyPolls: d(b.EmptyPolls, a.EmptyPolls),
		Packets: d(b.Packets, a.Packets), Yields: d(b.Yields, a.Yields), Timers: d(b.Timers, a.Timers),
		TxPackets: d(b.TxPackets, a.TxPackets), TxDropped: d(b.TxDropped, a.TxDropped),
	}
	for i := range s.BurstHist {
		s.BurstHist[i] = d(b.BurstHist[i], a.BurstHist[i])
	}
	return s
}

func subSoftnet(b, a engine.SoftnetStats) engine.SoftnetStats {
	return engine.SoftnetStats{
		Processed: d(b.Processed, a.Processed), Dropped: d(b.Dropped, a.Dropped),
		TimeSqueeze: d(b.TimeSqueeze, a.TimeSqueeze), Rounds: d(b.Rounds, a.Rounds), Polls: d(b.Polls, a.Polls),
		Completes: d(b.Completes, a.Completes), Wakeups: d(b.Wakeups, a.Wakeups), Parks: d(b.Parks, a.Parks),
		Yields: d(b.Yields, a.Yields), Scheduled: d(b.Scheduled, a.Scheduled),
	}
}

// subSink is the sink's counters over a window. Lost is the growth of the
// sequence gap, which a late frame of the window before can shrink; it is
// clamped at 0 like the others.
func subSink(b, a pktgen.SinkStats) pktgen.SinkStats {
	return pktgen.SinkStats{
		Received: d(b.Received, a.Received), Bytes: d(b.Bytes, a.Bytes), Malformed: d(b.Malformed, a.Malformed),
		Unique: d(b.Unique, a.Unique), Duplicates: d(b.Duplicates, a.Duplicates), Reordered: d(b.Reordered, a.Reordered),
		TooLate: d(b.TooLate, a.TooLate), Lost: d(b.Lost, a.Lost), Highest: b.Highest,
	}
}

// addCounters sums the counters of several windows (the runs of one
// scenario); a result's counters are these sums.
func addCounters(ws []window) map[string]uint64 {
	sum := map[string]uint64{}
	for i := range ws {
		for k, v := range ws[i].counters() {
			sum[k] += v
		}
	}
	return sum
}

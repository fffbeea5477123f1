package bench

import (
	"io"
	"strconv"

	"github.com/pollnet/pollnet/engine"
	"github.com/valyala/bytebufferpool"
)

// statBuffers holds the encoded counters of `pollnet stat` between their
// rendering and their write: variable-size text reused every publish.
var statBuffers bytebufferpool.Pool

// WriteStats prints the counters of a running scenario: per-core softnet
// figures in NAPI mode, poll-loop figures in PMD mode, and per-queue port
// counters with the interrupts each queue raised.
func WriteStats(w io.Writer, l *Live) {
	var snap statSnapshot
	var tab textTable
	snap.take(l)
	b := statBuffers.Get()
	snap.render(b, &tab)
	w.Write(b.B)
	statBuffers.Put(b)
}

// statSnapshot is one reading of a Live's counters. Its slices are reused
// from reading to reading, so a publisher that keeps one allocates nothing
// once they have grown to the rig's size.
type statSnapshot struct {
	mode     Mode
	size     int
	softirqs []softirqReading
	workers  []workerReading
	queues   []queueReading
}

type softirqReading struct {
	core int
	st   engine.SoftnetStats
}

type workerReading struct {
	core int
	st   engine.PollStats
}

type queueReading struct {
	port   string
	queue  int
	rx, tx engine.QueueStats
}

// take reads every counter of l.
func (s *statSnapshot) take(l *Live) {
	s.mode, s.size = l.Mode, l.Size
	s.softirqs = s.softirqs[:0]
	for _, si := range l.Softirqs {
		s.softirqs = append(s.softirqs, softirqReading{si.Core(), si.Stats()})
	}
	s.workers = s.workers[:0]
	for _, wk := range l.Workers {
		s.workers = append(s.workers, workerReading{wk.Core(), wk.Stats()})
	}
	s.queues = s.queues[:0]
	for _, p := range l.Ports {
		info := p.Info()
		for q := 0; q < max(info.RxQueues, info.TxQueues); q++ {
			r := queueReading{port: info.Name, queue: q}
			if q < info.RxQueues {
				r.rx = p.RxStats(q)
			}
			if q < info.TxQueues {
				r.tx = p.TxStats(q)
			}
			s.queues = append(s.queues, r)
		}
	}
}

// render appends the snapshot as text to b, tab laying out its tables.
func (s *statSnapshot) render(b *bytebufferpool.ByteBuffer, tab *textTable) {
	b.B = append(b.B, "mode "...)
	b.B = append(b.B, s.mode...)
	b.B = append(b.B, ", "...)
	b.B = strconv.AppendInt(b.B, int64(s.size), 10)
	b.B = append(b.B, "-byte frames\n"...)
	if len(s.softirqs) > 0 {
		b.B = append(b.B, "softnet (per core, as /proc/net/softnet_stat):\n"...)
		tab.reset("core", "processed", "dropped", "time_squeeze", "rounds", "polls", "completes", "wakeups", "parks", "yields")
		for _, r := range s.softirqs {
			tab.int(r.core)
			tab.uints(r.st.Processed, r.st.Dropped, r.st.TimeSqueeze, r.st.Rounds, r.st.Polls, r.st.Completes,
				r.st.Wakeups, r.st.Parks, r.st.Yields)
		}
		tab.writeTo(b)
	}
	if len(s.workers) > 0 {
		b.B = append(b.B, "poll-mode workers:\n"...)
		tab.reset("core", "rounds", "polls", "empty", "packets", "avg burst", "full bursts", "tx", "tx dropped")
		for _, r := range s.workers {
			empty := 0.0
			if r.st.Polls > 0 {
				empty = 100 * float64(r.st.EmptyPolls) / float64(r.st.Polls)
			}
			tab.int(r.core)
			tab.uints(r.st.Rounds, r.st.Polls)
			tab.fixed(empty, 1, "%")
			tab.uints(r.st.Packets)
			tab.fixed(avgBurst(r.st), 1, "")
			tab.uints(r.st.BurstHist[engine.Burst], r.st.TxPackets, r.st.TxDropped)
		}
		tab.writeTo(b)
	}
	b.B = append(b.B, "queues:\n"...)
	tab.reset("port", "queue", "rx packets", "rx bytes", "rx_missed", "rx_nombuf", "interrupts", "tx packets", "tx bytes", "tx drops")
	for _, r := range s.queues {
		tab.str(r.port)
		tab.int(r.queue)
		tab.uints(r.rx.Packets, r.rx.Bytes, r.rx.Drops[engine.DropRingFull], r.rx.Drops[engine.DropNoMbuf], r.rx.Interrupts,
			r.tx.Packets, r.tx.Bytes, r.tx.Dropped())
	}
	tab.writeTo(b)
}

// textTable lays out rows of cells in right-aligned columns, two spaces
// before each, as text/tabwriter does with AlignRight, but into buffers it
// keeps, so a table rendered again allocates nothing.
type textTable struct {
	txt   []byte // every cell's text, one after another
	ends  []int  // the end of each cell in txt, row by row
	cols  int
	width []int
}

// reset starts a table whose first row is the header.
func (t *textTable) reset(header ...string) {
	t.txt, t.ends, t.cols = t.txt[:0], t.ends[:0], len(header)
	for _, h := range header {
		t.str(h)
	}
}

func (t *textTable) str(s string) {
	t.txt = append(t.txt, s...)
	t.ends = append(t.ends, len(t.txt))
}

func (t *textTable) int(v int) {
	t.txt = strconv.AppendInt(t.txt, int64(v), 10)
	t.ends = append(t.ends, len(t.txt))
}

func (t *textTable) uints(vs ...uint64) {
	for _, v := range vs {
		t.txt = strconv.AppendUint(t.txt, v, 10)
		t.ends = append(t.ends, len(t.txt))
	}
}

func (t *textTable) fixed(v float64, prec int, suffix string) {
	t.txt = strconv.AppendFloat(t.txt, v, 'f', prec, 64)
	t.txt = append(t.txt, suffix...)
	t.ends = append(t.ends, len(t.txt))
}

const tablePad = "                                                                "

// writeTo appends the table to b. A last row short of cells is padded with
// empty ones.
func (t *textTable) writeTo(b *bytebufferpool.ByteBuffer) {
	if t.cols == 0 {
		return
	}
	for len(t.ends)%t.cols != 0 {
		t.str("")
	}
	t.width = t.width[:0]
	for range t.cols {
		t.width = append(t.width, 0)
	}
	start := 0
	for i, end := range t.ends {
		t.width[i%t.cols] = max(t.width[i%t.cols], end-start)
		start = end
	}
	start = 0
	for i, end := range t.ends {
		for pad := t.width[i%t.cols] + 2 - (end - start); pad > 0; pad -= len(tablePad) {
			b.B = append(b.B, tablePad[:min(pad, len(tablePad))]...)
		}
		b.B = append(b.B, t.txt[start:end]...)
		if i%t.cols == t.cols-1 {
			b.B = append(b.B, '\n')
		}
		start = end
	}
}

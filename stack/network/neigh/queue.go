package neigh

import "github.com/pollnet/pollnet/engine"

// enqueue holds m until e's address is known, dropping the entry's oldest
// packets beyond its byte limit (unres_discards) and m itself when the
// stack's held memory is full. Called under mu.
func (t *Table) enqueue(e *entry, m engine.Mbuf) {
	segs := m.Segs()
	cost := segs * engine.BufSize
	drop := 0
	for drop < len(e.queue) && e.queueBytes+cost > t.queueLimit {
		old := e.queue[drop]
		e.queueBytes -= old.Segs() * engine.BufSize
		e.queueSegs -= old.Segs()
		t.held.Uncharge(old.Segs())
		t.link.Free(old)
		t.stats.QueueDrops++
		drop++
	}
	if drop > 0 {
		k := copy(e.queue, e.queue[drop:])
		clear(e.queue[k:])
		e.queue = e.queue[:k]
	}
	if !t.held.Charge(segs) {
		t.stats.QueueDrops++
		t.link.Free(m)
		return
	}
	e.queue = append(e.queue, m)
	e.queueBytes += cost
	e.queueSegs += segs
}

// dropQueue frees every packet waiting on e, gives back their charge, and
// returns how many there were. Called under mu.
func (t *Table) dropQueue(e *entry) int {
	k := len(e.queue)
	if k == 0 {
		return 0
	}
	t.held.Uncharge(e.queueSegs)
	for _, m := range e.queue {
		t.link.Free(m)
	}
	clear(e.queue)
	e.queue = e.queue[:0]
	e.queueBytes, e.queueSegs = 0, 0
	return k
}

// flushQueue sends the packets that waited for e's address, now known.
// Called under mu.
func (t *Table) flushQueue(e *entry, now int64) {
	q := e.queue
	t.held.Uncharge(e.queueSegs)
	e.queue, e.queueBytes, e.queueSegs = nil, 0, 0
	for _, m := range q {
		t.send(e, m, now)
	}
	if e.queue == nil {
		clear(q)
		e.queue = q[:0]
	}
}

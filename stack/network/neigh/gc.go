package neigh

import "github.com/pollnet/pollnet/stack/link"

// create makes an entry in state NONE, collecting first when the table is
// large (neigh_alloc). It returns nil, counted, when the table is full.
// Called under mu.
func (t *Table) create(dev *link.Device, ip [4]byte, now int64) *entry {
	if t.n >= t.cfg.GCThresh3 || t.n >= t.cfg.GCThresh2 && now > t.lastFlush+forcedGCInterval {
		if t.forcedGC(now) == 0 && t.n >= t.cfg.GCThresh3 {
			t.stats.TableFulls++
			return nil
		}
	}
	e := &entry{id: dev.ID, ip: ip, dev: dev, updated: now}
	e.used.Store(now)
	e.confirmed.Store(now - 2*int64(t.cfg.Reachable))
	e.timer.Init(func(now int64) { t.expire(e, now) })
	e.older = t.newest
	if t.newest != nil {
		t.newest.newer = e
	} else {
		t.oldest = e
	}
	t.newest = e
	t.insert(e)
	t.n++
	t.stats.Allocs++
	return e
}

// remove takes an entry out of the table, dropping what it holds. A reader
// still holding it finds it NONE. Called under mu.
func (t *Table) remove(e *entry) {
	t.wheel.Cancel(&e.timer)
	t.dropQueue(e)
	t.unlink(e)
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		t.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		t.newest = e.older
	}
	e.older, e.newer = nil, nil
	e.set(e.mac(), nudNone)
	t.n--
}

// forcedGC removes unreferenced entries that failed or were not updated
// for 5 s, oldest first, until the table is down to GCThresh2, like
// neigh_forced_gc. It returns how many went. Called under mu.
func (t *Table) forcedGC(now int64) int {
	t.stats.ForcedGCRuns++
	maxClean := t.n - t.cfg.GCThresh2
	shrunk := 0
	for e := t.oldest; e != nil && shrunk < maxClean; {
		next := e.newer
		if !e.referenced() && (e.state() == nudFailed || e.updated < now-forcedGCMinAge) {
			t.remove(e)
			shrunk++
		}
		e = next
	}
	t.stats.ForcedGCEvictions += uint64(shrunk)
	t.lastFlush = now
	return shrunk
}

// periodicGC runs every half base reachable time (neigh_periodic_work): it
// draws the reachable time again every 300 s and, once the table holds
// GCThresh1 entries, removes unreferenced ones that failed or were not used
// for GCStaleTime. Called under mu, from Advance.
func (t *Table) periodicGC(now int64) {
	t.stats.PeriodicGCRuns++
	if now-t.lastRand > rerandomInterval {
		t.reachable = t.randomReachable()
		t.lastRand = now
	}
	if t.n >= t.cfg.GCThresh1 {
		for e := t.oldest; e != nil; {
			next := e.newer
			if !e.referenced() {
				used, confirmed := e.used.Load(), e.confirmed.Load()
				if used < confirmed && confirmed <= now {
					used = confirmed
					e.used.Store(used)
				}
				if e.state() == nudFailed || now >= used+int64(t.cfg.GCStaleTime) {
					t.remove(e)
					t.stats.PeriodicGCEvictions++
				}
			}
			e = next
		}
	}
	t.arm(&t.gc, now, int64(t.cfg.Reachable)/2)
}

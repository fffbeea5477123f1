package neigh

// A stand-in for package stack/timer while it is being written: the same
// method set (Timer.Init, Armed, When; Wheel.Init, Arm, Cancel, Advance,
// Next, Len) over a binary heap. It goes when stack/timer lands, and the
// aliases in neigh.go point at timer.Timer and timer.Wheel instead.

type standinTimer struct {
	fire func(now int64)
	when int64
	slot int // index in the heap plus one; 0 when not armed
}

func (t *standinTimer) Init(fire func(now int64)) { t.fire = fire }
func (t *standinTimer) Armed() bool               { return t.slot != 0 }
func (t *standinTimer) When() int64               { return t.when }

type standinWheel struct{ ts []*standinTimer }

func (w *standinWheel) Init(now, tick int64) {}

func (w *standinWheel) Arm(t *standinTimer, when int64) {
	w.Cancel(t)
	t.when = when
	w.ts = append(w.ts, t)
	t.slot = len(w.ts)
	w.up(len(w.ts) - 1)
}

func (w *standinWheel) Cancel(t *standinTimer) {
	if t.slot == 0 {
		return
	}
	i, last := t.slot-1, len(w.ts)-1
	w.swap(i, last)
	w.ts[last] = nil
	w.ts = w.ts[:last]
	t.slot = 0
	if i < last {
		w.up(i)
		w.down(i)
	}
}

func (w *standinWheel) Advance(now int64) int {
	n := 0
	for len(w.ts) > 0 && w.ts[0].when <= now {
		t := w.ts[0]
		w.Cancel(t)
		t.fire(now)
		n++
	}
	return n
}

func (w *standinWheel) Next() (int64, bool) {
	if len(w.ts) == 0 {
		return 0, false
	}
	return w.ts[0].when, true
}

func (w *standinWheel) Len() int { return len(w.ts) }

func (w *standinWheel) swap(i, j int) {
	w.ts[i], w.ts[j] = w.ts[j], w.ts[i]
	w.ts[i].slot, w.ts[j].slot = i+1, j+1
}

func (w *standinWheel) up(i int) {
	for i > 0 && w.ts[(i-1)/2].when > w.ts[i].when {
		w.swap(i, (i-1)/2)
		i = (i - 1) / 2
	}
}

func (w *standinWheel) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(w.ts) {
			return
		}
		if c+1 < len(w.ts) && w.ts[c+1].when < w.ts[c].when {
			c++
		}
		if w.ts[i].when <= w.ts[c].when {
			return
		}
		w.swap(i, c)
		i = c
	}
}

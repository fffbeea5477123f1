package bench

// Repeats are independent runs, interleaved between the paths (DESIGN.md,
// "How we measure"): for each frame size, run 1 of every mode, then run 2 of
// every mode, and so on. A drift of the machine over the minutes of a suite
// (another tenant, thermal limits, a page cache filling) then falls on both
// modes alike instead of on whichever ran last, and each run builds its own
// ports and pools and warms up on its own, so the spread of the runs is the
// spread a user would see between invocations.

// slot is one run in the order runs happen.
type slot struct {
	Size int
	Mode Mode
	Run  int // 0..repeat-1
}

// slotKey names the scenario a run belongs to.
type slotKey struct {
	Mode Mode
	Size int
}

func (s slot) key() slotKey { return slotKey{s.Mode, s.Size} }

// runOrder lists the runs of every mode and size, repeat of each, with the
// modes interleaved: for each size, pmd napi pmd napi ... (in the order
// modes are given).
func runOrder(sizes []int, modes []Mode, repeat int) []slot {
	var out []slot
	for _, size := range sizes {
		for run := 0; run < repeat; run++ {
			for _, m := range modes {
				out = append(out, slot{Size: size, Mode: m, Run: run})
			}
		}
	}
	return out
}

package cc

// Reno is RFC 5681's congestion control with byte counting (Linux's
// tcp_reno_cong_avoid, tcp_reno_ssthresh): slow start below ssthresh,
// one MSS per window of acknowledged bytes above it, the window halved on
// loss.
type Reno struct {
	mss      int
	cwnd     int
	ssthresh int
	acc      int // bytes acknowledged toward the next MSS of growth (snd_cwnd_cnt)
	recovery bool
}

// Name is "reno".
func (r *Reno) Name() string { return "reno" }

// Init starts at the initial window.
func (r *Reno) Init(mss int) {
	mss = validMSS(mss)
	*r = Reno{mss: mss, cwnd: InitialWindow * mss, ssthresh: InfiniteSsthresh}
}

// OnAck grows the window: in congestion avoidance by RFC 5681 3.1's
// SMSS*SMSS/cwnd per ACK, counted in bytes (RFC 3465 2.1) so that a window
// of acknowledged bytes adds exactly one MSS whatever the ACKs' sizes.
func (r *Reno) OnAck(acked int, _, _ int64) {
	if acked <= 0 || r.recovery {
		return
	}
	if r.cwnd < r.ssthresh {
		r.cwnd, acked = slowStart(r.cwnd, r.ssthresh, r.mss, acked)
		if acked == 0 {
			return
		}
	}
	r.acc += acked
	if r.acc >= r.cwnd {
		n := r.acc / r.cwnd
		r.acc -= n * r.cwnd
		r.cwnd = min(r.cwnd+n*r.mss, MaxCwnd)
	}
}

// OnLoss sets ssthresh = max(FlightSize/2, 2*SMSS) (RFC 5681 3.1, eq. 4)
// and cwnd to it.
func (r *Reno) OnLoss(flight int) {
	if r.recovery {
		return
	}
	r.reduce(flight)
	r.cwnd = r.ssthresh
	r.recovery = true
}

// OnRecoveryExit deflates the window to ssthresh (RFC 6582 3.2 step 3).
func (r *Reno) OnRecoveryExit() {
	if r.recovery {
		r.cwnd = r.ssthresh
		r.recovery = false
	}
}

// OnTimeout sets ssthresh by eq. 4 and cwnd to the loss window, one MSS
// (RFC 5681 3.1).
func (r *Reno) OnTimeout(flight int) {
	r.reduce(flight)
	r.cwnd = r.mss
	r.recovery = false
}

func (r *Reno) reduce(flight int) {
	r.ssthresh = max(flight/2, 2*r.mss)
	r.acc = 0
}

// Cwnd is the congestion window in bytes.
func (r *Reno) Cwnd() int { return r.cwnd }

// Ssthresh is the slow-start threshold in bytes.
func (r *Reno) Ssthresh() int { return r.ssthresh }

// InSlowStart reports whether cwnd < ssthresh.
func (r *Reno) InSlowStart() bool { return r.cwnd < r.ssthresh }

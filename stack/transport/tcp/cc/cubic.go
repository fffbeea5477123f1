package cc

import "math"

// CUBIC's constants (RFC 9438 4.1 and 4.3).
const (
	cubicC     = 0.4                                   // C, in segments per second cubed
	cubicBeta  = 0.7                                   // beta_cubic, the window kept on loss
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta) // alpha_cubic: Reno's rate at beta_cubic
)

// Cubic is RFC 9438's CUBIC (Linux's tcp_cubic.c, without HyStart): after a
// congestion event the window follows a cubic function of the time since
// congestion avoidance began, concave up to the window where the loss came
// (W_max), convex beyond it, and never slower than Reno would grow. Window
// quantities of the RFC are in segments here, as there; cwnd itself is
// kept in bytes, in a float so that per-ACK growth below a byte is not
// lost.
type Cubic struct {
	mss      int
	cwnd     float64 // bytes
	ssthresh int
	recovery bool

	epochSet  bool    // a congestion avoidance stage has begun
	epoch     int64   // t_epoch: when it began, ns
	k         float64 // K: seconds from t_epoch to W_max
	wmax      float64 // W_max, segments
	cwndPrior float64 // cwnd_prior: the window before the last reduction, segments
	west      float64 // W_est, the Reno-friendly window, segments
	timedOut  bool    // the coming stage follows an RTO (RFC 9438 4.8)
}

// Name is "cubic".
func (c *Cubic) Name() string { return "cubic" }

// Init starts at the initial window, with no congestion event seen.
func (c *Cubic) Init(mss int) {
	mss = validMSS(mss)
	*c = Cubic{mss: mss, cwnd: float64(InitialWindow * mss), ssthresh: InfiniteSsthresh}
}

// wcubic is W_cubic(t) = C*(t-K)^3 + W_max, t in seconds (RFC 9438 4.2, eq. 1).
func (c *Cubic) wcubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d + c.wmax
}

// OnAck grows the window: in slow start as Reno does (RFC 9438 4.10), then
// in congestion avoidance by RFC 9438 4.2 to 4.5.
func (c *Cubic) OnAck(acked int, rtt, now int64) {
	if acked <= 0 || c.recovery {
		return
	}
	if c.cwnd < float64(c.ssthresh) {
		var w int
		w, acked = slowStart(int(c.cwnd), c.ssthresh, c.mss, acked)
		c.cwnd = float64(w)
		if acked == 0 {
			return
		}
	}
	mss := float64(c.mss)
	cwnd := c.cwnd / mss // segments
	if !c.epochSet {
		c.startEpoch(cwnd, now)
	}
	t := float64(now-c.epoch) / 1e9
	segs := float64(acked) / mss

	// 4.3: W_est grows at Reno's rate for beta_cubic, and at Reno's own
	// once it has passed the window before the reduction.
	alpha := cubicAlpha
	if c.west >= c.cwndPrior {
		alpha = 1
	}
	c.west += alpha * segs / cwnd

	if c.wcubic(t) < c.west {
		// The Reno-friendly region (4.3): CUBIC would be slower than Reno.
		cwnd = max(cwnd, c.west)
	} else {
		// The concave and convex regions (4.4, 4.5): aim at the cubic
		// window one RTT ahead, but never shrink and never grow by more
		// than half the window per RTT; each ACK moves cwnd by
		// (target - cwnd)/cwnd per segment it acknowledges.
		target := c.wcubic(t + float64(rtt)/1e9)
		target = min(max(target, cwnd), 1.5*cwnd)
		cwnd += (target - cwnd) / cwnd * segs
	}
	c.cwnd = min(cwnd*mss, MaxCwnd)
}

// startEpoch begins a congestion avoidance stage at cwnd segments: t_epoch,
// K = cbrt((W_max - cwnd_epoch)/C) (4.2, eq. 2) and W_est = cwnd_epoch (4.3).
// After an RTO, or with no loss above the current window, the stage starts
// at the plateau: W_max = cwnd and K = 0 (4.8; Linux's bictcp_update does
// the same when cwnd has passed W_max).
func (c *Cubic) startEpoch(cwnd float64, now int64) {
	c.epochSet, c.epoch = true, now
	if c.timedOut || c.wmax <= cwnd {
		c.wmax, c.k = cwnd, 0
	} else {
		c.k = math.Cbrt((c.wmax - cwnd) / cubicC)
	}
	c.timedOut = false
	c.west = cwnd
}

// reduce reacts to a congestion event: fast convergence (4.7) lowers W_max
// below the window when this loss came before the last W_max was reached,
// releasing bandwidth to newer flows; ssthresh = cwnd * beta_cubic, at
// least 2 segments (4.6). The window, not the flight size, is reduced, as
// RFC 9438 and Linux and Windows do: an application-limited sender would
// otherwise collapse its window at every loss. flight is not used.
func (c *Cubic) reduce(_ int) {
	cwnd := c.cwnd / float64(c.mss)
	if cwnd < c.wmax {
		c.wmax = cwnd * (1 + cubicBeta) / 2
	} else {
		c.wmax = cwnd
	}
	c.cwndPrior = cwnd
	c.ssthresh = max(int(c.cwnd*cubicBeta), 2*c.mss)
	c.epochSet = false
}

// OnLoss reduces the window to ssthresh (4.6).
func (c *Cubic) OnLoss(flight int) {
	if c.recovery {
		return
	}
	c.reduce(flight)
	c.cwnd = float64(c.ssthresh)
	c.recovery = true
}

// OnRecoveryExit ends recovery at ssthresh.
func (c *Cubic) OnRecoveryExit() {
	if c.recovery {
		c.cwnd = float64(c.ssthresh)
		c.recovery = false
	}
}

// OnTimeout sets ssthresh as on loss and cwnd to one MSS, as Reno does
// (4.8); the next congestion avoidance stage starts with K = 0.
func (c *Cubic) OnTimeout(flight int) {
	c.reduce(flight)
	c.cwnd = float64(c.mss)
	c.recovery = false
	c.timedOut = true
}

// Cwnd is the congestion window in bytes.
func (c *Cubic) Cwnd() int { return int(c.cwnd) }

// Ssthresh is the slow-start threshold in bytes.
func (c *Cubic) Ssthresh() int { return c.ssthresh }

// InSlowStart reports whether cwnd < ssthresh.
func (c *Cubic) InSlowStart() bool { return int(c.cwnd) < c.ssthresh }

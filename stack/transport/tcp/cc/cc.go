// Package cc is TCP congestion control: the window a sender may have in
// flight, grown on ACKs and cut on loss, by an algorithm chosen per socket
// by name as Linux's TCP_CONGESTION chooses one (tcp_cong.c). Reno and CUBIC
// are here; each keeps its whole state in its own struct and allocates
// nothing per ACK.
//
// Read first: RFC 5681 section 3 (slow start, congestion avoidance, the
// reaction to loss), RFC 3465 (byte counting), RFC 6582 (when one recovery
// ends), RFC 6928 (the initial window), RFC 9438 section 4 (CUBIC).
//
// The connection's contract, common to all controllers:
//   - OnAck for each ACK that acknowledges new data outside recovery, with
//     the bytes it newly acknowledged, while the sender is limited by cwnd
//     (an application-limited sender must not grow its window, RFC 9438
//     5.8 and RFC 7661); ACKs during recovery are ignored.
//   - OnLoss once per congestion event: on entering fast recovery (three
//     duplicate ACKs or SACK loss detection, RFC 6675), with the flight
//     size then (Reno halves it, RFC 5681 eq. 4; CUBIC reduces its window
//     instead, RFC 9438 4.6). Later calls before OnRecoveryExit are
//     ignored, as RFC 6582 reduces the window once per window of data.
//   - OnRecoveryExit when the ACK that covers the recovery point arrives.
//   - OnTimeout when the retransmission timer expires, with the flight size
//     before the timeout; it also ends any recovery.
//
// Recovery itself (which segments to send, PRR or RFC 6675's pipe) is the
// connection's: the window set on entry is ssthresh, as RFC 6675 sets it,
// with no inflation per duplicate ACK.
package cc

import (
	"fmt"
	"sort"
	"strings"
)

// Controller is one connection's congestion control. Sizes are bytes,
// times nanoseconds. It is owned by the connection's shard.
type Controller interface {
	// Name is the algorithm's name as TCP_CONGESTION spells it.
	Name() string
	// Init resets the controller for a connection whose sender MSS is mss
	// bytes (a non-positive mss is taken as DefaultMSS): cwnd is the
	// initial window, ssthresh is unbounded.
	Init(mss int)
	// OnAck grows the window for acked newly acknowledged bytes; rtt is the
	// connection's smoothed RTT (0 if unknown) and now the current time.
	OnAck(acked int, rtt, now int64)
	// OnLoss reduces the window on entering fast recovery.
	OnLoss(flight int)
	// OnRecoveryExit ends fast recovery.
	OnRecoveryExit()
	// OnTimeout collapses the window to one MSS after an RTO.
	OnTimeout(flight int)
	// Cwnd is the congestion window in bytes.
	Cwnd() int
	// Ssthresh is the slow-start threshold in bytes.
	Ssthresh() int
	// InSlowStart reports whether cwnd < ssthresh.
	InSlowStart() bool
}

const (
	// InitialWindow is the initial window in segments (RFC 6928; Linux's
	// TCP_INIT_CWND). RFC 6928 also caps it at 14600 bytes when the MSS
	// is large; like Linux we take ten segments of any size.
	InitialWindow = 10
	// DefaultMSS is the MSS assumed without one (RFC 9293 3.7.1).
	DefaultMSS = 536
	// InfiniteSsthresh is ssthresh before the first congestion event
	// (Linux's TCP_INFINITE_SSTHRESH).
	InfiniteSsthresh = 0x7fffffff
	// MaxCwnd bounds the window: no receive window can be larger
	// (2^30 bytes with window scale 14, RFC 7323 2.3).
	MaxCwnd = 1 << 30
	// abcLimit is the most one ACK may grow the window by in slow start,
	// in segments: L = 2*SMSS of RFC 3465 2.2.
	abcLimit = 2
)

var algorithms = map[string]func() Controller{
	"reno":  func() Controller { return new(Reno) },
	"cubic": func() Controller { return new(Cubic) },
}

// Available lists the algorithms New knows, sorted
// (tcp_available_congestion_control).
func Available() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns the controller called name, initialised for mss.
func New(name string, mss int) (Controller, error) {
	mk, ok := algorithms[name]
	if !ok {
		return nil, fmt.Errorf("cc: unknown congestion control %q: known are %s", name, strings.Join(Available(), ", "))
	}
	if mss <= 0 || mss > 65535 {
		return nil, fmt.Errorf("cc: %s with MSS %d: want 1..65535", name, mss)
	}
	c := mk()
	c.Init(mss)
	return c, nil
}

// slowStart grows cwnd for acked bytes by RFC 5681 3.1's slow start with
// RFC 3465's limit of L = 2*SMSS per ACK, up to ssthresh; it returns the new
// cwnd and the acked bytes left over past ssthresh, which belong to
// congestion avoidance (as Linux's tcp_slow_start returns them).
func slowStart(cwnd, ssthresh, mss, acked int) (int, int) {
	inc := min(acked, abcLimit*mss)
	room := ssthresh - cwnd
	if inc <= room {
		return cwnd + inc, 0
	}
	return ssthresh, inc - room
}

func validMSS(mss int) int {
	if mss <= 0 {
		return DefaultMSS
	}
	return mss
}

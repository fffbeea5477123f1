package sack

import "github.com/pollnet/pollnet/stack/transport/tcp/seq"

// RACK-TLP (RFC 8985): a segment is lost when one sent sufficiently later
// has been delivered, with "sufficiently" a reordering window measured in
// time, not in segments; Linux's tcp_recovery.c (tcp_rack_detect_loss).

const (
	// MaxAckDelay is the longest a peer is assumed to delay an ACK, added to
	// the probe timeout when one segment is in flight (RFC 8985 7.2).
	MaxAckDelay = 200_000_000 // ns
	// noRTTProbe is the probe timeout before any RTT sample (RFC 8985 7.2).
	noRTTProbe = 1_000_000_000 // ns
	// reoWndPersist is how many recoveries a grown reordering window
	// outlives without a new D-SACK (RFC 8985 6.2 step 4).
	reoWndPersist = 16
	// maxReoWndMult caps the reordering window's multiplier, as Linux caps
	// reo_wnd_steps; the window itself is also capped by SRTT.
	maxReoWndMult = 255
)

// rack is RFC 8985's per-connection RACK state.
type rack struct {
	xmitTS int64     // RACK.xmit_ts: send time of the latest-sent delivered segment
	endSeq seq.Value // RACK.end_seq: its end
	rtt    int64     // RACK.rtt: the RTT it measured
	valid  bool      // a segment has been delivered

	fack    seq.Value // RACK.fack: the highest end delivered
	fackSet bool

	reorderingSeen bool // RACK.reordering_seen
	mult           int  // RACK.reo_wnd_mult
	persist        int  // RACK.reo_wnd_persist

	dsackRound    seq.Value // RACK.dsack_round: snd.nxt at the last widening
	dsackRoundSet bool

	minRTT int64 // the last min RTT DetectLoss was given, for step 2
}

func (k *rack) init() { *k = rack{mult: 1} }

// sentAfter is RFC 8985's RACK_sent_after: t1/e1 was sent after t2/e2, the
// sequence breaking a tie in time.
func sentAfter(t1 int64, e1 seq.Value, t2 int64, e2 seq.Value) bool {
	return t1 > t2 || t1 == t2 && e2.LessThan(e1)
}

// delivered is RFC 8985 6.2 steps 2 and 3 for a segment newly acknowledged
// or SACKed at now.
func (k *rack) delivered(r *record, now int64) {
	if r.flags&fEverRetrans != 0 && now-r.sentAt < k.minRTT {
		return // too quick for the retransmission: it acks the original
	}
	if k.fackSet && r.end.LessThan(k.fack) && r.flags&fEverRetrans == 0 {
		k.reorderingSeen = true
	}
	if !k.fackSet || k.fack.LessThan(r.end) {
		k.fack, k.fackSet = r.end, true
	}
	if !k.valid || sentAfter(r.sentAt, r.end, k.xmitTS, k.endSeq) {
		k.xmitTS, k.endSeq, k.rtt, k.valid = r.sentAt, r.end, now-r.sentAt, true
	}
}

// dsack widens the reordering window once per round trip (RFC 8985 6.2
// step 4).
func (k *rack) dsack(una, nxt seq.Value) {
	k.acked(una)
	if k.dsackRoundSet {
		return
	}
	k.dsackRound, k.dsackRoundSet = nxt, true
	if k.mult < maxReoWndMult {
		k.mult++
	}
	k.persist = reoWndPersist
}

// acked ends the D-SACK round once snd.una reaches it.
func (k *rack) acked(una seq.Value) {
	if k.dsackRoundSet && k.dsackRound.LessEq(una) {
		k.dsackRoundSet = false
	}
}

// recoveryExited lets a widened window decay back after reoWndPersist
// recoveries without a D-SACK.
func (k *rack) recoveryExited() {
	if k.persist > 0 {
		k.persist--
		if k.persist == 0 {
			k.mult = 1
		}
	}
}

// ReorderWindow is RFC 8985's RACK.reo_wnd: min_RTT/4 times the multiplier
// D-SACKs have grown, capped by srtt; zero while no reordering has been
// seen and the sender is in recovery or DupThresh segments are SACKed.
func (s *Scoreboard) ReorderWindow(minRTT, srtt int64) int64 {
	k := &s.rack
	if !k.reorderingSeen && (s.inRecovery || s.afterRTO || s.sackedSegs >= DupThresh) {
		return 0
	}
	w := minRTT / 4 * int64(k.mult)
	if srtt > 0 && w > srtt {
		w = srtt
	}
	return w
}

// DetectLoss is RFC 8985 6.2 step 5: every unSACKed segment sent before
// the most recently delivered one whose time is up (its send time plus
// RACK.rtt plus the reordering window has passed at now) is marked lost; a
// retransmission so marked is counted as TCPLostRetransmit and will be sent
// again. It returns the octets newly marked lost and, when segments wait
// for their time, the RACK reordering timer: the longest such wait, as the
// RFC and Linux arm it, else 0. minRTT and srtt are the connection's.
func (s *Scoreboard) DetectLoss(now, minRTT, srtt int64) (lost uint64, timeout int64) {
	k := &s.rack
	k.minRTT = minRTT
	if !k.valid {
		return 0, 0
	}
	reo := s.ReorderWindow(minRTT, srtt)
	for i := s.head; i < s.tail; i++ {
		r := &s.segs[i]
		if r.flags&fSACKed != 0 || r.flags&(fLost|fRetrans) == fLost {
			continue // delivered, or lost and waiting for its retransmission
		}
		if sentAfter(r.sentAt, r.end, k.xmitTS, k.endSeq) {
			if r.flags&fEverRetrans == 0 {
				// First sends go out in sequence order, and a resend is
				// later than its first send: nothing above was sent earlier.
				break
			}
			continue
		}
		left := r.sentAt + k.rtt + reo - now
		if left > 0 {
			if left > timeout {
				timeout = left
			}
			continue
		}
		if r.flags&fRetrans != 0 {
			s.Stats.LostRetransmit++
		}
		s.setFlags(r, (r.flags|fLost)&^fRetrans)
		s.Stats.RACKLost++
		lost += r.len()
	}
	return lost, timeout
}

// ProbeTimeout is RFC 8985 7.2's PTO: twice srtt, plus MaxAckDelay when
// flightSize is at most one smss (a lone segment's ACK may be delayed), one
// second before any RTT sample; never later than rtoLeft, the time until the
// retransmission timer fires, when that is positive.
func ProbeTimeout(srtt int64, flightSize, smss int, rtoLeft int64) int64 {
	pto := int64(noRTTProbe)
	if srtt > 0 {
		pto = 2 * srtt
		if flightSize <= smss {
			pto += MaxAckDelay
		}
	}
	if rtoLeft > 0 && pto > rtoLeft {
		pto = rtoLeft
	}
	return pto
}

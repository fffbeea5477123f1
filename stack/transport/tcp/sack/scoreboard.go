// Package sack is a TCP sender's view of what the peer holds: a scoreboard
// of the segments in [snd.una, snd.nxt), marked SACKed, lost or
// retransmitted, from which RFC 6675's conservative SACK-based loss recovery
// picks what to send next, with RACK-TLP's time-based loss detection (RFC
// 8985) beside it. It tracks sequence ranges only: the bytes themselves stay
// in the connection's send buffer.
//
// Read first: RFC 6675 sections 2 to 5 (definitions, IsLost, SetPipe,
// NextSeg, the recovery algorithm), RFC 2883 section 4 (how a D-SACK is
// told apart), RFC 8985 sections 6 and 7 (RACK and the tail loss probe),
// RFC 2018 section 8 (why SACK marks may be reneged).
//
// The connection's contract, per arriving ACK: Ack with its cumulative
// acknowledgement, then SACK with its blocks, then DetectLoss; then, if
// ShouldEnterRecovery, EnterRecovery (and the congestion controller's
// OnLoss); then, while cwnd - Pipe() >= SMSS, NextSeg and Sent for what is
// sent. Every transmission, new or repeated, is reported to Sent. On a
// retransmission timeout, Timeout. Times are nanoseconds on the caller's
// monotonic clock.
//
// Memory: one slice of fixed-size records per connection, grown by doubling
// when the flight outgrows it and otherwise reused, so steady-state calls
// allocate nothing. Records are created only by Sent, never by the peer: a
// SACK block marks whole records it covers and never splits one, so a peer
// that lies cannot grow the scoreboard, and the work per ACK is bounded by
// MaxBlocks binary searches and the records the blocks cover.
//
// A Scoreboard is owned by its connection's shard; it is not safe for
// concurrent use.
package sack

import (
	"errors"

	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// DupThresh is RFC 6675's DupThresh: the number of SACKed segments above a
// hole that declare it lost.
const DupThresh = 3

// MaxBlocks is the number of SACK blocks a segment can carry (40 option
// bytes hold four); blocks beyond it are discarded.
const MaxBlocks = 4

// DefaultMSS is the sender MSS assumed when Init is given none (RFC 9293
// section 3.7.1).
const DefaultMSS = 536

// maxSegment bounds one record: no window exceeds 2^30 (RFC 7323 2.3).
const maxSegment = 1 << 30

var (
	// ErrNotNext is a new transmission that does not begin at snd.nxt.
	ErrNotNext = errors.New("sack: sent: new data does not begin at snd.nxt")
	// ErrRange is an empty range or one longer than 2^30.
	ErrRange = errors.New("sack: sent: empty or oversized range")
	// ErrNotOutstanding is a retransmission outside [snd.una, snd.nxt).
	ErrNotOutstanding = errors.New("sack: sent: retransmission outside [snd.una, snd.nxt)")
)

// Block is one SACK block: the octets [Start, End) the peer holds.
type Block struct{ Start, End seq.Value }

// Stats counts what the scoreboard saw; field names follow Linux's MIB.
type Stats struct {
	// SackRecovery is the number of entries into SACK loss recovery
	// (TCPSackRecovery).
	SackRecovery uint64
	// SACKReneging is the number of times the peer was seen to drop data it
	// had SACKed (TCPSACKReneging).
	SACKReneging uint64
	// DSACKRecv is the number of D-SACK blocks received (TCPDSACKRecv).
	DSACKRecv uint64
	// SACKDiscard is the number of SACK blocks discarded as invalid:
	// reversed, outside [snd.una, snd.nxt), or beyond MaxBlocks
	// (TCPSACKDiscard).
	SACKDiscard uint64
	// LostRetransmit is the number of retransmissions RACK found lost in
	// turn (TCPLostRetransmit).
	LostRetransmit uint64
	// RACKLost is the number of segments RACK marked lost.
	RACKLost uint64
}

// Record flags.
const (
	fSACKed      = 1 << iota // the peer holds it
	fLost                    // deemed lost (RFC 6675 IsLost, RACK, or an RTO)
	fRetrans                 // a retransmission is in flight
	fEverRetrans             // retransmitted at least once (RACK's ambiguity)
)

// record is one transmitted segment, [start, end), last sent at sentAt.
type record struct {
	start, end seq.Value
	sentAt     int64
	flags      uint8
}

func (r *record) len() uint64 { return uint64(r.end.Sub(r.start)) }

// Scoreboard is the sender's SACK scoreboard over [snd.una, snd.nxt), like
// Linux's retransmit queue with its sacked bits (tcp_sacktag_write_queue).
type Scoreboard struct {
	segs       []record // live records are segs[head:tail], in sequence order
	head, tail int

	una, nxt seq.Value
	smss     uint64

	// Aggregates over live records, kept by setFlags so Pipe is O(1).
	sackedBytes  uint64 // SACKed
	sackedSegs   int
	lostBytes    uint64 // lost and not SACKed
	retransBytes uint64 // retransmission in flight, not SACKed

	highSACK seq.Value // end of the highest SACKed record; una if none
	lostMark seq.Value // every unSACKed octet below it is lost by IsLost
	rxtHint  seq.Value // no lost, unretransmitted record starts below it
	dupAcks  int       // RFC 6675 DupAcks

	inRecovery    bool
	afterRTO      bool // no new recovery until una reaches recoveryPoint
	recoveryPoint seq.Value
	highRxt       seq.Value // end of the highest retransmission this recovery
	rescueRxt     seq.Value
	rescueSet     bool

	reneging bool // the current reneging episode is counted

	rack rack

	// Stats is read by the shard's counter export; written only here.
	Stats Stats
}

// Init readies the scoreboard for a connection whose sender MSS is smss (a
// non-positive smss is taken as DefaultMSS) and whose next octet to send is
// una. The record slice is kept for reuse.
func (s *Scoreboard) Init(smss int, una seq.Value) {
	if smss <= 0 {
		smss = DefaultMSS
	}
	segs := s.segs
	*s = Scoreboard{segs: segs, una: una, nxt: una, smss: uint64(smss)}
	s.highSACK, s.lostMark, s.rxtHint = una, una, una
	s.rack.init()
}

// Una is snd.una, the first unacknowledged octet (RFC 6675's HighACK).
func (s *Scoreboard) Una() seq.Value { return s.una }

// Nxt is snd.nxt, one past the highest octet sent (HighData + 1).
func (s *Scoreboard) Nxt() seq.Value { return s.nxt }

// Segments is the number of records on the board.
func (s *Scoreboard) Segments() int { return s.tail - s.head }

// SACKedBytes is the number of outstanding octets the peer has SACKed.
func (s *Scoreboard) SACKedBytes() uint64 { return s.sackedBytes }

// InRecovery reports whether SACK loss recovery is under way.
func (s *Scoreboard) InRecovery() bool { return s.inRecovery }

// RecoveryPoint is RFC 6675's RecoveryPoint: HighData + 1 when the current
// (or last) recovery began.
func (s *Scoreboard) RecoveryPoint() seq.Value { return s.recoveryPoint }

// HighRxt is one past the highest octet retransmitted in this recovery
// (RFC 6675's HighRxt + 1); snd.una when none was.
func (s *Scoreboard) HighRxt() seq.Value { return s.highRxt }

// RescueRxt is RFC 6675's RescueRxt, and whether it is defined.
func (s *Scoreboard) RescueRxt() (seq.Value, bool) { return s.rescueRxt, s.rescueSet }

// DupAcks is RFC 6675's DupAcks: ACKs since the last cumulative advance
// that SACKed octets not SACKed before.
func (s *Scoreboard) DupAcks() int { return s.dupAcks }

// Pipe is RFC 6675's SetPipe: the octets estimated in the network, counting
// each unSACKed octet not deemed lost once and each one with a
// retransmission in flight once more.
func (s *Scoreboard) Pipe() uint64 {
	return uint64(s.nxt.Sub(s.una)) - s.sackedBytes - s.lostBytes + s.retransBytes
}

// contribution adds (sign 1) or removes (sign -1) r from the aggregates.
func (s *Scoreboard) contribution(r *record, sign int) {
	n := r.len() * uint64(sign) // modulo 2^64, so -1 subtracts
	switch {
	case r.flags&fSACKed != 0:
		s.sackedBytes += n
		s.sackedSegs += sign
	default:
		if r.flags&fLost != 0 {
			s.lostBytes += n
		}
		if r.flags&fRetrans != 0 {
			s.retransBytes += n
		}
	}
}

// setFlags changes r's flags, keeping the aggregates and the retransmit hint.
func (s *Scoreboard) setFlags(r *record, flags uint8) {
	s.contribution(r, -1)
	r.flags = flags
	s.contribution(r, 1)
	if flags&(fSACKed|fLost|fRetrans) == fLost && r.start.LessThan(s.rxtHint) {
		s.rxtHint = r.start
	}
}

// find returns the index of the first live record whose end lies after v.
func (s *Scoreboard) find(v seq.Value) int {
	lo, hi := s.head, s.tail
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v.LessThan(s.segs[m].end) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// room makes space for one more record at the tail: compacting when at
// least half the slice is dead, doubling otherwise.
func (s *Scoreboard) room() {
	if s.tail < len(s.segs) {
		return
	}
	n := s.tail - s.head
	if s.head > 0 && n <= len(s.segs)/2 {
		copy(s.segs, s.segs[s.head:s.tail])
	} else {
		size := 2 * len(s.segs)
		if size < 64 {
			size = 64
		}
		grown := make([]record, size)
		copy(grown, s.segs[s.head:s.tail])
		s.segs = grown
	}
	s.head, s.tail = 0, n
}

// split cuts the record holding v (strictly inside it) into [start, v) and
// [v, end), both keeping the flags and send time.
func (s *Scoreboard) split(v seq.Value) {
	s.room() // may move the records: find after it
	i := s.find(v)
	copy(s.segs[i+1:s.tail+1], s.segs[i:s.tail])
	s.tail++
	s.segs[i].end = v
	s.segs[i+1].start = v
}

// Sent records the transmission of [start, end) at now: new data when
// retransmit is false (start must be snd.nxt), a repeat of outstanding
// octets when true (within [snd.una, snd.nxt); records are split at start
// and end if the repeat is cut differently from the original).
func (s *Scoreboard) Sent(start, end seq.Value, now int64, retransmit bool) error {
	if !start.LessThan(end) || end.Sub(start) > maxSegment {
		return ErrRange
	}
	if !retransmit {
		if start != s.nxt {
			return ErrNotNext
		}
		s.room()
		s.segs[s.tail] = record{start: start, end: end, sentAt: now}
		s.tail++
		s.nxt = end
		return nil
	}
	if start.LessThan(s.una) || s.nxt.LessThan(end) {
		return ErrNotOutstanding
	}
	if i := s.find(start); s.segs[i].start != start {
		s.split(start)
	}
	if j := s.find(end); j < s.tail && s.segs[j].start.LessThan(end) {
		s.split(end)
	}
	for i := s.find(start); i < s.tail && s.segs[i].start.LessThan(end); i++ {
		r := &s.segs[i]
		r.sentAt = now
		if r.flags&fSACKed == 0 {
			s.setFlags(r, r.flags|fRetrans|fEverRetrans)
		}
	}
	if s.inRecovery && s.highRxt.LessThan(end) {
		s.highRxt = end
	}
	return nil
}

// AckResult is what a cumulative acknowledgement did.
type AckResult struct {
	// Acked is the number of octets newly acknowledged.
	Acked uint64
	// ExitedRecovery is set when the ACK covered RecoveryPoint and ended
	// SACK recovery (RFC 6675 section 5); the caller ends its congestion
	// controller's recovery.
	ExitedRecovery bool
	// Reneging is set when the peer acknowledged up to a segment it had
	// SACKed without acknowledging that segment: it may have discarded
	// SACKed data (RFC 2018 section 8), as Linux's tcp_check_sack_reneging
	// suspects. The caller shortens its retransmission timer and, when it
	// fires, calls Timeout(true).
	Reneging bool
}

// Ack moves snd.una to cumAck at now, dropping the records it covers. An
// acknowledgement outside (snd.una, snd.nxt] changes nothing beyond the
// reneging check.
func (s *Scoreboard) Ack(cumAck seq.Value, now int64) AckResult {
	var res AckResult
	if s.una.LessThan(cumAck) && cumAck.LessEq(s.nxt) {
		res.Acked = uint64(cumAck.Sub(s.una))
		for s.head < s.tail {
			r := &s.segs[s.head]
			if cumAck.LessThan(r.end) {
				if r.start.LessThan(cumAck) { // partial: trim what was acked
					s.contribution(r, -1)
					r.start = cumAck
					s.contribution(r, 1)
				}
				break
			}
			if r.flags&fSACKed == 0 {
				s.rack.delivered(r, now)
			}
			s.contribution(r, -1)
			s.head++
		}
		if s.head == s.tail {
			s.head, s.tail = 0, 0
		}
		s.una = cumAck
		s.dupAcks = 0
		atLeast(&s.highSACK, cumAck)
		atLeast(&s.lostMark, cumAck)
		atLeast(&s.rxtHint, cumAck)
		atLeast(&s.highRxt, cumAck)
		if s.sackedSegs == 0 {
			s.highSACK = cumAck
		}
		if (s.inRecovery || s.afterRTO) && s.recoveryPoint.LessEq(cumAck) {
			res.ExitedRecovery = s.inRecovery
			s.inRecovery, s.afterRTO = false, false
			s.rack.recoveryExited()
		}
		s.rack.acked(cumAck)
	}
	if s.head < s.tail && s.segs[s.head].flags&fSACKed != 0 {
		res.Reneging = true
		if !s.reneging {
			s.reneging = true
			s.Stats.SACKReneging++
		}
	} else {
		s.reneging = false
	}
	return res
}

// SACK applies an ACK's SACK blocks at now and returns the octets newly
// SACKed and whether the first block was a D-SACK (RFC 2883 section 4: it
// lies below snd.una, or inside the second block), which reports octets
// received twice: the caller may undo a spurious retransmission's window
// cut. A block reversed, empty, or not wholly within [snd.una, snd.nxt) is
// discarded, as Linux's tcp_is_sackblock_valid does; a block marks only the
// records it wholly covers.
func (s *Scoreboard) SACK(blocks []Block, now int64) (sacked uint64, dsack bool) {
	if len(blocks) > MaxBlocks {
		s.Stats.SACKDiscard += uint64(len(blocks) - MaxBlocks)
		blocks = blocks[:MaxBlocks]
	}
	if len(blocks) > 0 {
		b := blocks[0]
		if b.Start.LessThan(b.End) && (b.Start.LessThan(s.una) ||
			len(blocks) > 1 && blocks[1].Start.LessEq(b.Start) && b.End.LessEq(blocks[1].End)) {
			dsack = true
			s.Stats.DSACKRecv++
			s.rack.dsack(s.una, s.nxt)
			blocks = blocks[1:]
		}
	}
	for _, b := range blocks {
		if !b.Start.LessThan(b.End) || b.Start.LessThan(s.una) || s.nxt.LessThan(b.End) {
			s.Stats.SACKDiscard++
			continue
		}
		for i := s.find(b.Start); i < s.tail && s.segs[i].end.LessEq(b.End); i++ {
			r := &s.segs[i]
			if r.flags&fSACKed != 0 || r.start.LessThan(b.Start) {
				continue
			}
			s.setFlags(r, (r.flags|fSACKed)&^(fLost|fRetrans))
			sacked += r.len()
			s.rack.delivered(r, now)
			if s.highSACK.LessThan(r.end) {
				s.highSACK = r.end
			}
		}
	}
	if sacked > 0 {
		s.dupAcks++
		s.markLost()
	}
	return sacked, dsack
}

// markLost applies RFC 6675's IsLost to the records above lostMark: walking
// down from the top, the first unSACKed record with DupThresh SACKed
// records, or more than (DupThresh-1)*SMSS SACKed octets, above it is lost,
// and so is every unSACKed record below it.
func (s *Scoreboard) markLost() {
	segs, bytes := 0, uint64(0)
	for i := s.tail - 1; i >= s.head; i-- {
		r := &s.segs[i]
		if r.end.LessEq(s.lostMark) {
			return
		}
		if r.flags&fSACKed != 0 {
			segs++
			bytes += r.len()
			continue
		}
		if segs < DupThresh && bytes <= (DupThresh-1)*s.smss {
			continue
		}
		mark := r.end
		for ; i >= s.head && s.lostMark.LessThan(s.segs[i].end); i-- {
			if r = &s.segs[i]; r.flags&(fSACKed|fLost) == 0 {
				s.setFlags(r, r.flags|fLost)
			}
		}
		s.lostMark = mark
		return
	}
}

// IsLost reports whether the octet v is deemed lost: by RFC 6675 section
// 4's IsLost, by RACK, or by a retransmission timeout. SACKed and
// unsent octets are not lost.
func (s *Scoreboard) IsLost(v seq.Value) bool {
	i := s.find(v)
	if i == s.tail || v.LessThan(s.segs[i].start) || v.LessThan(s.una) {
		return false
	}
	return s.segs[i].flags&(fSACKed|fLost) == fLost
}

// ShouldEnterRecovery reports whether RFC 6675 section 5 starts loss
// recovery now: not already in it, not before snd.una has passed the
// RecoveryPoint a timeout set, and either DupThresh duplicate ACKs or an
// octet deemed lost.
func (s *Scoreboard) ShouldEnterRecovery() bool {
	return !s.inRecovery && !s.afterRTO && (s.dupAcks >= DupThresh || s.lostBytes > 0)
}

// EnterRecovery starts SACK loss recovery (RFC 6675 section 5, step 4):
// RecoveryPoint is HighData + 1, the first unacknowledged segment is marked
// lost so that NextSeg retransmits it first, and RescueRxt is set to its end
// so no rescue precedes it. Counted as TCPSackRecovery.
func (s *Scoreboard) EnterRecovery() {
	if s.inRecovery {
		return
	}
	s.inRecovery = true
	s.recoveryPoint = s.nxt
	s.highRxt = s.una
	s.rescueSet = false
	if s.head < s.tail {
		r := &s.segs[s.head]
		if r.flags&fSACKed == 0 {
			s.setFlags(r, r.flags|fLost)
		}
		s.rescueRxt, s.rescueSet = r.end, true
	}
	s.Stats.SackRecovery++
}

// Reneging reports whether the first unacknowledged record is SACKed: the
// peer acknowledged up to it but not it, so it may have discarded what it
// SACKed (Linux's tcp_timeout_mark_lost checks the same at a timeout).
func (s *Scoreboard) Reneging() bool {
	return s.head < s.tail && s.segs[s.head].flags&fSACKed != 0
}

// Timeout applies a retransmission timeout, like Linux's tcp_enter_loss:
// every unSACKed record is lost and its retransmissions with it, recovery
// ends, and no new recovery begins before snd.una reaches snd.nxt as it is
// now (RFC 6675 section 5.1). With clearSACK (after Ack reported
// reneging) the SACK marks are dropped too and those octets resent.
func (s *Scoreboard) Timeout(clearSACK bool) {
	for i := s.head; i < s.tail; i++ {
		r := &s.segs[i]
		f := r.flags &^ fRetrans
		if clearSACK {
			f &^= fSACKed
		}
		if f&fSACKed == 0 {
			f |= fLost
		}
		s.setFlags(r, f)
	}
	if clearSACK {
		s.highSACK = s.una
		s.reneging = false
	}
	s.lostMark = s.una
	s.dupAcks = 0
	s.inRecovery = false
	s.afterRTO = s.una != s.nxt
	s.recoveryPoint = s.nxt
	s.highRxt = s.una
	s.rescueSet = false
}

// Kind says what NextSeg chose.
type Kind uint8

const (
	// Nothing: no segment may be sent now.
	Nothing Kind = iota
	// Retransmit: resend a segment deemed lost (rule 1) or, in recovery
	// with no new data, an unSACKed one below the highest SACK (rule 3).
	Retransmit
	// NewData: send up to SMSS of new data from snd.nxt (rule 2).
	NewData
	// Rescue: RFC 6675's rescue retransmission of the highest unSACKed
	// segment (rule 4); RescueRxt is already set.
	Rescue
)

// NextSeg is RFC 6675 section 4's NextSeg: what to send when the window
// allows one more SMSS. haveNew says unsent data exists and the peer's
// window admits it. Rule 1 takes the first record deemed lost without a
// retransmission in flight (the flag rather than the octets above HighRxt,
// so a retransmission RACK found lost is sent again); rules 3 and 4 apply
// only in recovery. The caller reports what it sends to Sent.
func (s *Scoreboard) NextSeg(haveNew bool) (start, end seq.Value, kind Kind) {
	for i := s.find(s.rxtHint); i < s.tail; i++ {
		r := &s.segs[i]
		if r.flags&(fSACKed|fLost|fRetrans) == fLost {
			s.rxtHint = r.start
			return r.start, r.end, Retransmit
		}
	}
	s.rxtHint = s.nxt
	if haveNew {
		return s.nxt, s.nxt.Add(seq.Size(s.smss)), NewData
	}
	if !s.inRecovery {
		return 0, 0, Nothing
	}
	for i := s.find(s.highRxt); i < s.tail && s.segs[i].end.LessEq(s.highSACK); i++ {
		r := &s.segs[i]
		if r.flags&(fSACKed|fLost|fRetrans) == 0 && s.highRxt.LessEq(r.start) {
			return r.start, r.end, Retransmit
		}
	}
	if !s.rescueSet || s.rescueRxt.LessThan(s.una) {
		for i := s.tail - 1; i >= s.head; i-- {
			if r := &s.segs[i]; r.flags&fSACKed == 0 {
				s.rescueRxt, s.rescueSet = s.recoveryPoint, true
				return r.start, r.end, Rescue
			}
		}
	}
	return 0, 0, Nothing
}

// atLeast raises *p to v.
func atLeast(p *seq.Value, v seq.Value) {
	if p.LessThan(v) {
		*p = v
	}
}

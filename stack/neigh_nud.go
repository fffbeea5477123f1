package stack

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// nudState is a neighbour entry's state, Linux's NUD states (Neighbour
// Unreachability Detection, RFC 4861 section 7.3, which Linux applies to
// ARP as well):
//
//	NONE ──send──> INCOMPLETE ──answer──> REACHABLE ──reachable time──> STALE
//	                   │  (Retries broadcast              ▲                 │
//	                   │   requests, RetryInterval        │ confirmed   send│
//	                   ▼   apart)                         │                 ▼
//	                FAILED <──no answer── PROBE <──not confirmed── DELAY <──┘
//	                   │              (UnicastProbes   within DelayFirstProbe
//	                   └──send──> INCOMPLETE    unicast requests)
//
// A REACHABLE entry still in use when its time runs out goes to DELAY
// rather than STALE. Only an ARP reply sent to our MAC confirms; requests
// and broadcast replies only refresh the address (STALE).
type nudState uint8

const (
	nudNone       nudState = iota // just made
	nudIncomplete                 // asked, no answer yet; packets wait
	nudReachable                  // confirmed within the reachable time
	nudStale                      // known, not confirmed lately; used as is
	nudDelay                      // stale and in use: waiting a while for a confirmation
	nudProbe                      // asking the known address itself, by unicast
	nudFailed                     // no answer; packets to it are dropped until the next try
)

var nudNames = [...]string{"NONE", "INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED"}

func (st nudState) String() string {
	if int(st) < len(nudNames) {
		return nudNames[st]
	}
	return "nud?"
}

// valid reports whether the entry has an address to send to (NUD_VALID).
func (st nudState) valid() bool {
	return st == nudReachable || st == nudStale || st == nudDelay || st == nudProbe
}

// timed reports whether a timer runs in this state (NUD_IN_TIMER).
func (st nudState) timed() bool {
	return st == nudIncomplete || st == nudReachable || st == nudDelay || st == nudProbe
}

// send sends m to e's address, or holds it while the address is sought
// (neigh_resolve_output with __neigh_event_send).
func (n *neighbours) send(dev *device, e *neighbour, m engine.Mbuf, now int64) {
	e.used = now
	switch e.state {
	case nudReachable, nudDelay, nudProbe:
	case nudStale:
		// In use again: give upper layers DelayFirstProbe to confirm it
		// before asking.
		e.state, e.updated = nudDelay, now
		n.timers.arm(&e.timer, now+int64(n.cfg.DelayFirstProbe))
	case nudIncomplete:
		n.enqueue(e, m)
		return
	default: // NONE, FAILED: start asking
		e.state, e.updated = nudIncomplete, now
		e.probes = n.cfg.UnicastProbes // so that every request is broadcast
		n.timers.arm(&e.timer, now+max(int64(n.cfg.RetryInterval), minTimerStep))
		n.enqueue(e, m)
		n.probe(dev, e)
		return
	}
	n.s.linkOutput(dev, e.mac, eth.TypeIPv4, m)
}

// update applies what we heard about e's address (neigh_update): mac, with
// state nudReachable when the neighbour confirmed itself to us or nudStale
// when it merely spoke. Without override a different mac does not replace
// a valid one. Packets waiting for the address leave once it is known.
func (n *neighbours) update(e *neighbour, mac eth.MAC, state nudState, override bool, now int64) {
	old := e.state
	if old.valid() {
		if mac != e.mac && !override {
			return
		}
		if mac == e.mac && state == nudStale {
			state = old // nothing new: keep the timers running
		}
	}
	if state == nudReachable {
		e.confirmed = now
	}
	if state != old || mac != e.mac {
		e.updated = now
	}
	if state != old {
		n.timers.cancel(&e.timer)
		if state == nudReachable {
			n.timers.arm(&e.timer, now+n.reachable)
		}
		e.state = state
	}
	if mac != e.mac {
		e.mac = mac
		if state != nudReachable {
			e.confirmed = now - 2*int64(n.cfg.Reachable)
		}
	}
	if state != old && !old.valid() && len(e.queue) > 0 {
		n.flushQueue(e, now)
	}
}

// flushQueue sends the packets that waited for e's address, now known.
func (n *neighbours) flushQueue(e *neighbour, now int64) {
	q := e.queue
	n.s.held.Uncharge(e.queueSegs)
	e.queue, e.queueBytes, e.queueSegs = nil, 0, 0
	dev := n.s.devs[e.key.dev]
	for _, m := range q {
		n.send(dev, e, m, now)
	}
	if e.queue == nil {
		clear(q)
		e.queue = q[:0]
	}
}

// expire is e's timer (neigh_timer_handler): it moves REACHABLE, DELAY,
// INCOMPLETE and PROBE entries on as time passes, asks again, and gives up.
func (n *neighbours) expire(e *neighbour, now int64) {
	retrans := max(int64(n.cfg.RetryInterval), minTimerStep)
	delay := int64(n.cfg.DelayFirstProbe)
	var next int64
	switch e.state {
	case nudReachable:
		switch {
		case now <= e.confirmed+n.reachable:
			next = e.confirmed + n.reachable // confirmed again meanwhile
		case now <= e.used+delay:
			e.state, e.updated = nudDelay, now
			next = now + delay
		default:
			e.state, e.updated = nudStale, now
			return
		}
	case nudDelay:
		if now <= e.confirmed+delay {
			e.state, e.updated = nudReachable, now
			next = e.confirmed + n.reachable
		} else {
			e.state, e.updated = nudProbe, now
			e.probes = 0
			next = now + retrans
		}
	case nudIncomplete, nudProbe:
		next = now + retrans
	default:
		return
	}
	if (e.state == nudIncomplete || e.state == nudProbe) && e.probes >= n.maxProbes(e) {
		e.state = nudFailed
		n.s.stats.ARPResolveFailed++
		// Linux also sends ICMP host unreachable for each dropped packet
		// (arp_error_report); we only count them.
		n.s.stats.ARPQueueDrops += uint64(n.dropQueue(e))
		return
	}
	n.timers.arm(&e.timer, max(next, now+minTimerStep))
	if e.state == nudIncomplete || e.state == nudProbe {
		n.probe(n.s.devs[e.key.dev], e)
	}
}

// maxProbes is how many requests an entry sends before it fails
// (neigh_max_probes): INCOMPLETE counts from UnicastProbes up to that plus
// Retries, PROBE from 0 up to UnicastProbes (mcast_reprobes is 0).
func (n *neighbours) maxProbes(e *neighbour) int {
	if e.state == nudProbe {
		return n.cfg.UnicastProbes
	}
	return n.cfg.UnicastProbes + n.cfg.Retries
}

// probe sends one request for e's address (neigh_probe, arp_solicit): the
// first UnicastProbes of a period go to the known address, the rest are
// broadcast.
func (n *neighbours) probe(dev *device, e *neighbour) {
	dst := eth.Broadcast
	if e.probes < n.cfg.UnicastProbes {
		dst = e.mac
	}
	n.request(dev, dst, e.key.ip)
	e.probes++
}

package neigh

import (
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// nudState is an entry's state, Linux's NUD states (Neighbour
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
	nudNone       nudState = iota // just made, or removed
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

// connected reports whether a packet goes to the entry's address with
// nothing else to do (NUD_CONNECTED, and DELAY and PROBE, whose timers
// already run): the per-packet path's test.
func (st nudState) connected() bool {
	return st == nudReachable || st == nudDelay || st == nudProbe
}

// timed reports whether a timer runs in this state (NUD_IN_TIMER).
func (st nudState) timed() bool {
	return st == nudIncomplete || st == nudReachable || st == nudDelay || st == nudProbe
}

// send sends m to e's address, or holds it while the address is sought
// (__neigh_event_send, the slow half of neigh_resolve_output). Called
// under mu.
func (t *Table) send(e *entry, m engine.Mbuf, now int64) {
	e.use(now)
	mac, st := unpack(e.link.Load())
	switch st {
	case nudReachable, nudDelay, nudProbe:
	case nudStale:
		// In use again: give upper layers DelayFirstProbe to confirm it
		// before asking.
		e.set(mac, nudDelay)
		e.updated = now
		t.arm(&e.timer, now, int64(t.cfg.DelayFirstProbe))
	case nudIncomplete:
		t.enqueue(e, m)
		return
	default: // NONE, FAILED: start asking
		e.set(mac, nudIncomplete)
		e.updated = now
		e.probes = t.cfg.UnicastProbes // so that every request is broadcast
		t.arm(&e.timer, now, int64(t.cfg.RetryInterval))
		t.enqueue(e, m)
		t.probe(e)
		return
	}
	t.link.Output(e.dev, mac, eth.TypeIPv4, m)
}

// update applies what we heard about e's address (neigh_update): mac, with
// state nudReachable when the neighbour confirmed itself to us or nudStale
// when it merely spoke. Without override a different mac does not replace
// a valid one. Packets waiting for the address leave once it is known.
// Called under mu.
func (t *Table) update(e *entry, mac eth.MAC, state nudState, override bool, now int64) {
	oldMAC, old := unpack(e.link.Load())
	if old.valid() {
		if mac != oldMAC && !override {
			return
		}
		if mac == oldMAC && state == nudStale {
			state = old // nothing new: keep the timers running
		}
	}
	if state == nudReachable {
		e.confirmed.Store(now)
	}
	if state != old || mac != oldMAC {
		e.updated = now
	}
	if state != old {
		t.wheel.Cancel(&e.timer)
		if state == nudReachable {
			t.arm(&e.timer, now, t.reachable)
		}
	}
	if mac != oldMAC && state != nudReachable {
		e.confirmed.Store(now - 2*int64(t.cfg.Reachable))
	}
	e.set(mac, state)
	if state != old && !old.valid() && len(e.queue) > 0 {
		t.flushQueue(e, now)
	}
}

// expire is e's timer (neigh_timer_handler): it moves REACHABLE, DELAY,
// INCOMPLETE and PROBE entries on as time passes, asks again, and gives up.
// Called under mu, from Advance.
func (t *Table) expire(e *entry, now int64) {
	retrans := max(int64(t.cfg.RetryInterval), minTimerStep)
	delay := int64(t.cfg.DelayFirstProbe)
	mac, st := unpack(e.link.Load())
	confirmed := e.confirmed.Load()
	var next int64
	switch st {
	case nudReachable:
		switch {
		case now <= confirmed+t.reachable:
			next = confirmed + t.reachable // confirmed again meanwhile
		case now <= e.used.Load()+delay:
			st, e.updated = nudDelay, now
			next = now + delay
		default:
			e.set(mac, nudStale)
			e.updated = now
			return
		}
	case nudDelay:
		if now <= confirmed+delay {
			st, e.updated = nudReachable, now
			next = confirmed + t.reachable
		} else {
			st, e.updated = nudProbe, now
			e.probes = 0
			next = now + retrans
		}
	case nudIncomplete, nudProbe:
		next = now + retrans
	default:
		return
	}
	if (st == nudIncomplete || st == nudProbe) && e.probes >= t.maxProbes(st) {
		e.set(mac, nudFailed)
		t.stats.ResolveFailed++
		// Linux also sends ICMP host unreachable for each dropped packet
		// (arp_error_report); we only count them.
		t.stats.QueueDrops += uint64(t.dropQueue(e))
		return
	}
	e.set(mac, st)
	t.wheel.Arm(&e.timer, max(next, now+minTimerStep))
	if st == nudIncomplete || st == nudProbe {
		t.probe(e)
	}
}

// maxProbes is how many requests an entry in st sends before it fails
// (neigh_max_probes): INCOMPLETE counts from UnicastProbes up to that plus
// Retries, PROBE from 0 up to UnicastProbes (mcast_reprobes is 0).
func (t *Table) maxProbes(st nudState) int {
	if st == nudProbe {
		return t.cfg.UnicastProbes
	}
	return t.cfg.UnicastProbes + t.cfg.Retries
}

// probe sends one request for e's address (neigh_probe, arp_solicit): the
// first UnicastProbes of a period go to the known address, the rest are
// broadcast.
func (t *Table) probe(e *entry) {
	dst := eth.Broadcast
	if e.probes < t.cfg.UnicastProbes {
		dst = e.mac()
	}
	t.request(e.dev, dst, e.ip)
	e.probes++
}

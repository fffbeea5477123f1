package socket

import (
	"strconv"
	"strings"
)

// Events are readiness conditions, as EPOLLIN and friends, and the flags a
// poller registration takes beside them.
type Events uint32

// Conditions. A socket's Readiness reports them; a Poller reports Error and
// Hangup whether or not they were asked for, as epoll does.
const (
	Readable   Events = 1 << iota // data, an end of stream or a pending error to read (EPOLLIN)
	Writable                      // room to write (EPOLLOUT)
	Hangup                        // closed both ways, or reset (EPOLLHUP)
	Error                         // a pending error (EPOLLERR)
	ReadHangup                    // the peer will send no more: a FIN (EPOLLRDHUP)
)

// Registration flags for Poller.Add and Poller.Modify.
const (
	// EdgeTriggered reports a socket once per readiness change signalled
	// since the last report, not at every Wait while it stays ready
	// (EPOLLET). Its reader must drain it before waiting again.
	EdgeTriggered Events = 1 << 30
	// OneShot reports a socket once, then nothing until Modify re-arms it
	// (EPOLLONESHOT).
	OneShot Events = 1 << 29
)

const (
	// allEvents is every condition: the mask of a callback that does not
	// know what changed (a state change), as a wake-up without a key is.
	allEvents = Readable | Writable | Hangup | Error | ReadHangup
	flags     = EdgeTriggered | OneShot
)

var eventNames = []struct {
	e    Events
	name string
}{
	{Readable, "Readable"}, {Writable, "Writable"}, {Hangup, "Hangup"}, {Error, "Error"},
	{ReadHangup, "ReadHangup"}, {EdgeTriggered, "EdgeTriggered"}, {OneShot, "OneShot"},
}

// String names the set bits, "Readable|Writable"; "0" for none.
func (e Events) String() string {
	if e == 0 {
		return "0"
	}
	var b strings.Builder
	for _, n := range eventNames {
		if e&n.e != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
			e &^= n.e
		}
	}
	if e != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("0x")
		b.WriteString(strconv.FormatUint(uint64(e), 16))
	}
	return b.String()
}

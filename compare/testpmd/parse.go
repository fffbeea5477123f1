package testpmd

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// testpmd's text output differs between DPDK releases (Rx-bps columns came
// later, headers moved, an ANSI clear-screen precedes each periodic print),
// so the parser keys on the few labels every release prints —
// "NIC statistics for port N", "Rx-pps:", "RX-packets:", "Forward statistics
// for port N" — wherever they stand on a line, and ignores everything else.

// PortStats is one port's figures in one periodic statistics print.
type PortStats struct {
	Port      int
	RxPackets uint64 // cumulative since the port started
	RxMissed  uint64
	TxPackets uint64
	RxPPS     uint64 // rate since the port's previous print
	TxPPS     uint64
	HasRate   bool // an Rx-pps line was seen
}

// Show is one periodic print of every port's statistics (--stats-period).
type Show struct {
	At    time.Time // when its first line was read; zero when parsed from a file
	Ports []PortStats
}

func (s *Show) has(port int) bool {
	for _, p := range s.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// Forward is the forwarding engine's totals, printed once when forwarding
// stops: per port, or for all ports when Port is -1.
type Forward struct {
	Port      int
	RxPackets uint64
	RxDropped uint64
	TxPackets uint64
	TxDropped uint64
}

// Output is what testpmd printed, parsed.
type Output struct {
	Version string // "DPDK 22.11.11", from EAL's -v line
	Shows   []Show
	Forward []Forward // per port, in print order
	Total   *Forward  // the accumulated totals, nil when not printed
	Errors  []string  // lines that report a failure (EAL errors, "Cause:")
	Done    bool      // testpmd got as far as "Bye..."
}

// Parser reads testpmd's output a line at a time, so a run can watch the
// prints arrive and decide when it has enough.
type Parser struct {
	out     Output
	section int
	fwd     *Forward
	newShow bool
}

const (
	secNone = iota
	secNIC
	secForward
)

var (
	reNICPort = regexp.MustCompile(`NIC statistics for port\s+(\d+)`)
	reFwdPort = regexp.MustCompile(`Forward statistics for port\s+(\d+)`)
	reField   = regexp.MustCompile(`([RT]X-(?:packets|missed|dropped)|[RT]x-pps):\s*(\d+)`)
	reVersion = regexp.MustCompile(`RTE Version:\s*'([^']+)'`)
	reError   = regexp.MustCompile(`^\s*(EAL: .*(?i:error|fatal|cannot|fail|invalid|not supported)|.*Cause:|Fail|Invalid|Error|No probed|testpmd: .*(?i:fail|cannot|error))`)
)

// Line feeds one line of output, read at time at.
func (p *Parser) Line(line string, at time.Time) {
	switch {
	case strings.Contains(line, "Port statistics ="):
		p.newShow = true
		p.section = secNone
		return
	case reNICPort.MatchString(line):
		port, _ := strconv.Atoi(reNICPort.FindStringSubmatch(line)[1])
		n := len(p.out.Shows)
		// A print without the "Port statistics" header is told apart by a
		// port appearing twice.
		if p.newShow || n == 0 || p.out.Shows[n-1].has(port) {
			p.out.Shows = append(p.out.Shows, Show{At: at})
			n++
		}
		p.newShow = false
		show := &p.out.Shows[n-1]
		show.Ports = append(show.Ports, PortStats{Port: port})
		p.section = secNIC
		return
	case reFwdPort.MatchString(line):
		port, _ := strconv.Atoi(reFwdPort.FindStringSubmatch(line)[1])
		p.out.Forward = append(p.out.Forward, Forward{Port: port})
		p.fwd = &p.out.Forward[len(p.out.Forward)-1]
		p.section = secForward
		return
	case strings.Contains(line, "Accumulated forward statistics"):
		p.out.Total = &Forward{Port: -1}
		p.fwd = p.out.Total
		p.section = secForward
		return
	case strings.HasPrefix(strings.TrimSpace(line), "Bye"):
		p.out.Done = true
	case isRule(line):
		p.section = secNone
		return
	}
	if m := reVersion.FindStringSubmatch(line); m != nil {
		p.out.Version = m[1]
	}
	if reError.MatchString(line) {
		p.out.Errors = append(p.out.Errors, strings.TrimSpace(line))
	}
	fields := reField.FindAllStringSubmatch(line, -1)
	if len(fields) == 0 {
		return
	}
	switch p.section {
	case secNIC:
		show := &p.out.Shows[len(p.out.Shows)-1]
		ps := &show.Ports[len(show.Ports)-1]
		for _, f := range fields {
			v, _ := strconv.ParseUint(f[2], 10, 64)
			switch f[1] {
			case "RX-packets":
				ps.RxPackets = v
			case "RX-missed":
				ps.RxMissed = v
			case "TX-packets":
				ps.TxPackets = v
			case "Rx-pps":
				ps.RxPPS, ps.HasRate = v, true
			case "Tx-pps":
				ps.TxPPS = v
			}
		}
	case secForward:
		for _, f := range fields {
			v, _ := strconv.ParseUint(f[2], 10, 64)
			switch f[1] {
			case "RX-packets":
				p.fwd.RxPackets = v
			case "RX-dropped":
				p.fwd.RxDropped = v
			case "TX-packets":
				p.fwd.TxPackets = v
			case "TX-dropped":
				p.fwd.TxDropped = v
			}
		}
	}
}

// isRule reports a line drawn only of #, -, + or = (testpmd closes each
// statistics box with one); the opening rules carry a title and are not.
func isRule(line string) bool {
	s := strings.TrimSpace(line)
	if len(s) < 8 {
		return false
	}
	return strings.Trim(s, "#-+=") == ""
}

// Output returns what has been parsed so far.
func (p *Parser) Output() *Output { return &p.out }

// Parse reads a whole captured output.
func Parse(r io.Reader) (*Output, error) {
	var p Parser
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.Line(sc.Text(), time.Time{})
	}
	return p.Output(), sc.Err()
}

// Sample is the forwarding rate over one stats period: the sum of Rx-pps
// over the ports, that is packets the forwarding core received per second.
type Sample struct {
	From, To time.Time // the period, by when its prints were read
	RxPPS    float64
	TxPPS    float64
}

// Samples returns one sample per print that has a previous print to measure
// from. A port's first print always shows 0 pps (testpmd has no earlier
// reading to subtract), so it is left out rather than reported as a zero.
// Periods that began before notBefore (the end of a warm-up) are left out
// too; a zero notBefore keeps them all.
func (o *Output) Samples(notBefore time.Time) []Sample {
	last := map[int]time.Time{}
	var out []Sample
	for _, show := range o.Shows {
		var s Sample
		n := 0
		for _, ps := range show.Ports {
			prev, seen := last[ps.Port]
			last[ps.Port] = show.At
			if !seen || !ps.HasRate || prev.Before(notBefore) {
				continue
			}
			if n == 0 || prev.Before(s.From) {
				s.From = prev
			}
			s.RxPPS += float64(ps.RxPPS)
			s.TxPPS += float64(ps.TxPPS)
			n++
		}
		if n > 0 {
			s.To = show.At
			out = append(out, s)
		}
	}
	return out
}

// RxMissed is the sum over ports of RX-missed in the last print.
func (o *Output) RxMissed() uint64 {
	if len(o.Shows) == 0 {
		return 0
	}
	var n uint64
	for _, ps := range o.Shows[len(o.Shows)-1].Ports {
		n += ps.RxMissed
	}
	return n
}

// Window is what the ports received over consecutive statistics intervals:
// the increase of their RX-packets counters, and how long the intervals took.
type Window struct {
	Packets   uint64  // RX-packets gained over the intervals, summed over the ports
	Seconds   float64 // the intervals' length
	Intervals int     // how many intervals
}

// Rate is packets per second over the window; 0 for an empty one.
func (w Window) Rate() float64 {
	if w.Seconds <= 0 {
		return 0
	}
	return float64(w.Packets) / w.Seconds
}

// Window sums the counter deltas between consecutive prints whose earlier
// print came at notBefore or later (a zero notBefore takes them all).
//
// An interval's length is taken from testpmd's own clock where it can be:
// testpmd computes Rx-pps as the RX-packets delta over the nanoseconds
// between its two reads of the counter, so delta/Rx-pps is that time,
// free of the jitter of a pipe and a scheduler between testpmd and this
// reader. Where a port shows no rate, or one that disagrees with the
// prints' arrival times by more than a factor of two (not the rate of this
// delta), the arrival times are used. An interval in which a counter went
// backwards (a statistics reset) is left out.
func (o *Output) Window(notBefore time.Time) Window {
	type seen struct {
		ps PortStats
		at time.Time
	}
	last := map[int]seen{}
	var w Window
	for _, show := range o.Shows {
		var pkts uint64
		var secs float64
		ok := true
		n := 0
		for _, ps := range show.Ports {
			prev, had := last[ps.Port]
			last[ps.Port] = seen{ps, show.At}
			if !had || prev.at.Before(notBefore) {
				continue
			}
			n++
			if ps.RxPackets < prev.ps.RxPackets {
				ok = false
				continue
			}
			d := ps.RxPackets - prev.ps.RxPackets
			arrival := show.At.Sub(prev.at).Seconds()
			s := arrival
			if ps.HasRate && ps.RxPPS > 0 {
				own := float64(d) / float64(ps.RxPPS)
				if arrival <= 0 || (own > arrival/2 && own < arrival*2) {
					s = own
				}
			}
			pkts += d
			secs = max(secs, s)
		}
		if n == 0 || !ok || secs <= 0 {
			continue
		}
		w.Packets += pkts
		w.Seconds += secs
		w.Intervals++
	}
	return w
}

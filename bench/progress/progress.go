// Package progress draws a one-line progress bar for a running benchmark
// scenario, so whoever runs a long suite can see that it moves and at what
// rate.
//
// On a terminal the line is redrawn in place with \r. Anywhere else (a file,
// a pipe, CI logs) redraws would pile up as garbage, so the bar instead prints
// a plain line at most once per quarter of the run, and a last one when done.
package progress

import (
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// cells is the width of the bar itself, between the brackets.
const cells = 30

// Bar is the progress line of one scenario. Its methods are meant to be
// called from one goroutine; a Bar is not safe for concurrent use. Write
// errors are ignored: progress is cosmetic and must never fail a benchmark.
type Bar struct {
	// ForceTTY makes the bar redraw in place with \r even when the writer is
	// not a terminal: for tests, and for wrappers that hide the terminal.
	// Set it before the first Update.
	ForceTTY bool

	w     io.Writer
	label string
	total time.Duration
	tty   bool
	cols  int // terminal width, 0 when unknown

	buf     []byte        // reused line buffer, so a redraw does not allocate
	elapsed time.Duration // last elapsed time given to Update
	logged  int           // non-terminal: last quarter printed, -1 for none
	drawn   int           // terminal: visible width of the last line drawn
	done    bool
}

// New returns a bar for a scenario called label that is expected to run for
// total. Whether w is a terminal is decided here, once: only an *os.File
// whose descriptor answers the terminal ioctl counts.
func New(w io.Writer, label string, total time.Duration) *Bar {
	tty, cols := terminal(w)
	return &Bar{
		w:      w,
		label:  label,
		total:  total,
		tty:    tty,
		cols:   cols,
		buf:    make([]byte, 0, 128),
		logged: -1,
	}
}

// Update shows that elapsed of the total has passed; status is a short figure
// such as "12.3 Mpps". Calls after Done are ignored.
func (b *Bar) Update(elapsed time.Duration, status string) {
	if b.done {
		return
	}
	b.elapsed = elapsed
	frac := b.fraction(elapsed)
	if b.tty || b.ForceTTY {
		b.redraw(frac, elapsed, status, false)
		return
	}
	// One line per quarter; the last quarter's line is Done's.
	q := int(frac * 4)
	if q <= b.logged || q >= 4 {
		return
	}
	b.logged = q
	b.buf = b.appendLine(b.buf[:0], frac, elapsed, status)
	b.buf = append(b.buf, '\n')
	b.w.Write(b.buf)
}

// Done draws the bar full with a final status, such as the median, and ends
// the line. Later calls to Update or Done do nothing.
func (b *Bar) Done(final string) {
	if b.done {
		return
	}
	b.done = true
	// A full bar shows the whole planned time, or what actually passed
	// when there was no plan or the run overran it.
	elapsed := b.total
	if b.elapsed > elapsed {
		elapsed = b.elapsed
	}
	if b.tty || b.ForceTTY {
		b.redraw(1, elapsed, final, true)
		return
	}
	b.buf = b.appendLine(b.buf[:0], 1, elapsed, final)
	b.buf = append(b.buf, '\n')
	b.w.Write(b.buf)
}

// redraw rewrites the terminal line, blanking whatever a longer previous
// line left behind.
func (b *Bar) redraw(frac float64, elapsed time.Duration, status string, end bool) {
	buf := append(b.buf[:0], '\r')
	buf = b.appendLine(buf, frac, elapsed, status)
	width := utf8.RuneCount(buf) - 1
	for i := width; i < b.drawn; i++ {
		buf = append(buf, ' ')
	}
	b.drawn = width
	if end {
		buf = append(buf, '\n')
		b.drawn = 0
	}
	b.buf = buf
	b.w.Write(buf)
}

// fraction is the part of the total that elapsed covers, within [0, 1]. With
// no total it stays 0 until Done.
func (b *Bar) fraction(elapsed time.Duration) float64 {
	if b.total <= 0 || elapsed <= 0 {
		return 0
	}
	if elapsed >= b.total {
		return 1
	}
	return float64(elapsed) / float64(b.total)
}

// appendLine appends "label [=====>    ]  42% 12.6s/30.0s  status". On a
// terminal of known width the label is shortened so that the line never
// wraps, since a wrapped line cannot be redrawn with \r.
func (b *Bar) appendLine(buf []byte, frac float64, elapsed time.Duration, status string) []byte {
	start := len(buf)
	buf = append(buf, " ["...)
	filled := int(frac * cells)
	for i := range cells {
		switch {
		case i < filled-1 || (i == filled-1 && filled == cells):
			buf = append(buf, '=')
		case i == filled-1:
			buf = append(buf, '>')
		default:
			buf = append(buf, ' ')
		}
	}
	buf = append(buf, "] "...)
	pct := int(frac * 100)
	if pct < 100 {
		buf = append(buf, ' ')
	}
	if pct < 10 {
		buf = append(buf, ' ')
	}
	buf = strconv.AppendInt(buf, int64(pct), 10)
	buf = append(buf, "% "...)
	buf = appendDuration(buf, elapsed)
	if b.total > 0 {
		buf = append(buf, '/')
		buf = appendDuration(buf, b.total)
	}
	if status != "" {
		buf = append(buf, "  "...)
		buf = append(buf, status...)
	}

	// Put the label in front of the rest, shortened if the terminal is
	// narrower than the line. The rest is rotated into place rather than
	// copied through a second buffer.
	rest := len(buf) - start
	room := len(b.label)
	if b.cols > 0 && (b.tty || b.ForceTTY) {
		room = max(b.cols-1-utf8.RuneCount(buf[start:]), 1)
	}
	buf = appendLabel(buf, b.label, room)
	rotate(buf[start:], rest)
	return buf
}

// appendLabel appends label, cut to at most room runes with a trailing "~"
// when it does not fit.
func appendLabel(buf []byte, label string, room int) []byte {
	if utf8.RuneCountInString(label) <= room {
		return append(buf, label...)
	}
	n := 0
	for i := range label {
		if n == room-1 {
			return append(append(buf, label[:i]...), '~')
		}
		n++
	}
	return append(buf, label...)
}

// rotate moves the first k bytes of s to its end, in place.
func rotate(s []byte, k int) {
	reverse(s[:k])
	reverse(s[k:])
	reverse(s)
}

func reverse(s []byte) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// appendDuration writes d briefly: "12.6s" under a minute, "4m05s" under an
// hour, "1h02m" beyond.
func appendDuration(buf []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		buf = strconv.AppendFloat(buf, d.Seconds(), 'f', 1, 64)
		return append(buf, 's')
	case d < time.Hour:
		s := int64(d / time.Second)
		buf = strconv.AppendInt(buf, s/60, 10)
		buf = append(buf, 'm')
		buf = append2(buf, s%60)
		return append(buf, 's')
	default:
		m := int64(d / time.Minute)
		buf = strconv.AppendInt(buf, m/60, 10)
		buf = append(buf, 'h')
		buf = append2(buf, m%60)
		return append(buf, 'm')
	}
}

// append2 appends v (0..99) as two digits.
func append2(buf []byte, v int64) []byte {
	return append(buf, byte('0'+v/10), byte('0'+v%10))
}

package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLogOutput(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "pps pollnet-pmd", 10*time.Second)
	for e := time.Duration(0); e <= 10*time.Second; e += 100 * time.Millisecond {
		b.Update(e, "12.3 Mpps")
	}
	b.Done("median 12.3 Mpps")
	b.Update(11*time.Second, "late")
	b.Done("again")

	s := out.String()
	if strings.Contains(s, "\r") {
		t.Errorf("non-terminal output has \\r: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	want := []string{"  0%", " 25%", " 50%", " 75%", "100%"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), s)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "pps pollnet-pmd [") || !strings.Contains(l, "] "+want[i]+" ") {
			t.Errorf("line %d = %q, want label and %q", i, l, want[i])
		}
	}
	if l := lines[4]; !strings.HasSuffix(l, "10.0s/10.0s  median 12.3 Mpps") || !strings.Contains(l, "["+strings.Repeat("=", cells)+"]") {
		t.Errorf("final line = %q", l)
	}
	if l := lines[2]; !strings.Contains(l, "5.0s/10.0s  12.3 Mpps") {
		t.Errorf("half-way line = %q", l)
	}
}

func TestLogOutputLateStart(t *testing.T) {
	// The first update may come well into the run; it still logs one line,
	// and Done logs the last even without updates.
	var out bytes.Buffer
	b := New(&out, "x", time.Minute)
	b.Update(50*time.Second, "")
	b.Update(55*time.Second, "")
	b.Done("")
	if got, want := out.String(), "x [========================>     ]  83% 50.0s/1m00s\nx ["+strings.Repeat("=", cells)+"] 100% 1m00s/1m00s\n"; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestForceTTY(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "udp-echo kernel", 10*time.Second)
	b.ForceTTY = true

	b.Update(3*time.Second, "12.3 Mpps")
	first := out.String()
	want := "\rudp-echo kernel [========>                     ]  30% 3.0s/10.0s  12.3 Mpps"
	if first != want {
		t.Errorf("first draw\n%q\nwant\n%q", first, want)
	}

	// A shorter status must blank the tail of the longer one before it.
	out.Reset()
	b.Update(4*time.Second, "9 Mpps")
	second := out.String()
	if !strings.HasPrefix(second, "\rudp-echo kernel [") || !strings.Contains(second, " 40% 4.0s/10.0s  9 Mpps") {
		t.Errorf("second draw = %q", second)
	}
	if len(second) != len(first) || !strings.HasSuffix(second, "Mpps   ") {
		t.Errorf("second draw does not cover the first: %q after %q", second, first)
	}

	out.Reset()
	b.Done("done")
	final := out.String()
	if !strings.HasPrefix(final, "\r") || !strings.HasSuffix(final, "\n") || strings.Count(final, "\n") != 1 {
		t.Errorf("final draw = %q", final)
	}
	if !strings.Contains(final, "["+strings.Repeat("=", cells)+"] 100% 10.0s/10.0s  done") {
		t.Errorf("final draw is not full: %q", final)
	}
	out.Reset()
	b.Update(5*time.Second, "after")
	b.Done("after")
	if out.Len() != 0 {
		t.Errorf("output after Done: %q", out.String())
	}
}

func TestNarrowTerminal(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "tcp-stream pollnet-napi wire size=1448 gro=on tso=on", 30*time.Second)
	b.ForceTTY = true
	b.cols = 80
	b.Update(12*time.Second, "9.41 Gbit/s µ")
	line := strings.TrimPrefix(out.String(), "\r")
	if n := utf8.RuneCountInString(line); n != 79 {
		t.Errorf("line is %d columns on an 80-column terminal: %q", n, line)
	}
	if !strings.HasPrefix(line, "tcp-stream po~ [") || !strings.HasSuffix(line, "9.41 Gbit/s µ") {
		t.Errorf("line = %q", line)
	}
}

func TestNoTotal(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "drain", 0)
	b.Update(2*time.Second, "")
	b.Update(4*time.Second, "")
	b.Done("ok")
	want := "drain [                              ]   0% 2.0s\ndrain [" + strings.Repeat("=", cells) + "] 100% 4.0s  ok\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestAppendDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0.0s",
		0:                                     "0.0s",
		1234 * time.Millisecond:               "1.2s",
		59*time.Second + 940*time.Millisecond: "59.9s",
		time.Minute:                           "1m00s",
		4*time.Minute + 5*time.Second:         "4m05s",
		time.Hour + 2*time.Minute + 9*time.Second: "1h02m",
	} {
		if got := string(appendDuration(nil, d)); got != want {
			t.Errorf("appendDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAppendLabel(t *testing.T) {
	for _, c := range []struct {
		label string
		room  int
		want  string
	}{
		{"abcdef", 10, "abcdef"},
		{"abcdef", 6, "abcdef"},
		{"abcdef", 4, "abc~"},
		{"µsµsµs", 3, "µs~"},
		{"abcdef", 1, "~"},
	} {
		if got := string(appendLabel(nil, c.label, c.room)); got != c.want {
			t.Errorf("appendLabel(%q, %d) = %q, want %q", c.label, c.room, got, c.want)
		}
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	for _, tty := range []bool{true, false} {
		b := New(io.Discard, "pps pollnet-pmd wire", time.Hour)
		b.ForceTTY = tty
		e := time.Duration(0)
		allocs := testing.AllocsPerRun(1000, func() {
			e += 100 * time.Millisecond
			b.Update(e, "12.3 Mpps")
		})
		if allocs != 0 {
			t.Errorf("ForceTTY=%v: Update allocates %v times per call", tty, allocs)
		}
	}
}

func TestTerminalDetection(t *testing.T) {
	if tty, _ := terminal(&bytes.Buffer{}); tty {
		t.Error("a bytes.Buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if tty, _ := terminal(f); tty {
		t.Error("a regular file is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if tty, _ := terminal(w); tty {
		t.Error("a pipe is a terminal")
	}
	var nilFile *os.File
	if tty, _ := terminal(nilFile); tty {
		t.Error("a nil *os.File is a terminal")
	}
}

package afxdp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
)

// held is what the process holds that a port makes: socket fds, mappings of
// a socket (AF_XDP rings) and UMEM mappings, each keyed by inode, so files
// other goroutines open or close meanwhile change nothing.
type held struct {
	fds, rings, umems map[string]bool
}

func holdings(t *testing.T) held {
	t.Helper()
	h := held{fds: map[string]bool{}, rings: map[string]bool{}, umems: map[string]bool{}}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			h.fds[l] = true
		}
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && strings.HasPrefix(f[5], "socket:["):
			h.rings[f[5]] = true
		case len(f) >= 6 && strings.Contains(f[5], umemName):
			h.umems["inode "+f[4]] = true
		}
	}
	return h
}

func newKeys(before, after map[string]bool) []string {
	var out []string
	for k := range after {
		if !before[k] {
			out = append(out, k)
		}
	}
	return out
}

func stillIn(keys []string, m map[string]bool) []string {
	var out []string
	for _, k := range keys {
		if m[k] {
			out = append(out, k)
		}
	}
	return out
}

// pingBothWays sends echo requests through the port and checks every reply
// comes back through it: frames out of the UMEM and into it.
func pingBothWays(t *testing.T, l *vethLink) {
	t.Helper()
	const burst = 16
	frames := make([][]byte, burst)
	for i := range frames {
		frames[i] = l.frame(unix.IPPROTO_ICMP, 0, i, []byte("bind mode ping"))
	}
	pkts := make([]engine.Mbuf, burst)
	if got := pingRound(l.port, l.mbufs(t, frames...), pkts, time.Now().Add(3*time.Second)); got != burst {
		t.Fatalf("%d of %d echo replies came back through the socket", got, burst)
	}
}

func TestBindAutoOnVethFallsBackToCopyModeOnAFreshSocketAndLeaksNothing(t *testing.T) {
	l := newVeth(t)
	h0 := holdings(t)
	if err := l.open(t, Config{Interface: "xa0", RingSize: 256, PoolSize: 1024}); err != nil {
		t.Fatalf("open with BindAuto: %v", err)
	}
	st, err := l.port.Stats(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.ZeroCopy || st.ZeroCopyRefused == "" {
		t.Fatalf("queue 0: zero-copy %v, refusal %q; want copy mode after a refused zero-copy bind (veth has none)", st.ZeroCopy, st.ZeroCopyRefused)
	}
	t.Logf("queue 0 in copy mode; zero-copy refused: %s", st.ZeroCopyRefused)

	// Two sockets were made, the refused one and the bound one: only the
	// bound one, its rings and its UMEM may remain.
	h1 := holdings(t)
	fds, rings, umems := newKeys(h0.fds, h1.fds), newKeys(h0.rings, h1.rings), newKeys(h0.umems, h1.umems)
	if len(fds) != 1 || len(rings) != 1 || len(umems) != 1 {
		t.Fatalf("after the fallback: new sockets %v, mapped sockets %v, UMEMs %v; want one of each (the refused socket released)", fds, rings, umems)
	}
	if fds[0] != rings[0] {
		t.Errorf("the socket open (%s) is not the one whose rings are mapped (%s)", fds[0], rings[0])
	}

	pingBothWays(t, l)
	st, err = l.port.Stats(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.RxCopied == 0 || st.TxCopied == 0 {
		t.Errorf("copied %d bytes in, %d out: frames did not flow both ways", st.RxCopied, st.TxCopied)
	}

	if err := l.port.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := holdings(t)
	for what, left := range map[string][]string{"socket": stillIn(fds, h2.fds), "ring mapping": stillIn(rings, h2.rings), "UMEM": stillIn(umems, h2.umems)} {
		if len(left) > 0 {
			t.Errorf("after Close, %s still held: %v", what, left)
		}
	}
}

func TestBindZeroCopyOnVethIsRefusedNamingTheInterfaceAndLeavesNothingBehind(t *testing.T) {
	l := newVeth(t)
	h0 := holdings(t)
	err := l.open(t, Config{Interface: "xa0", Bind: BindZeroCopy, RingSize: 256, PoolSize: 1024})
	if err == nil {
		t.Fatal("Open with BindZeroCopy on veth succeeded; veth has no zero-copy bind")
	}
	msg := err.Error()
	if !errors.Is(err, ErrNoZeroCopy) || !strings.Contains(msg, "xa0") || !strings.Contains(msg, "no zero-copy") || !strings.Contains(msg, "BindCopy") {
		t.Fatalf("error %q: want ErrNoZeroCopy naming xa0 and pointing at copy mode", msg)
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Errorf("error %q does not carry the kernel's errno", msg)
	}
	t.Logf("refused: %v", err)
	h1 := holdings(t)
	if fds, rings, umems := newKeys(h0.fds, h1.fds), newKeys(h0.rings, h1.rings), newKeys(h0.umems, h1.umems); len(fds)+len(rings)+len(umems) > 0 {
		t.Errorf("after the refused Open: sockets %v, mapped sockets %v, UMEMs %v still held", fds, rings, umems)
	}
	out, err := l.ours.Exec("ip", "link", "show", "xa0")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "xdp") {
		t.Errorf("an XDP program is left attached after the refused Open:\n%s", out)
	}
}

func TestBindCopyBindsInCopyModeWithoutTryingZeroCopy(t *testing.T) {
	for _, mode := range []Mode{Generic, Native} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newVeth(t)
			if err := l.open(t, Config{Interface: "xa0", Mode: mode, Bind: BindCopy, RingSize: 256, PoolSize: 1024}); err != nil {
				t.Fatalf("open with BindCopy: %v", err)
			}
			st, err := l.port.Stats(0)
			if err != nil {
				t.Fatal(err)
			}
			if st.ZeroCopy || st.ZeroCopyRefused != "" {
				t.Fatalf("zero-copy %v, refusal %q: want copy mode, zero-copy never asked", st.ZeroCopy, st.ZeroCopyRefused)
			}
			pingBothWays(t, l)
		})
	}
}

func TestAnUnknownBindModeIsRefused(t *testing.T) {
	_, err := Open(Config{Interface: "lo", Bind: BindZeroCopy + 1})
	if err == nil || !strings.Contains(err.Error(), "bind mode") {
		t.Fatalf("Open with bind mode %d: %v, want an error about the bind mode", BindZeroCopy+1, err)
	}
}

func TestOnlyARefusedZeroCopyBindCountsAsTheDriverHavingNone(t *testing.T) {
	wrap := func(flags uint16, errno unix.Errno) error {
		return &bindError{flags: flags, err: fmt.Errorf("afxdp: bind: %w", errno)}
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{wrap(unix.XDP_ZEROCOPY, unix.EOPNOTSUPP), true},
		{wrap(unix.XDP_ZEROCOPY, unix.EINVAL), true},
		{wrap(unix.XDP_ZEROCOPY, unix.EPROTONOSUPPORT), true},
		{wrap(unix.XDP_ZEROCOPY, unix.EBUSY), false},  // another socket has the queue
		{wrap(unix.XDP_COPY, unix.EOPNOTSUPP), false}, // not a zero-copy bind
		{fmt.Errorf("register UMEM: %w", unix.EINVAL), false},
	} {
		if got := refusesZeroCopy(c.err); got != c.want {
			t.Errorf("refusesZeroCopy(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

package stack

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func newBareStack(t *testing.T, cfg Config) *Stack {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func anyPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv4Unspecified(), port) }

func TestConsecutiveEphemeralPortsAreNotSequential(t *testing.T) {
	s := newBareStack(t, Config{Name: "ports"})
	var ports []uint16
	for i := 0; i < 16; i++ {
		c, err := s.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddrPort().Port()
		if p < 32768 || p > 60999 {
			t.Fatalf("ephemeral port %d outside 32768..60999", p)
		}
		ports = append(ports, p)
	}
	sequential := true
	for i := 1; i < len(ports); i++ {
		if ports[i] != ports[i-1]+1 {
			sequential = false
		}
	}
	if sequential {
		t.Fatalf("ephemeral ports go one by one: %v", ports)
	}
	// Another stack has another secret: it does not pick the same ports.
	s2 := newBareStack(t, Config{Name: "ports2"})
	same := true
	for i := 0; i < 4; i++ {
		c, err := s2.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatal(err)
		}
		if c.LocalAddrPort().Port() != ports[i] {
			same = false
		}
	}
	if same {
		t.Fatalf("two stacks picked the same ports %v", ports[:4])
	}
}

// TestEphemeralSearchFindsTheLastFreePort fills the default range but for
// its last port; every bind to port 0, again and again, must find it.
func TestEphemeralSearchFindsTheLastFreePort(t *testing.T) {
	s := newBareStack(t, Config{Name: "ports"})
	for p := 32768; p < 60999; p++ {
		if _, err := s.ListenUDP(anyPort(uint16(p))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		c, err := s.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatalf("bind %d with one port free: %v", i, err)
		}
		if p := c.LocalAddrPort().Port(); p != 60999 {
			t.Fatalf("bind %d got port %d, want the last free one, 60999", i, p)
		}
		c.Close()
	}
}

func TestEphemeralExhaustionSaysWhichRange(t *testing.T) {
	s := newBareStack(t, Config{Name: "ports", LocalPortRange: PortRange{Low: 40000, High: 40003}})
	seen := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		c, err := s.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatalf("bind %d of 4: %v", i, err)
		}
		p := c.LocalAddrPort().Port()
		if p < 40000 || p > 40003 || seen[p] {
			t.Fatalf("bind %d got port %d (had %v)", i, p, seen)
		}
		seen[p] = true
	}
	_, err := s.ListenUDP(anyPort(0))
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "40000-40003") {
		t.Fatalf("bind with the range used up: %v", err)
	}
}

func TestLocalPortRangeIsValidated(t *testing.T) {
	for _, r := range []PortRange{{Low: 50000, High: 40000}, {Low: 0, High: 40000}, {Low: 1000, High: 2000}, {Low: 40000}} {
		if s, err := New(Config{Name: "bad", LocalPortRange: r}); err == nil {
			s.Close()
			t.Errorf("range %d-%d accepted", r.Low, r.High)
		}
	}
	s := newBareStack(t, Config{Name: "one", LocalPortRange: PortRange{Low: 50000, High: 50000}})
	if c, err := s.ListenUDP(anyPort(0)); err != nil || c.LocalAddrPort().Port() != 50000 {
		t.Fatalf("one-port range: %v %v", c, err)
	}
}

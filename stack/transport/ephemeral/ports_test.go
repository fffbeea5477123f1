package ephemeral

import (
	"net/netip"
	"testing"

	"github.com/pollnet/pollnet/stack/siphash"
)

func newPicker(t *testing.T, r Range) *Picker {
	t.Helper()
	p, err := NewPicker(r, siphash.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// taken is a set of bound ports.
type taken map[uint16]bool

func (s taken) free(p uint16) bool { return !s[p] }

var anyAddr = netip.IPv4Unspecified()

func TestConsecutiveEphemeralPortsAreNotSequential(t *testing.T) {
	p := newPicker(t, DefaultRange)
	used := taken{}
	var ports []uint16
	for i := 0; i < 16; i++ {
		port, err := p.Pick(anyAddr, netip.AddrPort{}, used.free)
		if err != nil {
			t.Fatal(err)
		}
		if port < 32768 || port > 60999 || used[port] {
			t.Fatalf("port %d outside 32768..60999, or taken", port)
		}
		used[port] = true
		ports = append(ports, port)
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
	// Another secret picks other ports.
	q := newPicker(t, DefaultRange)
	used2 := taken{}
	same := true
	for i := 0; i < 4; i++ {
		port, _ := q.Pick(anyAddr, netip.AddrPort{}, used2.free)
		used2[port] = true
		if port != ports[i] {
			same = false
		}
	}
	if same {
		t.Fatalf("two secrets picked the same ports %v", ports[:4])
	}
}

// TestSearchFindsTheLastFreePort fills the default range but for its last
// port; every pick, again and again, must find it.
func TestSearchFindsTheLastFreePort(t *testing.T) {
	p := newPicker(t, DefaultRange)
	used := taken{}
	for port := 32768; port < 60999; port++ {
		used[uint16(port)] = true
	}
	for i := 0; i < 4; i++ {
		port, err := p.Pick(anyAddr, netip.MustParseAddrPort("198.18.0.1:53"), used.free)
		if err != nil || port != 60999 {
			t.Fatalf("pick %d with one port free: %d %v, want 60999", i, port, err)
		}
	}
}

func TestExhaustionIsAnError(t *testing.T) {
	p := newPicker(t, Range{Low: 40000, High: 40003})
	used := taken{}
	for i := 0; i < 4; i++ {
		port, err := p.Pick(anyAddr, netip.AddrPort{}, used.free)
		if err != nil || port < 40000 || port > 40003 || used[port] {
			t.Fatalf("pick %d of 4: %d %v (had %v)", i, port, err, used)
		}
		used[port] = true
	}
	if _, err := p.Pick(anyAddr, netip.AddrPort{}, used.free); err != ErrExhausted {
		t.Fatalf("pick with the range used up: %v", err)
	}
}

func TestRangeIsValidated(t *testing.T) {
	for _, r := range []Range{{Low: 50000, High: 40000}, {Low: 0, High: 40000}, {Low: 1000, High: 2000}, {Low: 40000}} {
		if _, err := NewPicker(r, siphash.Key{}); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
	p := newPicker(t, Range{Low: 50000, High: 50000})
	if port, err := p.Pick(anyAddr, netip.AddrPort{}, taken{}.free); err != nil || port != 50000 {
		t.Fatalf("one-port range: %d %v", port, err)
	}
	if DefaultRange.String() != "32768-60999" {
		t.Fatalf("String: %q", DefaultRange.String())
	}
}

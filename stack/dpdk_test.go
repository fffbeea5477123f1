//go:build dpdk

package stack

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/dpdk"
)

// startEAL starts this test process's one EAL, or skips where it cannot.
func startEAL(t *testing.T) {
	t.Helper()
	if err := dpdk.InitEAL(dpdk.EALConfig{MemoryMB: 128}); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("DPDK's EAL did not start (not root): %v", err)
		}
		t.Fatal(err)
	}
}

func TestUDPBetweenTwoStacksOverADPDKRingPair(t *testing.T) {
	startEAL(t)
	pa, pb, err := dpdk.NewRingPair("stacks", dpdk.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var stacks []*Stack
	t.Cleanup(func() {
		for _, s := range stacks {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", s.Name(), err)
			}
		}
		for _, p := range []*dpdk.Port{pa, pb} {
			if err := p.Close(); err != nil {
				t.Errorf("close %s: %v", p.Info().Name, err)
			}
		}
	})
	for _, c := range []struct {
		name string
		port *dpdk.Port
		addr netip.Prefix
	}{{"a", pa, addrA}, {"b", pb, addrB}} {
		s, err := New(Config{Name: c.name, Interfaces: []Interface{{Port: c.port, Addr: c.addr}},
			ARP: ARPConfig{RetryInterval: 100 * time.Millisecond}, Idle: engine.IdleSpinYield})
		if err != nil {
			t.Fatal(err)
		}
		stacks = append(stacks, s)
		if err := s.Start(ModePMD, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := stacks[0].ListenUDP(ap(addrA, 5000))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := stacks[1].ListenUDP(ap(addrB, 6000))
	if err != nil {
		t.Fatal(err)
	}
	// The first waits for ARP; the last goes in fragments (MTU 1500).
	for _, size := range []int{7, 1400, 3000} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := sa.WriteToUDPAddrPort(msg, ap(addrB, 6000)); err != nil {
			t.Fatal(err)
		}
		got, from := readWithin(t, sb, 5*time.Second)
		if !bytes.Equal(got, msg) || from != ap(addrA, 5000) {
			t.Fatalf("b got %d bytes from %v, want %d from %v", len(got), from, size, ap(addrA, 5000))
		}
		if _, err := sb.WriteToUDPAddrPort(got, from); err != nil {
			t.Fatal(err)
		}
		if back, _ := readWithin(t, sa, 5*time.Second); !bytes.Equal(back, msg) {
			t.Fatalf("a got %d bytes back, want %d", len(back), size)
		}
	}
	rx, tx := engine.PortStats(pb)
	if rx.Packets == 0 || tx.Packets == 0 || rx.Dropped() != 0 {
		t.Errorf("b's port: rx %+v tx %+v", rx, tx)
	}
}

func TestTheNAPIModeRefusesADPDKPortSayingWhy(t *testing.T) {
	startEAL(t)
	p, err := dpdk.Open(dpdk.Config{Device: "net_null_napi"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := New(Config{Name: "napi", Interfaces: []Interface{{Port: p, Addr: addrA}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start(ModeNAPI, engine.AnyCore, engine.SoftirqConfig{})
	if err == nil || !strings.Contains(err.Error(), "cannot raise interrupts") {
		t.Fatalf("napi mode on a DPDK port: %v, want a refusal", err)
	}
}

package testpmd

import (
	"strings"
	"testing"
)

func TestParseEmptyBurstsReadsTheShareOfEmptyReceiveBursts(t *testing.T) {
	for _, c := range []struct {
		line string
		want float64
		ok   bool
	}{
		{"  RX-bursts : 1234567 [97% of 0 pkts + 2% of 32 pkts + 1% of other]", 0.97, true},
		{"  RX-bursts : 10 [0% of 0 pkts + 100% of 32 pkts]", 0, true},
		{"  TX-bursts : 10 [50% of 0 pkts + 50% of 32 pkts]", 0, false},
		{"  RX-bursts : 0 [0% of 0 pkts]", 0, false},
		{"  RX-bursts : 5 [140% of 0 pkts]", 0, false},
		{"RX-packets: 5", 0, false},
	} {
		got, ok := parseEmptyBursts(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %v %v, want %v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestIfaceVdevNamesThePMDAndRefusesOddInterfaces(t *testing.T) {
	v, err := IfaceVdev(IfaceForward{Vdev: VdevAFPacket, Iface: "pn-dut"})
	if err != nil || !strings.HasPrefix(v, "net_af_packet0,iface=pn-dut,") {
		t.Errorf("af_packet vdev %q, %v", v, err)
	}
	v, err = IfaceVdev(IfaceForward{Vdev: VdevAFXDP, Iface: "pn-dut"})
	if err != nil || !strings.HasPrefix(v, "net_af_xdp0,iface=pn-dut,") {
		t.Errorf("af_xdp vdev %q, %v", v, err)
	}
	v, err = IfaceVdev(IfaceForward{Vdev: VdevTAP, Iface: "pn-dut", MAC: [6]byte{2, 0x70, 0x6e, 0, 0, 0xa1}})
	if err != nil || v != "net_tap0,iface=pn-dut,mac=02:70:6e:00:00:a1" {
		t.Errorf("tap vdev %q, %v", v, err)
	}
	v, err = IfaceVdev(IfaceForward{Vdev: VdevTAP, Iface: "pn-dut"})
	if err != nil || v != "net_tap0,iface=pn-dut" {
		t.Errorf("tap vdev without a MAC %q, %v", v, err)
	}
	for _, f := range []IfaceForward{{Vdev: VdevAFXDP, Iface: "a,b=c"}, {Vdev: VdevAFXDP}, {Vdev: "net_pcap", Iface: "x"},
		{Vdev: VdevTAP, Iface: "x", MAC: [6]byte{1, 0, 0, 0, 0, 1}}} {
		if v, err := IfaceVdev(f); err == nil {
			t.Errorf("%+v gave %q", f, v)
		}
	}
}

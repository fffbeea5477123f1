package pktgen

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
)

var testSizes = []int{60, 64, 128, 1500, 9000}

// refChecksum is a plain RFC 1071 checksum over the concatenation of parts,
// written apart from the package's own helpers so a bug there shows here.
func refChecksum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		if s > 0xffff {
			s = s&0xffff + 1
		}
	}
	return ^uint16(s)
}

// ipv4HeaderOK recomputes the IPv4 header checksum of frame from scratch.
func ipv4HeaderOK(frame []byte) bool {
	return refChecksum(frame[14:34]) == 0
}

// udpChecksumOK verifies the UDP checksum of frame over the pseudo-header.
func udpChecksumOK(frame []byte) bool {
	ulen := binary.BigEndian.Uint16(frame[38:40])
	pseudo := append([]byte{}, frame[26:34]...) // source, destination
	pseudo = append(pseudo, 0, 17, byte(ulen>>8), byte(ulen))
	return refChecksum(pseudo, frame[34:34+int(ulen)]) == 0
}

func mustTemplate(t testing.TB, cfg FlowConfig) *Template {
	t.Helper()
	tm, err := NewTemplate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestTemplateFields(t *testing.T) {
	cfg := FlowConfig{
		SrcMAC:    [6]byte{0x02, 1, 2, 3, 4, 5},
		DstMAC:    [6]byte{0x02, 6, 7, 8, 9, 10},
		SrcIP:     [4]byte{198, 18, 1, 2},
		DstIP:     [4]byte{198, 19, 3, 4},
		SrcPort:   4000,
		DstPort:   5000,
		FrameSize: 128,
	}
	tm := mustTemplate(t, cfg)
	f := tm.frame
	be := binary.BigEndian
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("len", len(f), 128)
	check("Len()", tm.Len(), 128)
	check("dst MAC", [6]byte(f[0:6]), cfg.DstMAC)
	check("src MAC", [6]byte(f[6:12]), cfg.SrcMAC)
	check("ethertype", be.Uint16(f[12:]), uint16(0x0800))
	check("version/IHL", f[14], byte(0x45))
	check("TOS", f[15], byte(0))
	check("IP total length", be.Uint16(f[16:]), uint16(128-14))
	check("IP ID", be.Uint16(f[18:]), uint16(0))
	check("flags/fragment", be.Uint16(f[20:]), uint16(0))
	check("TTL", f[22], byte(64))
	check("protocol", f[23], byte(17))
	check("src IP", [4]byte(f[26:30]), cfg.SrcIP)
	check("dst IP", [4]byte(f[30:34]), cfg.DstIP)
	check("IP header checksum valid", ipv4HeaderOK(f), true)
	// The stored checksum is the one a full computation gives.
	h := append([]byte{}, f[14:34]...)
	h[10], h[11] = 0, 0
	check("IP checksum", be.Uint16(f[24:]), refChecksum(h))
	check("UDP src port", be.Uint16(f[34:]), uint16(4000))
	check("UDP dst port", be.Uint16(f[36:]), uint16(5000))
	check("UDP length", be.Uint16(f[38:]), uint16(128-34))
	check("UDP checksum", be.Uint16(f[40:]), uint16(0))
	check("stamp zero", bytes.Equal(f[42:58], make([]byte, 16)), true)
	for i := 58; i < len(f); i++ {
		if f[i] != byte(i) {
			t.Fatalf("payload byte %d = %d, want %d", i, f[i], byte(i))
		}
	}
}

func TestNewTemplateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*FlowConfig)
		want string
	}{
		{"size 59", func(c *FlowConfig) { c.FrameSize = 59 }, "60..9000"},
		{"size 0", func(c *FlowConfig) { c.FrameSize = 0 }, "60..9000"},
		{"size 9001", func(c *FlowConfig) { c.FrameSize = 9001 }, "60..9000"},
		{"flows -1", func(c *FlowConfig) { c.Flows = -1 }, "1..65535"},
		{"flows 65536", func(c *FlowConfig) { c.Flows = 65536 }, "1..65535"},
		{"ports overflow", func(c *FlowConfig) { c.SrcPort = 65000; c.Flows = 1000 }, "exceed 65535"},
	} {
		cfg := DefaultFlowConfig(60)
		tc.mod(&cfg)
		_, err := NewTemplate(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	for _, size := range []int{60, 9000} {
		cfg := DefaultFlowConfig(size)
		cfg.Flows = 0 // means 1
		if _, err := NewTemplate(cfg); err != nil {
			t.Errorf("size %d: %v", size, err)
		}
	}
	cfg := DefaultFlowConfig(60)
	cfg.SrcPort, cfg.Flows = 1, 65535
	if _, err := NewTemplate(cfg); err != nil {
		t.Errorf("ports 1..65535: %v", err)
	}
}

func TestFillParseRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range testSizes {
		for _, csum := range []bool{false, true} {
			cfg := DefaultFlowConfig(size)
			cfg.UDPChecksum = csum
			tm := mustTemplate(t, cfg)
			buf := make([]byte, 9100)
			for i := 0; i < 200; i++ {
				seq, ts := rng.Uint64(), rng.Int64()
				if i < 3 {
					seq, ts = uint64(i), int64(i)-1
				}
				n := tm.Fill(buf, seq, ts)
				if n != size {
					t.Fatalf("size %d: Fill = %d", size, n)
				}
				gs, gt, ok := Parse(buf[:n])
				if !ok || gs != seq || gt != ts {
					t.Fatalf("size %d: Parse = %d, %d, %v; want %d, %d, true", size, gs, gt, ok, seq, ts)
				}
				if !ipv4HeaderOK(buf[:n]) {
					t.Fatalf("size %d seq %d: bad IPv4 checksum", size, seq)
				}
				if got := binary.BigEndian.Uint16(buf[18:]); got != uint16(seq) {
					t.Fatalf("IP ID = %d, want %d", got, uint16(seq))
				}
				if csum {
					if !udpChecksumOK(buf[:n]) || binary.BigEndian.Uint16(buf[40:]) == 0 {
						t.Fatalf("size %d seq %d: bad UDP checksum %#04x", size, seq, binary.BigEndian.Uint16(buf[40:]))
					}
				} else if got := binary.BigEndian.Uint16(buf[40:]); got != 0 {
					t.Fatalf("UDP checksum = %#x, want 0", got)
				}
				// Everything but ID, IP checksum, source port, UDP checksum and
				// stamp is the template's.
				want := append([]byte{}, tm.frame...)
				copy(want[18:20], buf[18:20])
				copy(want[24:26], buf[24:26])
				copy(want[34:36], buf[34:36])
				copy(want[40:58], buf[40:58])
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("size %d: Fill changed bytes it should not", size)
				}
			}
		}
	}
}

func TestFillShortBuffer(t *testing.T) {
	tm := mustTemplate(t, DefaultFlowConfig(128))
	buf := make([]byte, 127)
	if n := tm.Fill(buf, 1, 1); n != 0 {
		t.Fatalf("Fill into short buffer = %d, want 0", n)
	}
	if !bytes.Equal(buf, make([]byte, 127)) {
		t.Fatal("Fill wrote into a short buffer")
	}
	tm.Stamp(buf, 1, 1)
	if !bytes.Equal(buf, make([]byte, 127)) {
		t.Fatal("Stamp wrote into a short buffer")
	}
}

// TestIncrementalChecksum runs the RFC 1624 update through every ID value,
// twice round (so the ID wraps), by re-stamping one buffer over and over,
// and compares with a full recomputation each time.
func TestIncrementalChecksum(t *testing.T) {
	for _, csum := range []bool{false, true} {
		cfg := DefaultFlowConfig(60)
		cfg.UDPChecksum = csum
		cfg.Flows = 7
		// Addresses chosen so that some header sums hit the 0xffff/0x0000 edge.
		cfg.SrcIP = [4]byte{0xff, 0xff, 0, 0}
		cfg.DstIP = [4]byte{0, 0, 0xff, 0xfe}
		tm := mustTemplate(t, cfg)
		buf := make([]byte, 60)
		tm.Fill(buf, 0, 0)
		for seq := uint64(0); seq < 2*65536+10; seq++ {
			tm.Stamp(buf, seq, int64(seq)*3)
			h := append([]byte{}, buf[14:34]...)
			h[10], h[11] = 0, 0
			want := refChecksum(h)
			got := binary.BigEndian.Uint16(buf[24:])
			if got != want {
				t.Fatalf("seq %d: IPv4 checksum %#04x, full recomputation %#04x", seq, got, want)
			}
			if csum && !udpChecksumOK(buf) {
				t.Fatalf("seq %d: bad UDP checksum", seq)
			}
		}
	}
}

func TestCsumReplace(t *testing.T) {
	// Compare eqn. 3 with recomputation on a two-word "header" for many
	// old/new pairs, including the 0x0000 and 0xffff edges.
	rng := rand.New(rand.NewPCG(3, 4))
	edge := []uint16{0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff}
	for i := 0; i < 200000; i++ {
		other, old, nw := uint16(rng.Uint32()), uint16(rng.Uint32()), uint16(rng.Uint32())
		if i < len(edge)*len(edge)*len(edge) {
			other = edge[i%len(edge)]
			old = edge[i/len(edge)%len(edge)]
			nw = edge[i/len(edge)/len(edge)]
		}
		before := refChecksum([]byte{byte(other >> 8), byte(other), byte(old >> 8), byte(old)})
		after := refChecksum([]byte{byte(other >> 8), byte(other), byte(nw >> 8), byte(nw)})
		if other == 0 && nw == 0 {
			continue // all-zero data: the ones' complement zero is ambiguous
		}
		if got := csumReplace16(before, old, nw); got != after {
			t.Fatalf("other %#x old %#x new %#x: got %#x, want %#x", other, old, nw, got, after)
		}
	}
}

func TestFlowsSpreadSourcePorts(t *testing.T) {
	for _, flows := range []int{1, 4, 100, 1000} {
		cfg := DefaultFlowConfig(60)
		cfg.SrcPort = 2000
		cfg.Flows = flows
		tm := mustTemplate(t, cfg)
		buf := make([]byte, 60)
		seen := map[uint16]int{}
		for seq := uint64(0); seq < uint64(10*flows); seq++ {
			tm.Fill(buf, seq, 0)
			p := binary.BigEndian.Uint16(buf[34:])
			if want := uint16(2000 + seq%uint64(flows)); p != want {
				t.Fatalf("flows %d seq %d: port %d, want %d", flows, seq, p, want)
			}
			seen[p]++
		}
		if len(seen) != flows {
			t.Fatalf("flows %d: %d distinct ports", flows, len(seen))
		}
		for p, c := range seen {
			if c != 10 {
				t.Fatalf("flows %d: port %d used %d times, want 10", flows, p, c)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	tm := mustTemplate(t, DefaultFlowConfig(60))
	good := make([]byte, 60)
	tm.Fill(good, 42, 7)
	if _, _, ok := Parse(good); !ok {
		t.Fatal("good frame rejected")
	}
	// Ethernet padding after the IP datagram is fine.
	padded := append(append([]byte{}, good...), 0, 0, 0, 0)
	if s, _, ok := Parse(padded); !ok || s != 42 {
		t.Fatal("padded frame rejected")
	}
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"nil", func([]byte) []byte { return nil }},
		{"truncated stamp", func(b []byte) []byte { return b[:57] }},
		{"truncated datagram", func(b []byte) []byte { return b[:59] }},
		{"VLAN", func(b []byte) []byte { b[12], b[13] = 0x81, 0x00; return b }},
		{"IPv6 ethertype", func(b []byte) []byte { b[12], b[13] = 0x86, 0xdd; return b }},
		{"IP options", func(b []byte) []byte { b[14] = 0x46; return b }},
		{"version 6", func(b []byte) []byte { b[14] = 0x65; return b }},
		{"TCP", func(b []byte) []byte { b[23] = 6; return b }},
		{"more fragments", func(b []byte) []byte { b[20] = 0x20; return b }},
		{"fragment offset", func(b []byte) []byte { b[21] = 1; return b }},
		{"IP length short", func(b []byte) []byte { b[16], b[17] = 0, 43; return b }},
		{"IP length long", func(b []byte) []byte { b[16], b[17] = 0, 47; return b }},
		{"UDP length short", func(b []byte) []byte { b[38], b[39] = 0, 23; return b }},
		{"UDP length long", func(b []byte) []byte { b[38], b[39] = 0, 27; return b }},
	} {
		b := tc.mod(append([]byte{}, good...))
		if _, _, ok := Parse(b); ok {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// DF set is still a whole datagram.
	df := append([]byte{}, good...)
	df[20] = 0x40
	if _, _, ok := Parse(df); !ok {
		t.Error("DF frame rejected")
	}
}

func TestHotPathAllocs(t *testing.T) {
	cfg := DefaultFlowConfig(60)
	cfg.Flows = 3
	cfg.UDPChecksum = true
	tm := mustTemplate(t, cfg)
	buf := make([]byte, 60)
	var seq uint64
	var sink Sink
	var h Histogram
	p := NewPacer(1e6, 32)
	var now int64
	for name, f := range map[string]func(){
		"Fill":  func() { seq++; tm.Fill(buf, seq, int64(seq)) },
		"Stamp": func() { seq++; tm.Stamp(buf, seq, int64(seq)) },
		"Parse": func() { Parse(buf) },
		"Observe": func() {
			seq++
			sink.Observe(seq, 0, int64(seq), 60)
		},
		"ObserveFrame": func() { sink.ObserveFrame(buf, 1000) },
		"Record":       func() { seq++; h.Record(int64(seq * 997)) },
		"Allow":        func() { now += 100; p.Allow(now) },
	} {
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, a)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	for _, bc := range []struct {
		name  string
		flows int
		csum  bool
	}{
		{"64B", 1, false},
		{"64B-flows1024", 1024, false},
		{"64B-flows1000", 1000, false},
		{"64B-udpcsum", 1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultFlowConfig(60) // a 64-byte frame on the wire
			cfg.Flows = bc.flows
			cfg.UDPChecksum = bc.csum
			tm := mustTemplate(b, cfg)
			buf := make([]byte, 2048)
			b.SetBytes(60)
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				tm.Fill(buf, seq, int64(seq))
				seq++
			}
		})
	}
}

func BenchmarkParseObserve(b *testing.B) {
	tm := mustTemplate(b, DefaultFlowConfig(60))
	frame := make([]byte, 60)
	tm.Fill(frame, 0, 0)
	var sink Sink
	b.SetBytes(60)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		// Parse the frame, then observe it under a moving sequence number so
		// the sink takes its in-order path, as it does at line rate.
		_, ts, ok := Parse(frame)
		if !ok {
			b.Fatal("Parse failed")
		}
		sink.Observe(seq, ts, int64(seq)+5000, len(frame))
		seq++
	}
	if st := sink.Stats(); st.Lost != 0 || st.Duplicates != 0 {
		b.Fatalf("unexpected stats %+v", st)
	}
}

package eth

import (
	"bytes"
	"errors"
	"testing"
)

// A real ARP request frame as captured on a LAN (broadcast destination).
var arpFrame = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
	0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
	0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02,
}

func TestParseUntagged(t *testing.T) {
	h, err := Parse(arpFrame)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Dst: Broadcast, Src: MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, Type: TypeARP}
	if h != want || h.Len() != HeaderLen {
		t.Fatalf("got %+v len %d, want %+v len 14", h, h.Len(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Dst: MAC{1, 2, 3, 4, 5, 6}, Src: MAC{0x02, 0, 0, 0, 0, 9}, Type: TypeIPv4},
		{Dst: Broadcast, Src: MAC{0x02, 0, 0, 0, 0, 9}, Type: TypeIPv6, Tagged: true, TCI: 0xa123},
	} {
		b := make([]byte, 64)
		if err := h.Put(b); err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		if err != nil || got != h {
			t.Fatalf("round trip %+v: got %+v, %v", h, got, err)
		}
		if h.Tagged && (got.Len() != VLANHeaderLen || got.VID() != 0x123) {
			t.Fatalf("tagged: len %d vid %#x", got.Len(), got.VID())
		}
		if err := h.Put(b[:h.Len()-1]); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("short Put: %v", err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tagged := func(inner uint16) []byte {
		b := make([]byte, 18)
		b[12], b[13] = 0x81, 0x00
		b[16], b[17] = byte(inner>>8), byte(inner)
		return b
	}
	qinq := make([]byte, 22)
	qinq[12], qinq[13] = 0x88, 0xa8
	llc := make([]byte, 60)
	llc[12], llc[13] = 0x00, 0x2e
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrTruncated},
		{"13 bytes", arpFrame[:13], ErrTruncated},
		{"tag cut", tagged(TypeIPv4)[:17], ErrTruncated},
		{"double tag", tagged(TypeVLAN), ErrVLAN},
		{"8021ad inner", tagged(TypeQinQ), ErrVLAN},
		{"8021ad outer", qinq, ErrVLAN},
		{"llc", llc, ErrLLC},
		{"tagged llc", tagged(0x05dc), ErrLLC},
	} {
		if _, err := Parse(c.b); err != c.err {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
}

func TestMAC(t *testing.T) {
	m, err := ParseMAC("02:00:5E:10:00:0a")
	if err != nil || m != (MAC{2, 0, 0x5e, 0x10, 0, 0x0a}) {
		t.Fatalf("ParseMAC: %v %v", m, err)
	}
	if s := m.String(); s != "02:00:5e:10:00:0a" {
		t.Fatalf("String = %q", s)
	}
	if m2, err := ParseMAC("02-00-5e-10-00-0a"); err != nil || m2 != m {
		t.Fatalf("dash form: %v %v", m2, err)
	}
	for _, bad := range []string{"", "02:00:5e:10:00", "02:00:5e:10:00:0g", "02-00:5e:10:00:0a", "0200.5e10.000a.", "02:00:5e:10:00:0a:"} {
		if _, err := ParseMAC(bad); err != ErrMACSyntax {
			t.Errorf("ParseMAC(%q) = %v", bad, err)
		}
	}
	if !Broadcast.IsBroadcast() || !Broadcast.IsMulticast() || m.IsMulticast() || m.IsBroadcast() {
		t.Fatal("broadcast/multicast predicates")
	}
	if !(MAC{0x01, 0x00, 0x5e, 0, 0, 1}).IsMulticast() || !(MAC{}).IsZero() || m.IsZero() {
		t.Fatal("multicast/zero predicates")
	}
}

func TestNoAllocs(t *testing.T) {
	b := make([]byte, 64)
	h := Header{Dst: Broadcast, Type: TypeIPv4, Tagged: true, TCI: 7}
	n := testing.AllocsPerRun(100, func() {
		h.Put(b)
		h2, _ := Parse(b)
		_, _ = Parse(arpFrame)
		if h2 != h {
			panic("mismatch")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per parse/put", n)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		h, _ := Parse(arpFrame)
		if h.Type != TypeARP {
			b.Fatal("bad type")
		}
	}
}

func TestPutDoesNotTouchBeyondHeader(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, 20)
	Header{Type: TypeIPv4}.Put(b)
	if !bytes.Equal(b[14:], bytes.Repeat([]byte{0xee}, 6)) {
		t.Fatal("Put wrote past the header")
	}
}

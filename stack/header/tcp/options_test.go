package tcp

import (
	"bytes"
	"testing"
)

func TestParseOptionsRejectsEachMalformedLength(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"a kind with no length byte", []byte{OptNOP, OptMSS}, ErrOptionTruncated},
		{"an unknown kind with no length byte", []byte{30}, ErrOptionTruncated},
		{"length 0", []byte{OptMSS, 0, 5, 0xb4}, ErrOptionLen},
		{"length 1", []byte{30, 1, 0, 0}, ErrOptionLen},
		{"MSS running past the end", []byte{OptMSS, 4, 5}, ErrOptionTruncated},
		{"an unknown kind running past the end", []byte{30, 6, 0, 0}, ErrOptionTruncated},
		{"MSS of length 3", []byte{OptMSS, 3, 5, OptNOP}, ErrOptionMSS},
		{"MSS of length 5", []byte{OptMSS, 5, 5, 0xb4, 0}, ErrOptionMSS},
		{"window scale of length 2", []byte{OptWScale, 2}, ErrOptionWScale},
		{"window scale of length 4", []byte{OptWScale, 4, 7, 0}, ErrOptionWScale},
		{"SACK-permitted of length 3", []byte{OptSACKPermitted, 3, 0}, ErrOptionSACKPermitted},
		{"timestamps of length 8", []byte{OptTimestamps, 8, 0, 0, 0, 0, 0, 0}, ErrOptionTimestamps},
		{"timestamps of length 11", append([]byte{OptTimestamps, 11}, make([]byte, 9)...), ErrOptionTimestamps},
		{"SACK with no block", []byte{OptSACK, 2}, ErrOptionSACK},
		{"SACK with half a block", []byte{OptSACK, 6, 0, 0, 0, 0}, ErrOptionSACK},
		{"SACK with five blocks", append([]byte{OptSACK, 42}, make([]byte, 40)...), ErrOptionSACK},
		{"a good option then a bad one", []byte{OptNOP, OptNOP, OptSACKPermitted, 2, OptMSS, 2}, ErrOptionMSS},
	} {
		o, err := ParseOptions(c.b)
		if err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if o != (Options{}) {
			t.Errorf("%s: returned %+v beside the error", c.name, o)
		}
	}
}

func TestParseOptionsSkipsUnknownKindsAndStopsAtEndOfList(t *testing.T) {
	b := []byte{
		OptNOP,
		30, 4, 0xff, 0xff, // multipath TCP, unknown here: skipped by its length
		OptMSS, 4, 0x23, 0x28,
		253, 2, // experimental, no data
		OptEOL,
		OptMSS, 0, 0xde, 0xad, // after the end of the list: padding, never read
	}
	o, err := ParseOptions(b)
	if err != nil || o != (Options{Present: HasMSS, MSS: 9000}) {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err := ParseOptions(nil); err != nil || o != (Options{}) {
		t.Fatalf("no options: %+v %v", o, err)
	}
	// A repeated kind keeps its last value, as Linux's tcp_parse_options.
	if o, _ := ParseOptions([]byte{OptMSS, 4, 0, 1, OptMSS, 4, 0, 2}); o.MSS != 2 {
		t.Fatalf("repeated MSS read as %d", o.MSS)
	}
}

func TestAWindowScaleAbove14IsReadAs14AndMarked(t *testing.T) {
	o, err := ParseOptions([]byte{OptNOP, OptWScale, 3, 15})
	if err != nil || o.WScale != MaxWScale || !o.Has(HasWScale|WScaleCapped) {
		t.Fatalf("%+v %v", o, err)
	}
	o, _ = ParseOptions([]byte{OptNOP, OptWScale, 3, 14})
	if o.WScale != 14 || o.Has(WScaleCapped) {
		t.Fatalf("shift 14: %+v", o)
	}
	// A later legal option replaces the capped one, and its mark.
	o, _ = ParseOptions([]byte{OptWScale, 3, 200, OptWScale, 3, 2})
	if o.WScale != 2 || o.Has(WScaleCapped) {
		t.Fatalf("replaced: %+v", o)
	}
	// What we send is capped too.
	o = Options{Present: HasWScale, WScale: 20}
	var b [4]byte
	if n, _ := o.Put(b[:]); n != 4 || b != [4]byte{OptNOP, OptWScale, 3, 14} {
		t.Fatalf("wrote %x", b[:n])
	}
}

func TestEachOptionGroupIsWrittenAlignedAsLinuxWritesIt(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want []byte
	}{
		{"none", Options{}, []byte{}},
		{"MSS", Options{Present: HasMSS, MSS: 536}, []byte{2, 4, 2, 0x18}},
		{"SACK-permitted without timestamps", Options{Present: HasSACKPermitted}, []byte{1, 1, 4, 2}},
		{"timestamps without SACK-permitted", Options{Present: HasTimestamps, TSval: 1, TSecr: 2},
			[]byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"a SYN without timestamps", Options{Present: HasMSS | HasSACKPermitted | HasWScale, MSS: 1460, WScale: 9},
			[]byte{2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 9}},
		{"one SACK block", Options{NumSACK: 1, SACK: [4]SACKBlock{{1, 2}}},
			[]byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"four SACK blocks, no timestamps", Options{NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
			[]byte{1, 1, 5, 34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8}},
		{"four SACK blocks beside timestamps: three fit", Options{Present: HasTimestamps, TSval: 9, NumSACK: 4,
			SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
			[]byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 1, 5, 26, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6}},
		{"a SYN's options beside three SACK blocks: two fit", Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWScale,
			MSS: 1, WScale: 1, NumSACK: 3, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}}},
			[]byte{2, 4, 0, 1, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 1, 1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4}},
	} {
		var b [MaxOptionsLen]byte
		n, err := c.o.Put(b[:])
		if err != nil || n != c.o.Len() || !bytes.Equal(b[:n], c.want) {
			t.Errorf("%s: wrote %x (%d, Len %d, %v)\nwant       %x", c.name, b[:n], n, c.o.Len(), err, c.want)
			continue
		}
		if n%4 != 0 || n > MaxOptionsLen {
			t.Errorf("%s: %d bytes", c.name, n)
		}
		if _, err := ParseOptions(b[:n]); err != nil {
			t.Errorf("%s: own options rejected: %v", c.name, err)
		}
	}
}

func TestOptionsPutRefusesAShortBufferWritingNothing(t *testing.T) {
	o := Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWScale, MSS: 1460, WScale: 7}
	b := make([]byte, 19)
	if n, err := o.Put(b); n != 0 || err != ErrShortBuffer || !bytes.Equal(b, make([]byte, 19)) {
		t.Fatalf("%d %v %x", n, err, b)
	}
}

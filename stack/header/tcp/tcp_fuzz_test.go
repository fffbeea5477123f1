package tcp

import (
	"bytes"
	"testing"
)

// FuzzTCPParse checks that Parse and ParseOptions never panic, that an
// accepted header is exactly what Put writes back from its fields, and that
// accepted options, rebuilt by Options.Put, parse to the same values.
func FuzzTCPParse(f *testing.F) {
	f.Add(linuxSYN)
	f.Add(sackData)
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 0x10, 0, 0, 0, 0, 0, 0, OptWScale, 3, 15, OptEOL})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			// The options parser sees arbitrary bytes too.
			checkOptions(t, b)
			return
		}
		hl := int(h.DataOff)
		if hl < HeaderLen || hl > len(b) || hl%4 != 0 || h.OptionsLen() != hl-HeaderLen {
			t.Fatalf("accepted %+v from %d bytes", h, len(b))
		}
		out := make([]byte, hl)
		if n, err := h.Put(out, b[HeaderLen:hl]); err != nil || n != hl || !bytes.Equal(out, b[:hl]) {
			t.Fatalf("Put gave %x (%v), parsed from %x", out, err, b[:hl])
		}
		checkOptions(t, b[HeaderLen:hl])
		seg := append([]byte(nil), b...)
		SetChecksum(src, dst, seg)
		if !Verify(src, dst, seg) {
			t.Fatalf("own checksum fails on %x", seg)
		}
	})
}

// checkOptions parses b as options and, if they are accepted, rebuilds them
// and parses the result: the same values come back, less any SACK blocks
// the 40 bytes could not hold and the mark of a capped window scale.
func checkOptions(t *testing.T, b []byte) {
	o, err := ParseOptions(b)
	if err != nil {
		return
	}
	if o.NumSACK > MaxSACKBlocks || o.WScale > MaxWScale {
		t.Fatalf("accepted %+v from %x", o, b)
	}
	var ob [MaxOptionsLen]byte
	n, err := o.Put(ob[:])
	if err != nil || n != o.Len() || n%4 != 0 {
		t.Fatalf("rebuilding %+v: %d bytes, %v", o, n, err)
	}
	o2, err := ParseOptions(ob[:n])
	if err != nil {
		t.Fatalf("rebuilt options %x rejected: %v", ob[:n], err)
	}
	want := o
	want.Present &^= WScaleCapped
	k := o2.NumSACK
	want.NumSACK = k
	for i := int(k); i < MaxSACKBlocks; i++ {
		want.SACK[i] = SACKBlock{}
	}
	if o2 != want {
		t.Fatalf("options %+v rebuilt as %x parse as %+v", o, ob[:n], o2)
	}
	// Blocks are left out only when there is no room for another.
	if k < o.NumSACK && (k == 0 && n+12 <= MaxOptionsLen || k > 0 && n+8 <= MaxOptionsLen) {
		t.Fatalf("%d of %d SACK blocks written in %d bytes", k, o.NumSACK, n)
	}
}

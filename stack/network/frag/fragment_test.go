package frag

import (
	"bytes"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// checkFragments verifies fragments of datagram d against RFC 791 and
// returns their payloads joined in order.
func checkFragments(t *testing.T, d []byte, frags []engine.Mbuf, mtu int) []byte {
	t.Helper()
	orig, err := ipv4.Parse(d)
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	next := int(orig.FragOff)
	for i, f := range frags {
		b := mbuftest.Bytes(f)
		if len(b) > mtu {
			t.Fatalf("fragment %d is %d bytes, over MTU %d", i, len(b), mtu)
		}
		h, err := ipv4.Parse(b)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		last := i == len(frags)-1
		if h.MF() != (!last || orig.MF()) || int(h.FragOff) != next || h.ID != orig.ID ||
			h.Src != orig.Src || h.Dst != orig.Dst || h.Protocol != orig.Protocol || h.TTL != orig.TTL {
			t.Fatalf("fragment %d header %+v (next offset %d)", i, h, next)
		}
		if !last && h.PayloadLen()%8 != 0 {
			t.Fatalf("fragment %d payload %d not a multiple of 8", i, h.PayloadLen())
		}
		joined = append(joined, b[h.HeaderLen:]...)
		next += h.PayloadLen()
	}
	return joined
}

func TestFragment9000AtMTU1500(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	d := datagram(9000-ipv4.HeaderLen, 0x1234, 0, nil)
	m := mbuftest.Packet(t, cs, p, d)
	defer cs.Free(m)
	if m.Segs() < 5 {
		t.Fatalf("test datagram should be chained, has %d segments", m.Segs())
	}
	frags, err := Fragment(nil, cs, p, m, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != 7 {
		t.Fatalf("%d fragments, want 7 (8980 payload bytes, 1480 per fragment)", len(frags))
	}
	if got := checkFragments(t, d, frags, 1500); !bytes.Equal(got, d[ipv4.HeaderLen:]) {
		t.Fatal("fragment payloads do not join to the original")
	}
	for _, f := range frags {
		if f.Headroom() < 14 || !f.Writable() {
			t.Fatal("fragment lacks headroom for a link header or is shared")
		}
		cs.Free(f)
	}
}

func TestFragmentJumboMTUChainsFragments(t *testing.T) {
	p, cs := mbuftest.Pool(t, 128)
	d := datagram(40000, 7, 0, nil)
	m := mbuftest.Packet(t, cs, p, d, 27, 2001, 9) // odd segment boundaries
	defer cs.Free(m)
	split := mbuftest.Packet(t, cs, p, d, 13, 2001)
	defer cs.Free(split)
	if _, err := Fragment(nil, cs, p, split, 9000); err != ipv4.ErrTruncated {
		t.Fatalf("header split over segments: %v", err)
	}
	frags, err := Fragment(make([]engine.Mbuf, 0, 8), cs, p, m, 9000)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkFragments(t, d, frags, 9000); !bytes.Equal(got, d[ipv4.HeaderLen:]) {
		t.Fatal("payloads differ")
	}
	if frags[0].Segs() < 5 {
		t.Fatalf("a 9000-byte fragment should span segments, has %d", frags[0].Segs())
	}
	cs.FreeBulk(frags)
}

func TestFragmentOptions(t *testing.T) {
	p, cs := mbuftest.Pool(t, 16)
	// Loose source route (copied, 0x83) and record route (not copied,
	// 0x07), then end of list.
	opts := []byte{0x83, 7, 4, 198, 18, 0, 9, 0x07, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0}
	opts = append(opts, 0, 0) // pad to 20
	d := datagram(3000, 9, 0, opts)
	m := mbuftest.Packet(t, cs, p, d)
	defer cs.Free(m)
	frags, err := Fragment(nil, cs, p, m, 1500)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.FreeBulk(frags)
	checkFragments(t, d, frags, 1500)
	first, second := mbuftest.Bytes(frags[0]), mbuftest.Bytes(frags[1])
	if !bytes.Equal(first[20:40], opts) {
		t.Fatalf("first fragment options %x", first[20:40])
	}
	want := append([]byte{0x83, 7, 4, 198, 18, 0, 9}, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0)
	if !bytes.Equal(second[20:40], want) {
		t.Fatalf("later fragment options %x, want %x", second[20:40], want)
	}
	// Malformed options are refused.
	bad := datagram(3000, 9, 0, []byte{0x07, 9, 0, 0})
	mb := mbuftest.Packet(t, cs, p, bad)
	defer cs.Free(mb)
	if _, err := Fragment(nil, cs, p, mb, 1500); err != ipv4.ErrOptions {
		t.Fatalf("bad options: %v", err)
	}
}

func TestFragmentRefragment(t *testing.T) {
	p, cs := mbuftest.Pool(t, 32)
	d := datagram(4000, 5, 0, nil)
	m := mbuftest.Packet(t, cs, p, d)
	defer cs.Free(m)
	big, err := Fragment(nil, cs, p, m, 3000)
	if err != nil || len(big) != 2 {
		t.Fatalf("%d fragments, %v", len(big), err)
	}
	var all []engine.Mbuf
	for _, f := range big {
		all, err = Fragment(all, cs, p, f, 576)
		if err != nil {
			t.Fatal(err)
		}
		cs.Free(f)
	}
	defer cs.FreeBulk(all)
	if got := checkFragments(t, d, all, 576); !bytes.Equal(got, d[ipv4.HeaderLen:]) {
		t.Fatal("refragmented payloads differ")
	}
}

func TestFragmentRefusals(t *testing.T) {
	p, cs := mbuftest.Pool(t, 8)
	df := mbuftest.Packet(t, cs, p, datagram(2000, 1, ipv4.FlagDF, nil))
	defer cs.Free(df)
	if out, err := Fragment(nil, cs, p, df, 1500); err != ErrDontFragment || len(out) != 0 {
		t.Fatalf("DF: %v", err)
	}
	if _, err := Fragment(nil, cs, p, df, 67); err != ErrMTU {
		t.Fatalf("small MTU: %v", err)
	}
	// A datagram that fits (DF or not) comes back as one identical copy.
	out, err := Fragment(nil, cs, p, df, 2020)
	if err != nil || len(out) != 1 || !bytes.Equal(mbuftest.Bytes(out[0]), mbuftest.Bytes(df)) {
		t.Fatalf("fits: %d %v", len(out), err)
	}
	cs.Free(out[0])
	off := mbuftest.Packet(t, cs, p, datagram(2000, 1, 0, nil))
	defer cs.Free(off)
	off.SetFlags(engine.FlagTxL4Csum)
	if _, err := Fragment(nil, cs, p, off, 1500); err != ErrL4Offload {
		t.Fatalf("L4 offload: %v", err)
	}
	junk := mbuftest.Packet(t, cs, p, []byte{0x45, 0})
	defer cs.Free(junk)
	if _, err := Fragment(nil, cs, p, junk, 1500); err != ipv4.ErrTruncated {
		t.Fatalf("junk: %v", err)
	}
	// A fragment offset that would carry the datagram past 65535.
	far := datagram(2000, 1, 0, nil)
	far[6], far[7] = 0x1f, 0xf0 // offset 65408
	far[10], far[11] = 0, 0
	sum := ipv4.Checksum(far[:20], 0)
	far[10], far[11] = byte(sum>>8), byte(sum)
	fm := mbuftest.Packet(t, cs, p, far)
	defer cs.Free(fm)
	if _, err := Fragment(nil, cs, p, fm, 1500); err != ErrFragOffset {
		t.Fatalf("far offset: %v", err)
	}
}

func TestFragmentPoolEmptyFreesPartialWork(t *testing.T) {
	p, cs := mbuftest.Pool(t, 8)
	d := datagram(9000, 1, 0, nil)
	m := mbuftest.Packet(t, cs, p, d) // takes 5 of 8
	defer cs.Free(m)
	keep := []engine.Mbuf{engine.NoMbuf}
	out, err := Fragment(keep, cs, p, m, 1500)
	if err != engine.ErrPoolEmpty || len(out) != 1 || out[0] != engine.NoMbuf {
		t.Fatalf("pool exhaustion: %d, %v", len(out), err)
	}
}

func TestFragmentNoAllocs(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	m := mbuftest.Packet(t, cs, p, datagram(4000, 1, 0, nil))
	defer cs.Free(m)
	out := make([]engine.Mbuf, 0, 8)
	warm, _ := Fragment(out, cs, p, m, 1500) // creates the cache
	cs.FreeBulk(warm)
	if n := testing.AllocsPerRun(50, func() {
		frags, err := Fragment(out[:0], cs, p, m, 1500)
		if err != nil {
			panic(err)
		}
		cs.FreeBulk(frags)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

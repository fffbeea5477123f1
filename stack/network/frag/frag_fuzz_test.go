package frag

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// fuzzPool is one small pool per fuzzing process, reused by every input.
var fuzzPool struct {
	p  *engine.Pool
	cs *engine.Caches
}

const fuzzPoolSize = 96

// FuzzReassembly decodes the input into a sequence of fragments (of a few
// datagrams, so they collide, overlap, duplicate and interleave) and raw
// junk packets, and feeds them to a Reassembler with a small memory limit
// and a short timeout. It checks that nothing panics, memory stays under
// the limit, every completed datagram carries exactly the bytes its
// fragments described, and every mbuf is back in the pool at the end.
//
// Each operation takes 5 bytes: key, offset (2 bytes, in 8-byte units),
// length, flags. Flags bits: 0 MF, 1 odd length, 2 header options, 3 split
// into segments, 4 feed a clone as well, 5 advance time, 6 raw junk, 7 pad.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 1, 0, 0, 8, 8, 0})
	f.Add([]byte{1, 0, 4, 4, 0x01, 1, 0, 0, 4, 0x11, 1, 0, 2, 4, 0x09, 1, 0, 3, 1, 0x81})
	f.Add([]byte{2, 0, 1, 200, 0x05, 2, 0, 0, 8, 0x21, 3, 0xff, 0xff, 255, 0x40})
	f.Add(bytes.Repeat([]byte{5, 0, 1, 1, 1}, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		if fuzzPool.p == nil {
			p, err := engine.NewPool("fuzz-reassembly", fuzzPoolSize, 8)
			if err != nil {
				t.Fatal(err)
			}
			fuzzPool.p, fuzzPool.cs = p, new(engine.Caches)
		}
		p, cs := fuzzPool.p, fuzzPool.cs
		const limit = 12 * engine.BufSize
		r := NewReassembler(cs, p, ReasmConfig{Limit: limit, Timeout: 1000})
		now := int64(0)
		for len(in) >= 5 {
			op := in[:5]
			in = in[5:]
			key, units, n, fl := op[0]&3, int(binary.BigEndian.Uint16(op[1:3])), int(op[3]), op[4]
			if fl&0x20 != 0 {
				now += int64(n) * 10
			}
			var pkt []byte
			if fl&0x40 != 0 {
				pkt = op // junk: five raw bytes
			} else {
				pkt = fuzzFragment(key, units*8, n*8+int(fl>>1&1), fl&1 != 0, fl&4 != 0, fl&0x80 != 0)
			}
			m, ok := fuzzMbuf(cs, p, pkt, fl&8 != 0)
			if !ok {
				continue // pool exhausted: fine
			}
			if fl&0x10 != 0 {
				if c, err := cs.Clone(m, p); err == nil {
					fuzzAdd(t, r, cs, now, c)
				}
			}
			fuzzAdd(t, r, cs, now, m)
			if held := r.Counters().BytesHeld; held > limit || held < 0 {
				t.Fatalf("%d bytes held, limit %d", held, limit)
			}
		}
		r.Expire(1 << 62)
		if c := r.Counters(); c.BytesHeld != 0 || c.Queues != 0 {
			t.Fatalf("after expiry %+v", c)
		}
		cs.Flush()
		if a := p.Available(); a != p.Size() {
			t.Fatalf("leak: %d of %d mbufs not returned", p.Size()-a, p.Size())
		}
	})
}

// fuzzByte is the datagram byte at payload offset i of datagram key, so any
// correct reassembly of any fragments reproduces it.
func fuzzByte(key uint8, i int) byte { return byte(i*31+i>>8) ^ key*0x55 }

func fuzzFragment(key uint8, off, n int, mf, opts, pad bool) []byte {
	hl := ipv4.HeaderLen
	var o []byte
	if opts {
		o = []byte{0x94, 4, 0, 0, 1, 1, 1, 0}
		hl += len(o)
	}
	tl := min(hl+n, 65535)
	h := ipv4.Header{TotalLen: uint16(tl), ID: uint16(key) * 1000, TTL: 9, Protocol: ipv4.ProtoUDP,
		Src: [4]byte{198, 18, 0, key}, Dst: [4]byte{198, 18, 1, 1}, FragOff: uint16(min(off, 0xffff) &^ 7)}
	if mf {
		h.Flags = ipv4.FlagMF
	}
	b := make([]byte, tl, tl+7)
	h.Put(b, o)
	for i := hl; i < tl; i++ {
		b[i] = fuzzByte(key, int(h.FragOff)+i-hl)
	}
	if pad {
		b = append(b, 0, 0, 0, 0, 0, 0, 0)
	}
	return b
}

// fuzzMbuf copies pkt into an mbuf, as a chain of small segments if split.
func fuzzMbuf(cs *engine.Caches, p *engine.Pool, pkt []byte, split bool) (engine.Mbuf, bool) {
	m, err := cs.Alloc(p)
	if err != nil {
		return engine.NoMbuf, false
	}
	if !split {
		if cs.AppendBytes(m, p, pkt) != nil {
			cs.Free(m)
			return engine.NoMbuf, false
		}
		return m, true
	}
	seg := m
	for len(pkt) > 0 {
		k := min(len(pkt), 700)
		if seg != m || m.Len() > 0 {
			s, err := cs.Alloc(p)
			if err != nil {
				cs.Free(m)
				return engine.NoMbuf, false
			}
			m.Chain(s)
			seg = s
		}
		d, _ := m.Append(k)
		copy(d, pkt)
		pkt = pkt[k:]
	}
	return m, true
}

func fuzzAdd(t *testing.T, r *Reassembler, cs *engine.Caches, now int64, m engine.Mbuf) {
	w, ok, err := r.Add(now, m)
	if err != nil {
		if ok || w != engine.NoMbuf {
			t.Fatalf("error %v with a datagram", err)
		}
		return
	}
	if !ok {
		return
	}
	defer cs.Free(w)
	b := mbuftest.Bytes(w)
	h, err := ipv4.Parse(b)
	if err != nil {
		t.Fatalf("reassembled header: %v", err)
	}
	if h.IsFragment() {
		t.Fatalf("a fragment came back as a datagram: %+v", h)
	}
	// A datagram that was never fragmented passes through untouched, link
	// padding and all; a reassembled one is exactly its total length.
	if w != m && int(h.TotalLen) != len(b) || int(h.TotalLen) > len(b) {
		t.Fatalf("total length %d, packet %d", h.TotalLen, len(b))
	}
	key := h.Src[3]
	for i, c := range b[h.HeaderLen:h.TotalLen] {
		if c != fuzzByte(key, i) {
			t.Fatalf("datagram %d byte %d is %#x, want %#x", key, i, c, fuzzByte(key, i))
		}
	}
}

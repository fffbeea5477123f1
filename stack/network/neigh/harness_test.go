package neigh

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/arp"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
)

// The harness's addresses: we are ipUs on device 1, the legitimate peer is
// ipPeer at macPeer.
var (
	addrUs  = netip.MustParsePrefix("198.18.0.2/24")
	ipUs    = addrUs.Addr().As4()
	ipPeer  = [4]byte{198, 18, 0, 1}
	macUs   = eth.MAC{0x02, 0, 0, 0, 0, 0x02}
	macPeer = eth.MAC{0x02, 0, 0, 0, 0, 0x01}
)

// macN is a made-up unicast MAC for host i.
func macN(i int) eth.MAC { return eth.MAC{0x02, 0x66, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// ipN is a made-up address for host i in 198.18.0.0/15, outside our subnet
// unless i < 256.
func ipN(i int) [4]byte { return [4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)} }

// frame is what the table sent through a fakeLink.
type frame struct {
	dst eth.MAC
	typ uint16
	b   []byte // the payload: an ARP packet, or a test packet
}

// fakeLink is a shard as the table sees it: it frees what it is given to
// send into caches of its own, after noting it. Each is used by one
// goroutine.
type fakeLink struct {
	pool    *engine.Pool
	cs      *engine.Caches
	record  bool    // keep every frame sent in frames
	frames  []frame // what was sent, when record is set
	sent    []uint64
	dropped []uint64 // tags of test packets freed without being sent
	arpOut  int      // ARP frames sent
	noMbuf  bool     // Alloc fails
}

func (l *fakeLink) Output(dev *link.Device, dst eth.MAC, typ uint16, m engine.Mbuf) {
	if l.record {
		l.frames = append(l.frames, frame{dst, typ, mbuftest.Bytes(m)})
	}
	if tag, ok := tagOf(m); ok && typ == eth.TypeIPv4 {
		l.sent = append(l.sent, tag)
	} else if typ == eth.TypeARP {
		l.arpOut++
	}
	l.cs.Free(m)
}

func (l *fakeLink) Alloc() (engine.Mbuf, error) {
	if l.noMbuf {
		return engine.NoMbuf, engine.ErrPoolEmpty
	}
	return l.cs.Alloc(l.pool)
}

func (l *fakeLink) Free(m engine.Mbuf) {
	if tag, ok := tagOf(m); ok {
		l.dropped = append(l.dropped, tag)
	}
	l.cs.Free(m)
}

// A test packet is 16 bytes: magic, then its tag.
const packetMagic = 0x7e57_9ac4_e700_0000

// packet is a test packet tagged tag, from l's caches.
func (l *fakeLink) packet(t testing.TB, tag uint64) engine.Mbuf {
	m, err := l.cs.Alloc(l.pool)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Append(16)
	putTag(b, tag)
	return m
}

// putTag writes a test packet tagged tag in b, 16 bytes.
func putTag(b []byte, tag uint64) {
	binary.BigEndian.PutUint64(b, packetMagic)
	binary.BigEndian.PutUint64(b[8:], tag)
}

func tagOf(m engine.Mbuf) (uint64, bool) {
	b := m.Data()
	if m.PktLen() != 16 || len(b) != 16 || binary.BigEndian.Uint64(b) != packetMagic {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}

// heldCap is a held-memory Accountant with a bound; it remembers the most
// ever held.
type heldCap struct {
	mu                sync.Mutex
	limit, held, peak int
	refused           int
}

func (h *heldCap) Charge(n int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held+n > h.limit {
		h.refused++
		return false
	}
	h.held += n
	h.peak = max(h.peak, h.held)
	return true
}

func (h *heldCap) Uncharge(n int) {
	h.mu.Lock()
	h.held -= n
	h.mu.Unlock()
}

func (h *heldCap) Room() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(0, h.limit-h.held)
}

func (h *heldCap) now() (held, peak int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, h.peak
}

// harness is a table on device 1 with a fake link and a fake clock, driven
// by the test alone: nothing runs in the background.
type harness struct {
	t    testing.TB
	tab  *Table
	l    *fakeLink
	held *heldCap
	dev  *link.Device
	now  int64
	tags uint64
}

// testDevice is our interface, ipUs on device 1.
func testDevice() *link.Device {
	return &link.Device{ID: 1, Queues: 1, MAC: macUs, MTU: 1500, Addr: addrUs}
}

// start is the harness clock's first reading: any time will do.
const start = int64(1000 * time.Second)

func newHarness(t testing.TB, cfg Config, heldLimit int) *harness {
	t.Helper()
	pool, cs := mbuftest.Pool(t, 4096)
	routes := route.NewRoutes()
	if err := routes.AddAddress(addrUs, 1); err != nil {
		t.Fatal(err)
	}
	held := &heldCap{limit: heldLimit}
	tab, err := New(cfg, routes, held, heldLimit, siphash.NewKey(), start)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tab: tab, held: held, now: start,
		l:   &fakeLink{pool: pool, cs: cs, record: true},
		dev: testDevice()}
	t.Cleanup(func() {
		tab.Clear(h.l)
		if n, _ := held.now(); n != 0 {
			t.Errorf("%d mbufs still charged after Clear", n)
		}
	})
	return h
}

// send sends a test packet to ip.
func (h *harness) send(ip [4]byte) {
	h.tags++
	h.tab.Output(h.l, h.dev, ip, h.l.packet(h.t, h.tags))
}

// arp has the table receive p in a frame sent to dst.
func (h *harness) arp(dst eth.MAC, p arp.Packet) {
	m, err := h.l.cs.Alloc(h.l.pool)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := m.Append(arp.PacketLen)
	p.Put(b)
	h.tab.Input(h.l, h.dev, m, dst == macUs)
}

// ask has host i (at ipN(100+i)) ask for our address.
func (h *harness) ask(i int) {
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macN(i), SenderIP: ipN(100 + i), TargetIP: ipUs})
}

// peerAsks has the peer ask for our address, which makes or refreshes its
// entry as STALE.
func (h *harness) peerAsks() {
	h.arp(eth.Broadcast, arp.Packet{Op: arp.OpRequest, SenderMAC: macPeer, SenderIP: ipPeer, TargetIP: ipUs})
}

// peerReplies has the peer answer us, unicast, from mac: a confirmation.
func (h *harness) peerReplies(mac eth.MAC) {
	h.arp(macUs, arp.Packet{Op: arp.OpReply, SenderMAC: mac, SenderIP: ipPeer, TargetMAC: macUs, TargetIP: ipUs})
}

// advance moves the clock on by d, running the timers every 10 ms on the
// way, as a shard's loop would.
func (h *harness) advance(d time.Duration) {
	end := h.now + int64(d)
	for h.now < end {
		h.now = min(end, h.now+int64(10*time.Millisecond))
		h.tab.Advance(h.l, h.now)
	}
}

// received takes the frames sent so far.
func (h *harness) received() []frame {
	f := h.l.frames
	h.l.frames = nil
	return f
}

// entry is the entry for ip, or nil.
func (h *harness) entry(ip [4]byte) *entry {
	h.tab.mu.Lock()
	defer h.tab.mu.Unlock()
	return h.tab.lookup(h.dev.ID, ip)
}

// state is the state of the entry for ip ("" when there is none).
func (h *harness) state(ip [4]byte) string {
	if e := h.entry(ip); e != nil {
		return e.state().String()
	}
	return ""
}

// sent is a tally of what the table sent: ARP requests for one address by
// where they went, ARP replies, and test packets by destination MAC.
type sent struct {
	broadcastReqs, unicastReqs int
	replies                    []arp.Packet
	replyTo                    []eth.MAC
	ipTo                       map[eth.MAC]int
}

func tally(frames []frame, ip [4]byte) sent {
	s := sent{ipTo: map[eth.MAC]int{}}
	for _, f := range frames {
		if f.typ == eth.TypeIPv4 {
			s.ipTo[f.dst]++
			continue
		}
		p, err := arp.Parse(f.b)
		switch {
		case err != nil:
		case p.Op == arp.OpRequest && p.TargetIP == ip && f.dst == eth.Broadcast:
			s.broadcastReqs++
		case p.Op == arp.OpRequest && p.TargetIP == ip:
			s.unicastReqs++
		case p.Op == arp.OpReply:
			s.replies = append(s.replies, p)
			s.replyTo = append(s.replyTo, f.dst)
		}
	}
	return s
}

//go:build dpdk

package dpdk

/*
#include <stdlib.h>
#include "burst.h"

// pn_pool makes a port's own rte_pktmbuf pool with room for one frame of
// the default size per mbuf (RTE_MBUF_DEFAULT_BUF_SIZE).
static struct rte_mempool *pn_pool(const char *name, unsigned n) {
	return rte_pktmbuf_pool_create(name, n, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
}
static int pn_errno(void) { return rte_errno; }
static int pn_info(uint16_t port, char *driver, size_t len, uint8_t mac[6]) {
	struct rte_eth_dev_info info;
	int ret = rte_eth_dev_info_get(port, &info);
	if (ret < 0)
		return ret;
	snprintf(driver, len, "%s", info.driver_name);
	struct rte_ether_addr a;
	ret = rte_eth_macaddr_get(port, &a);
	if (ret < 0)
		return ret;
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}
static int pn_port_by_name(const char *name, uint16_t *id) {
	return rte_eth_dev_get_port_by_name(name, id);
}
static int pn_probe(const char *devargs) { return rte_dev_probe(devargs); }
static void pn_ring_free(const char *name) {
	char rn[RTE_RING_NAMESIZE];
	void *m;
	for (int i = 0; i < 2; i++) {
		snprintf(rn, sizeof(rn), "pn_%s_%d", name, i);
		struct rte_ring *r = rte_ring_lookup(rn);
		if (r == NULL)
			continue;
		while (rte_ring_dequeue(r, &m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(r);
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pollnet/pollnet/engine"
)

// Limits and defaults of Config.
const (
	DefaultMTU = 1500
	// MaxMTU keeps a frame within one mbuf, ours and DPDK's default alike.
	MaxMTU = engine.DataRoom - ethHeader
	// DefaultRing is the descriptors per queue when Config leaves them 0.
	DefaultRing = 1024
	// DefaultPoolPerQueue is the mbufs per queue of the port's own pool
	// and of its DPDK pool when Config leaves them 0.
	DefaultPoolPerQueue = 4096
	MaxQueues           = 16
	ethHeader           = 14
	burstMax            = C.PN_BURST
	txSegsMax           = C.PN_TXSEGS
)

// Config says which DPDK port to open and how.
type Config struct {
	// Device is an ethdev's name ("net_null0", made by --vdev, or a PCI
	// address). If no port has that name, Device is taken as devargs and
	// probed ("net_null1,size=128", rte_dev_probe), and Close removes the
	// device again.
	Device string
	// Queues is the number of receive and transmit queues (default 1).
	Queues int
	// RxRing and TxRing are descriptors per queue (default DefaultRing;
	// the driver may round them).
	RxRing, TxRing int
	// MTU is the largest IP packet (default 1500, at most MaxMTU). Drivers
	// with no MTU of their own (net_ring, net_null) keep none.
	MTU int
	// PoolSize is the mbufs of the engine pool the port receives into,
	// DPDKPoolSize those of the rte_pktmbuf pool its queues use (defaults
	// DefaultPoolPerQueue per queue).
	PoolSize, DPDKPoolSize int
	// PortIndex is recorded on received mbufs as their port (default 0).
	PortIndex int
}

func (cfg *Config) setDefaults() error {
	if cfg.Device == "" {
		return errors.New("dpdk: Config.Device is empty: name a port, e.g. \"net_null0\"")
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 1 || cfg.Queues > MaxQueues {
		return fmt.Errorf("dpdk %s: %d queues out of range 1..%d", cfg.Device, cfg.Queues, MaxQueues)
	}
	for _, r := range []*int{&cfg.RxRing, &cfg.TxRing} {
		if *r == 0 {
			*r = DefaultRing
		}
		if *r < 1 || *r > 1<<15 {
			return fmt.Errorf("dpdk %s: ring of %d descriptors out of range 1..32768", cfg.Device, *r)
		}
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 68 || cfg.MTU > MaxMTU {
		return fmt.Errorf("dpdk %s: MTU %d out of range 68..%d (one mbuf per frame)", cfg.Device, cfg.MTU, MaxMTU)
	}
	need := 2 * burstMax * cfg.Queues
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolPerQueue * cfg.Queues
	}
	if cfg.PoolSize < need || cfg.PoolSize > engine.MaxPoolSize {
		return fmt.Errorf("dpdk %s: pool size %d out of range %d..%d", cfg.Device, cfg.PoolSize, need, engine.MaxPoolSize)
	}
	if cfg.DPDKPoolSize == 0 {
		cfg.DPDKPoolSize = DefaultPoolPerQueue*cfg.Queues - 1 // 2^n-1 suits rte_mempool best
	}
	if cfg.DPDKPoolSize < need || cfg.DPDKPoolSize > 1<<24 {
		return fmt.Errorf("dpdk %s: DPDK pool size %d out of range %d..%d", cfg.Device, cfg.DPDKPoolSize, need, 1<<24)
	}
	if cfg.PortIndex < 0 || cfg.PortIndex > 0xffff {
		return fmt.Errorf("dpdk %s: port index %d out of range 0..65535", cfg.Device, cfg.PortIndex)
	}
	return nil
}

// Port is one DPDK ethdev. It implements engine.Port.
type Port struct {
	info     engine.PortInfo
	id       C.uint16_t
	mp       *C.struct_rte_mempool
	pool     *engine.Pool
	rxq      []*rxQueue
	txq      []*txQueue
	maxFrame int
	probed   bool
	pair     *ringPair // the pair it belongs to, or nil

	mu     sync.Mutex
	closed bool // guarded by mu
}

var _ engine.Port = (*Port)(nil)

// counter is written by the queue's one goroutine and read by any.
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }

// cCounter reads a counter C writes from the queue's goroutine; C memory
// from malloc is aligned, so the load is atomic.
func cCounter(p *C.uint64_t) uint64 { return (*atomic.Uint64)(unsafe.Pointer(p)).Load() }

type rxQueue struct {
	_      [64]byte
	c      *C.struct_pn_rxq // C memory
	dst    []*C.uint8_t     // c.dst, as a slice
	cache  *engine.Cache
	caches engine.Caches
	spare  [burstMax]engine.Mbuf // mbufs whose data rooms are dst[:nspare]
	nspare int
	port   int
	queue  int
	pkts   counter
	bytes  counter
	_      [64]byte
}

type txQueue struct {
	_       [64]byte
	c       *C.struct_pn_txq // C memory
	caches  engine.Caches
	done    *engine.Caches // &caches, or the caller's
	idx     [burstMax]int  // the frame of pkts each of the call's frames is
	scratch []byte         // C memory: a chain with too many segments, flattened
	pkts    counter
	bytes   counter
	long    counter
	errs    counter
	_       [64]byte
}

// Open configures and starts a DPDK port (rte_eth_dev_configure, a receive
// and a transmit queue per Config.Queues, an rte_pktmbuf pool of its own)
// with the EAL already started (InitEAL).
func Open(cfg Config) (*Port, error) {
	if !EALStarted() {
		return nil, ErrEAL
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Port{maxFrame: cfg.MTU + ethHeader}
	name, _, _ := strings.Cut(cfg.Device, ",")
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var id C.uint16_t
	if C.pn_port_by_name(cname, &id) != 0 {
		cargs := C.CString(cfg.Device)
		ret := C.pn_probe(cargs)
		C.free(unsafe.Pointer(cargs))
		if ret < 0 {
			return nil, fmt.Errorf("dpdk: no port %q, and probing it as a device failed: %s", name, C.GoString(C.pn_strerror(-ret)))
		}
		if C.pn_port_by_name(cname, &id) != 0 {
			return nil, fmt.Errorf("dpdk: probed %q but no ethdev of that name appeared", cfg.Device)
		}
		p.probed = true
	}
	p.id = id
	if err := p.open(name, cfg); err != nil {
		if p.probed { // ours to undo; a --vdev port stays for another try
			C.pn_port_close(p.id, 1)
		}
		p.free()
		return nil, err
	}
	return p, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (p *Port) open(name string, cfg Config) error {
	var drv [64]C.char
	var mac [6]C.uint8_t
	if err := dpdkError("dpdk "+name+": device info", C.pn_info(p.id, &drv[0], C.size_t(len(drv)), &mac[0])); err != nil {
		return err
	}
	mpName := C.CString(fmt.Sprintf("pn_mp%d", p.id))
	p.mp = C.pn_pool(mpName, C.unsigned(cfg.DPDKPoolSize))
	C.free(unsafe.Pointer(mpName))
	if p.mp == nil {
		return fmt.Errorf("dpdk %s: rte_pktmbuf_pool_create of %d mbufs: %s (give the EAL more memory: EALConfig.MemoryMB)",
			name, cfg.DPDKPoolSize, C.GoString(C.pn_strerror(C.pn_errno())))
	}
	pool, err := engine.NewPool("dpdk-"+name, cfg.PoolSize, 0)
	if err != nil {
		return fmt.Errorf("dpdk %s: %w", name, err)
	}
	p.pool = pool
	for q := 0; q < cfg.Queues; q++ {
		rq := &rxQueue{port: cfg.PortIndex, queue: q}
		rq.c = (*C.struct_pn_rxq)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_pn_rxq{}))))
		rq.c.port, rq.c.queue, rq.c.room = p.id, C.uint16_t(q), engine.DataRoom
		rq.dst = unsafe.Slice(&rq.c.dst[0], burstMax)
		rq.cache = rq.caches.For(pool)
		p.rxq = append(p.rxq, rq)
		tq := &txQueue{}
		tq.c = (*C.struct_pn_txq)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_pn_txq{}))))
		tq.c.port, tq.c.queue, tq.c.mp = p.id, C.uint16_t(q), p.mp
		tq.scratch = unsafe.Slice((*byte)(C.malloc(C.size_t(p.maxFrame))), p.maxFrame)
		tq.done = &tq.caches
		p.txq = append(p.txq, tq)
	}
	ret := C.pn_port_setup(p.id, C.uint16_t(cfg.Queues), C.uint16_t(cfg.Queues),
		C.uint16_t(cfg.RxRing), C.uint16_t(cfg.TxRing), p.mp, C.uint16_t(cfg.MTU))
	if err := dpdkError("dpdk "+name+": configure and start", ret); err != nil {
		return err
	}
	p.info = engine.PortInfo{
		Name:       name,
		Driver:     C.GoString(&drv[0]),
		MTU:        cfg.MTU,
		RxQueues:   cfg.Queues,
		TxQueues:   cfg.Queues,
		RxRingSize: cfg.RxRing,
		TxRingSize: cfg.TxRing,
		// DPDK ports are polled: no interrupts, so the NAPI mode refuses
		// them. No offloads and no RSS are configured.
		Features: engine.Features{},
	}
	for i := range mac {
		p.info.MAC[i] = byte(mac[i])
	}
	return nil
}

// free releases what Go and C memory the port holds (not the ethdev).
func (p *Port) free() error {
	var err error
	for _, rq := range p.rxq {
		for _, m := range rq.spare[:rq.nspare] {
			rq.caches.Free(m)
		}
		rq.nspare = 0
		rq.caches.Flush()
		C.free(unsafe.Pointer(rq.c))
		rq.c, rq.dst = nil, nil
	}
	for _, tq := range p.txq {
		tq.caches.Flush()
		C.free(unsafe.Pointer(tq.c))
		C.free(unsafe.Pointer(&tq.scratch[0]))
		tq.c, tq.scratch = nil, nil
	}
	if p.pool != nil {
		err = p.pool.Close()
	}
	if p.mp != nil && p.pair == nil {
		C.rte_mempool_free(p.mp)
	}
	return err
}

// Info describes the port.
func (p *Port) Info() engine.PortInfo { return p.info }

// Pool is the engine pool the port receives into.
func (p *Port) Pool() *engine.Pool { return p.pool }

// ID is the DPDK port id.
func (p *Port) ID() int { return int(p.id) }

// fill tops the spare mbufs up to want, each with its whole data room
// described in dst; it stops early when the pool runs dry.
func (rq *rxQueue) fill(want int) {
	for rq.nspare < want {
		m, err := rq.cache.Get()
		if err != nil {
			return
		}
		b, _ := m.Append(m.Tailroom()) // a fresh mbuf: the whole data room
		rq.spare[rq.nspare] = m
		rq.dst[rq.nspare] = (*C.uint8_t)(unsafe.Pointer(&b[0]))
		rq.nspare++
	}
}

// RxBurst receives up to len(pkts) frames (at most 64 a call) in one cgo
// call: rte_eth_rx_burst, then each frame copied into a spare mbuf of the
// port's pool and its rte_mbuf freed, all in C. A frame longer than an
// mbuf's data room is dropped (too_long); with no mbuf at all the burst is
// received and dropped (rx_nombuf), so the device's ring keeps draining.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int {
	rq := p.rxq[q]
	want := min(len(pkts), burstMax)
	if want == 0 {
		return 0
	}
	rq.fill(want)
	nd := min(want, rq.nspare)
	n := int(C.pn_rx_burst(rq.c, C.uint16_t(want), C.uint16_t(nd)))
	if n == 0 {
		return 0
	}
	var bytes uint64
	lens := rq.c.len[:n:n]
	for i := 0; i < n; i++ {
		m := rq.spare[i]
		m.SetLen(int(lens[i]))
		m.SetRxInfo(rq.port, rq.queue)
		bytes += uint64(lens[i])
		pkts[i] = m
	}
	copy(rq.spare[:], rq.spare[n:rq.nspare])
	copy(rq.dst, rq.dst[n:rq.nspare])
	rq.nspare -= n
	rq.pkts.add(uint64(n))
	rq.bytes.add(bytes)
	return n
}

// TxBurst hands up to 64 frames a call to the device in one cgo call: C
// copies each frame's segments into an rte_mbuf of the port's DPDK pool and
// calls rte_eth_tx_burst. The frames the device took, and any dropped
// before them (longer than the MTU, or runts), are freed; the caller keeps
// the rest. With no DPDK mbufs free the device takes nothing.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	tq := p.txq[q]
	c := tq.c
	nb, s, i := 0, 0, 0
	for ; i < len(pkts) && nb < burstMax; i++ {
		m := pkts[i]
		size := m.PktLen()
		if size > p.maxFrame || size < ethHeader {
			continue // dropped, counted below if the burst reaches it
		}
		segs := m.Segs()
		if s+segs > txSegsMax {
			if nb > 0 {
				break // the next call takes it
			}
			segs = -1
		}
		if segs == 1 {
			d := m.Data()
			c.seg[s] = (*C.uint8_t)(unsafe.Pointer(&d[0]))
			c.slen[s] = C.uint32_t(len(d))
			s++
		} else if segs > 0 {
			segs = 0
			for g := m; g != engine.NoMbuf; g = g.Next() {
				d := g.Data()
				if len(d) == 0 {
					continue
				}
				c.seg[s] = (*C.uint8_t)(unsafe.Pointer(&d[0]))
				c.slen[s] = C.uint32_t(len(d))
				s++
				segs++
			}
		} else { // too many segments for one call: flatten it
			m.CopyOut(tq.scratch[:size], 0)
			c.seg[s] = (*C.uint8_t)(unsafe.Pointer(&tq.scratch[0]))
			c.slen[s] = C.uint32_t(size)
			s++
			segs = 1
		}
		c.nsegs[nb] = C.uint16_t(segs)
		tq.idx[nb] = i
		nb++
	}
	end := i
	sent := 0
	if nb > 0 {
		sent = max(int(C.pn_tx_burst(c, C.uint16_t(nb))), 0)
		if sent < nb {
			end = tq.idx[sent]
		}
	}
	var bytes, long, errs uint64
	for _, m := range pkts[:end] {
		switch size := m.PktLen(); {
		case size > p.maxFrame:
			long++
		case size < ethHeader:
			errs++
		default: // every good frame before end was sent
			bytes += uint64(size)
		}
	}
	tq.done.FreeBulk(pkts[:end])
	if sent > 0 {
		tq.pkts.add(uint64(sent))
		tq.bytes.add(bytes)
	}
	if long > 0 {
		tq.long.add(long)
	}
	if errs > 0 {
		tq.errs.add(errs)
	}
	return end
}

// SetTxCaches makes the queue free the frames it sends into cs, the caches
// of the goroutine that drives it; nil restores the queue's own.
func (p *Port) SetTxCaches(q int, cs *engine.Caches) {
	tq := p.txq[q]
	if cs == nil {
		cs = &tq.caches
	}
	tq.done = cs
}

// EthStats are the device's own counters (struct rte_eth_stats).
type EthStats struct {
	IPackets, OPackets, IBytes, OBytes uint64
	IMissed                            uint64 // dropped by the device: its receive ring was full
	IErrors                            uint64
	OErrors                            uint64
	RxNoMbuf                           uint64 // the device found no DPDK mbuf to receive into
}

// EthStats reads the device's counters (rte_eth_stats_get).
func (p *Port) EthStats() (EthStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return EthStats{}, ErrClosed
	}
	return p.ethStats()
}

func (p *Port) ethStats() (EthStats, error) {
	var st C.struct_rte_eth_stats
	if err := dpdkError("dpdk "+p.info.Name+": rte_eth_stats_get", C.rte_eth_stats_get(p.id, &st)); err != nil {
		return EthStats{}, err
	}
	return EthStats{
		IPackets: uint64(st.ipackets), OPackets: uint64(st.opackets),
		IBytes: uint64(st.ibytes), OBytes: uint64(st.obytes),
		IMissed: uint64(st.imissed), IErrors: uint64(st.ierrors), OErrors: uint64(st.oerrors),
		RxNoMbuf: uint64(st.rx_nombuf),
	}, nil
}

// RxStats returns a receive queue's counters: frames delivered, and frames
// dropped here (no engine mbuf: rx_nombuf; longer than a data room:
// too_long). The device's drops are port-wide in DPDK, so queue 0 carries
// them: imissed as rx_missed, its own rx_nombuf, ierrors as errors.
func (p *Port) RxStats(q int) engine.QueueStats {
	rq := p.rxq[q]
	s := engine.QueueStats{Packets: rq.pkts.v.Load(), Bytes: rq.bytes.v.Load()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return s
	}
	s.Drops[engine.DropNoMbuf] = cCounter(&rq.c.nombuf)
	s.Drops[engine.DropTooLong] = cCounter(&rq.c.too_long)
	if q == 0 {
		if st, err := p.ethStats(); err == nil {
			s.Drops[engine.DropRingFull] += st.IMissed
			s.Drops[engine.DropNoMbuf] += st.RxNoMbuf
			s.Drops[engine.DropError] += st.IErrors
		}
	}
	return s
}

// TxStats returns a transmit queue's counters: frames the device took, and
// frames dropped here (longer than the MTU: too_long; runts: errors).
// Frames the device refused were handed back, not dropped: DPDK's oerrors,
// which net_ring counts for them, are in EthStats only.
func (p *Port) TxStats(q int) engine.QueueStats {
	tq := p.txq[q]
	s := engine.QueueStats{Packets: tq.pkts.v.Load(), Bytes: tq.bytes.v.Load()}
	s.Drops[engine.DropTooLong] = tq.long.v.Load()
	s.Drops[engine.DropError] = tq.errs.v.Load()
	return s
}

// SetRxInterrupt, ArmRx and DisarmRx are never reached: a DPDK port is
// polled (Features.Interrupts is false) and the NAPI mode refuses it
// before it installs a handler (engine.Softirq.Add). They panic, saying so.
func (p *Port) SetRxInterrupt(q int, handler func()) { p.noInterrupts() }

// ArmRx: see SetRxInterrupt.
func (p *Port) ArmRx(q int) { p.noInterrupts() }

// DisarmRx: see SetRxInterrupt.
func (p *Port) DisarmRx(q int) { p.noInterrupts() }

func (p *Port) noInterrupts() {
	panic(fmt.Sprintf("dpdk %s: DPDK ports are polled and raise no interrupts; drive the port in the poll mode", p.info.Name))
}

// ErrClosed is returned by Close on a port already closed.
var ErrClosed = errors.New("dpdk: port already closed")

// Close stops and closes the ethdev (rte_eth_dev_stop, rte_eth_dev_close),
// removes its device if Open probed it, and frees the port's pools; the
// engine pool's Close fails if mbufs of it are still out (a leak). No queue
// may be used during or after Close.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	var errs []error
	if err := dpdkError("dpdk "+p.info.Name+": close", C.pn_port_close(p.id, boolInt(p.probed))); err != nil {
		errs = append(errs, err)
	}
	if err := p.free(); err != nil {
		errs = append(errs, fmt.Errorf("dpdk %s: %w", p.info.Name, err))
	}
	if p.pair != nil {
		p.pair.release(p.mp)
	}
	return errors.Join(errs...)
}

// ringPair frees its rings and both ports' DPDK pools once both are closed:
// frames of either pool may wait in either ring until then.
type ringPair struct {
	mu    sync.Mutex
	name  string
	open  int
	pools []*C.struct_rte_mempool
}

func (r *ringPair) release(mp *C.struct_rte_mempool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pools = append(r.pools, mp)
	if r.open--; r.open > 0 {
		return
	}
	cname := C.CString(r.name)
	C.pn_ring_free(cname)
	C.free(unsafe.Pointer(cname))
	for _, mp := range r.pools {
		C.rte_mempool_free(mp)
	}
}

// NewRingPair makes two ports joined by a pair of rte_rings, what one sends
// the other receives (rte_eth_from_rings), and opens both with cfg (its
// Device is ignored): a cable between two stacks inside one process. name
// tells pairs apart: the ports are net_ring_<name>_a and _b.
func NewRingPair(name string, cfg Config) (a, b *Port, err error) {
	if !EALStarted() {
		return nil, nil, ErrEAL
	}
	if name == "" || len(name) > 20 {
		return nil, nil, fmt.Errorf("dpdk: ring pair name %q: 1..20 bytes (DPDK's ring names are short)", name)
	}
	if cfg.Queues > 1 {
		return nil, nil, fmt.Errorf("dpdk: a ring pair has one queue, not %d", cfg.Queues)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var ida, idb C.uint16_t
	size := C.unsigned(1024)
	if cfg.RxRing > 0 {
		size = C.unsigned(cfg.RxRing)
	}
	if ret := C.pn_ring_pair(cname, size, &ida, &idb); ret < 0 {
		C.pn_ring_free(cname)
		return nil, nil, fmt.Errorf("dpdk: ring pair %q: %s", name, C.GoString(C.pn_strerror(-ret)))
	}
	pair := &ringPair{name: name}
	var ports [2]*Port
	for i, dev := range []string{"net_ring_" + name + "_a", "net_ring_" + name + "_b"} {
		c := cfg
		c.Device = dev
		if ports[i], err = Open(c); err != nil {
			break
		}
		ports[i].probed = true // made by rte_eth_from_rings: remove it at Close
		ports[i].pair = pair
		pair.open++
	}
	if err != nil {
		for _, p := range ports {
			if p != nil {
				p.Close()
			}
		}
		return nil, nil, err
	}
	return ports[0], ports[1], nil
}

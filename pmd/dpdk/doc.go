// Package dpdk is a port on the system's DPDK (Debian's 22.11, found with
// pkg-config libdpdk), built only with the build tag `dpdk`: without it the
// package is this comment and nothing else, so the module builds where DPDK
// is not installed. `make setup-dpdk` installs it.
//
// One EAL per process: InitEAL starts it once (rte_eal_init) from flags,
// by default on ordinary pages (--no-huge), without PCI (--no-pci, so the
// machine's NIC is left alone), sharing nothing with other processes, with a
// file prefix of its own, on one lcore. Devices come from --vdev in
// EALConfig.Args or are probed when Open names one that does not exist yet
// ("net_null1,size=128"); NewRingPair joins two ports with rte_rings, a cable
// for two stacks in one process.
//
// Open configures a port (rte_eth_dev_configure, a receive and a transmit
// queue per Config.Queues, an rte_pktmbuf pool of its own) and starts it.
// Each burst is one cgo call, never one per frame: a small C function
// receives a burst (rte_eth_rx_burst) and copies each frame into a spare
// mbuf of the port's engine pool whose address Go left in the queue's
// descriptor block, in C memory; on transmit, Go lists each frame's segments
// there and C copies them into rte_mbufs and sends them (rte_eth_tx_burst).
// Go allocates nothing per burst.
//
// Copied, not mapped. A frame is copied once at the boundary each way. An
// Mbuf is a handle into an engine pool's arena, so an rte_mbuf could only
// come in as an external buffer (engine.ExtBuf), released by whichever
// goroutine drops the packet last (a socket reader, a TCP send queue
// seconds later): that release would cross cgo per packet, or need a ring
// back to the queue's goroutine; and transmit would have to turn the stack's
// chains of clones into rte_mbuf chains of attached external buffers
// (rte_pktmbuf_attach_extbuf) freed on completion. The copy is cheap where it
// matters most: BenchmarkRingRoundTrip, a burst of 32 through net_ring and
// back (two copies a frame, and building the frames), measured 121 ns a
// frame at 64 bytes and 535 ns at 1514 on this 2-vCPU VM, so the copies of
// a full-size frame cost about 200 ns each way and those of a small one a
// few. Mapping is worth doing for large frames on a real NIC; it is not done.
//
// Limits: a frame fits one mbuf (MTU at most MaxMTU); no offloads, no RSS
// (a multi-queue port spreads frames as its driver does, and the stack
// re-steers them in software); no interrupts: DPDK ports are polled, so
// Features.Interrupts is false and the NAPI mode refuses the port
// (engine.Softirq.Add: "cannot raise interrupts"). Counters are the port's
// own, plus the device's drops from rte_eth_stats on queue 0 (imissed as
// rx_missed, rx_nombuf, ierrors), which DPDK keeps per port only.
//
// Tests run with `go test -tags dpdk` (not under the race detector: the EAL's
// threads and memory are outside what it can see), one EAL per test process.
package dpdk

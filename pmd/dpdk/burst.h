// The C side of the DPDK port: what one cgo call does per burst. Only
// burst.c and the dpdk-tagged Go files include it.
#ifndef POLLNET_DPDK_BURST_H
#define POLLNET_DPDK_BURST_H

#include <stdint.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

// PN_BURST is the most frames one call moves; PN_TXSEGS the most segments
// of our chained frames one transmit call copies from.
#define PN_BURST 64
#define PN_TXSEGS 512

// pn_rxq is one receive queue's descriptor block, in C memory so that a
// burst passes one pointer and Go allocates nothing. Go fills dst with the
// data rooms of spare mbufs; C fills len for the frames it copied there.
struct pn_rxq {
	uint16_t port, queue;
	uint32_t room;        // bytes each dst holds
	uint64_t too_long;    // frames longer than room, dropped (C writes)
	uint64_t nombuf;      // frames dropped for want of a dst (C writes)
	uint8_t *dst[PN_BURST];
	uint32_t len[PN_BURST];
	struct rte_mbuf *m[PN_BURST];
};

// pn_txq is one transmit queue's: frame i is nsegs[i] segments, taken in
// order from seg and slen.
struct pn_txq {
	uint16_t port, queue;
	struct rte_mempool *mp;
	uint64_t nombuf;      // bursts refused for want of DPDK mbufs (C writes)
	uint16_t nsegs[PN_BURST];
	uint8_t *seg[PN_TXSEGS];
	uint32_t slen[PN_TXSEGS];
	struct rte_mbuf *m[PN_BURST];
};

int pn_eal_init(int argc, char **argv);
int pn_rx_burst(struct pn_rxq *q, uint16_t want, uint16_t ndst);
int pn_tx_burst(struct pn_txq *q, uint16_t n);
int pn_port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, uint16_t nrxd, uint16_t ntxd,
		  struct rte_mempool *mp, uint16_t mtu);
int pn_ring_pair(const char *name, unsigned size, uint16_t *a, uint16_t *b);
int pn_port_close(uint16_t port, int remove);
const char *pn_strerror(int err);

#endif

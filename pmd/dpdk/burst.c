//go:build dpdk

#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_dev.h>
#include <rte_eth_ring.h>
#include "burst.h"

// pn_eal_init runs rte_eal_init and gives the calling thread back the CPUs
// it had: the EAL pins its main lcore, and this thread belongs to Go.
int pn_eal_init(int argc, char **argv)
{
	cpu_set_t saved;
	int have = sched_getaffinity(0, sizeof(saved), &saved) == 0;
	int ret = rte_eal_init(argc, argv);
	if (ret < 0)
		ret = -rte_errno;
	if (have)
		sched_setaffinity(0, sizeof(saved), &saved);
	return ret;
}

const char *pn_strerror(int err) { return rte_strerror(err); }

// copy_frame copies an rte_mbuf chain of len bytes into dst.
static inline void copy_frame(uint8_t *dst, const struct rte_mbuf *m)
{
	if (m->nb_segs == 1) {
		memcpy(dst, rte_pktmbuf_mtod(m, const void *), m->data_len);
		return;
	}
	for (; m != NULL; m = m->next) {
		memcpy(dst, rte_pktmbuf_mtod(m, const void *), m->data_len);
		dst += m->data_len;
	}
}

// pn_rx_burst receives up to want frames and copies them into the first
// ndst buffers, in order, returning how many it filled. With ndst 0 it
// drains and drops what it receives, as a NIC without rx buffers would.
int pn_rx_burst(struct pn_rxq *q, uint16_t want, uint16_t ndst)
{
	if (want > PN_BURST)
		want = PN_BURST;
	uint16_t n = rte_eth_rx_burst(q->port, q->queue, q->m, want);
	uint16_t k = 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = q->m[i];
		if (k == ndst) {
			q->nombuf++;
			continue;
		}
		if (m->pkt_len > q->room) {
			q->too_long++;
			continue;
		}
		copy_frame(q->dst[k], m);
		q->len[k] = m->pkt_len;
		k++;
	}
	if (n > 0)
		rte_pktmbuf_free_bulk(q->m, n);
	return k;
}

// pn_tx_burst copies n frames into DPDK mbufs and transmits them. It
// returns how many the device took; the rest are freed here, and the
// caller keeps its own copies of them. -1: no DPDK mbufs for the burst.
int pn_tx_burst(struct pn_txq *q, uint16_t n)
{
	if (n == 0)
		return 0;
	if (n > PN_BURST)
		n = PN_BURST;
	if (rte_pktmbuf_alloc_bulk(q->mp, q->m, n) != 0) {
		q->nombuf++;
		return -1;
	}
	unsigned s = 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = q->m[i];
		uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
		uint32_t len = 0;
		for (uint16_t j = 0; j < q->nsegs[i]; j++, s++) {
			memcpy(d + len, q->seg[s], q->slen[s]);
			len += q->slen[s];
		}
		m->data_len = (uint16_t)len;
		m->pkt_len = len;
	}
	uint16_t sent = rte_eth_tx_burst(q->port, q->queue, q->m, n);
	if (sent < n)
		rte_pktmbuf_free_bulk(q->m + sent, n - sent);
	return sent;
}

// pn_port_setup configures a port with one pool for every receive queue
// and starts it (rte_eth_dev_configure, the queue setups, rte_eth_dev_start).
int pn_port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, uint16_t nrxd, uint16_t ntxd,
		  struct rte_mempool *mp, uint16_t mtu)
{
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int ret = rte_eth_dev_configure(port, nrxq, ntxq, &conf);
	if (ret < 0)
		return ret;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrxd, &ntxd);
	if (ret < 0)
		return ret;
	// Drivers without an MTU to set (net_ring, net_null) refuse: not an error.
	ret = rte_eth_dev_set_mtu(port, mtu);
	if (ret < 0 && ret != -ENOTSUP)
		return ret;
	int socket = rte_eth_dev_socket_id(port);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	for (uint16_t q = 0; q < nrxq; q++) {
		ret = rte_eth_rx_queue_setup(port, q, nrxd, socket, NULL, mp);
		if (ret < 0)
			return ret;
	}
	for (uint16_t q = 0; q < ntxq; q++) {
		ret = rte_eth_tx_queue_setup(port, q, ntxd, socket, NULL);
		if (ret < 0)
			return ret;
	}
	return rte_eth_dev_start(port);
}

// pn_ring_pair makes two ports joined by two rings, each port's transmit
// ring the other's receive ring (rte_eth_from_rings): a cable between them.
int pn_ring_pair(const char *name, unsigned size, uint16_t *a, uint16_t *b)
{
	char rn[RTE_RING_NAMESIZE], pn[64];
	struct rte_ring *r[2];
	for (int i = 0; i < 2; i++) {
		snprintf(rn, sizeof(rn), "pn_%s_%d", name, i);
		r[i] = rte_ring_create(rn, size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (r[i] == NULL)
			return -rte_errno;
	}
	snprintf(pn, sizeof(pn), "%s_a", name);
	int pa = rte_eth_from_rings(pn, &r[0], 1, &r[1], 1, SOCKET_ID_ANY);
	if (pa < 0)
		return -rte_errno;
	snprintf(pn, sizeof(pn), "%s_b", name);
	int pb = rte_eth_from_rings(pn, &r[1], 1, &r[0], 1, SOCKET_ID_ANY);
	if (pb < 0)
		return -rte_errno;
	*a = (uint16_t)pa;
	*b = (uint16_t)pb;
	return 0;
}

// pn_port_close stops and closes a port and, if remove, removes its device
// too, so that its name can be probed again.
int pn_port_close(uint16_t port, int remove)
{
	struct rte_eth_dev_info info;
	int ret = rte_eth_dev_info_get(port, &info);
	if (ret < 0)
		return ret;
	struct rte_device *dev = info.device;
	ret = rte_eth_dev_stop(port);
	if (ret < 0)
		return ret;
	ret = rte_eth_dev_close(port);
	if (ret < 0)
		return ret;
	if (remove && dev != NULL) {
		ret = rte_dev_remove(dev);
		if (ret < 0)
			return ret;
	}
	return 0;
}

package stack

import "reflect"

// Stats are the stack's counters, named after the SNMP MIB counters that
// `netstat -s` prints where there is one.
type Stats struct {
	EthInFrames, EthInErrors, EthNotForUs, EthUnknownType uint64
	// EthVLANDropped is the number of frames dropped for carrying an
	// 802.1Q or 802.1ad tag: there are no VLAN devices, so no tagged frame
	// is ours (Linux counts them in the device's rx_dropped).
	EthVLANDropped uint64

	ARPInRequests, ARPInReplies, ARPOutRequests, ARPOutReplies uint64
	ARPInErrors                                                uint64

	// The neighbour table, as Linux's /proc/net/stat/arp_cache.
	ARPEntries             uint64 // the number of entries now (entries)
	ARPAllocs              uint64 // the number of entries made (allocs)
	ARPResolveFailed       uint64 // the number of addresses given up as unanswered (res_failed)
	ARPQueueDrops          uint64 // the number of packets dropped while waiting for an address: past the queue's bytes (unres_discards), past the held-memory cap, or when the address was given up
	ARPTableFulls          uint64 // the number of entries refused because the table was full (table_fulls)
	ARPForcedGCRuns        uint64 // the number of forced collections (forced_gc_runs)
	ARPForcedGCEvictions   uint64 // the number of entries a forced collection removed
	ARPPeriodicGCRuns      uint64 // the number of periodic collections (periodic_gc_runs)
	ARPPeriodicGCEvictions uint64 // the number of entries a periodic collection removed

	HeldMbufs    uint64 // the number of mbufs held now by packets waiting (for an address, for reassembly)
	HeldRefusals uint64 // the number of packets refused because waiting packets held all HeldLimit mbufs

	IPInReceives, IPInHdrErrors, IPInAddrErrors, IPInUnknownProtos uint64
	IPInDelivers, IPForwDatagrams, IPOutRequests, IPOutNoRoutes    uint64
	IPInDiscards, IPFragOKs, IPFragFails, IPFragCreates            uint64
	ReasmReqds, ReasmOKs, ReasmFails, ReasmTimeouts                uint64
	IPInTooBig, IPOutDiscards                                      uint64
	// IPInMartianSrc and IPInMartianDst are the number of datagrams from
	// the wire dropped for a source or a destination that cannot be real
	// there (loopback, zero network, broadcast or multicast source, our
	// own address as source): Linux's in_martian_src and in_martian_dst
	// (ip_route_input_slow). A martian destination counts in
	// IPInAddrErrors too.
	IPInMartianSrc, IPInMartianDst uint64

	ICMPInMsgs, ICMPInErrors, ICMPInEchos, ICMPOutEchoReps, ICMPOutDestUnreachs uint64
	ICMPOutTimeExcds, ICMPOutMsgs                                               uint64
	// ICMPOutRateLimitGlobal and ICMPOutRateLimitHost are the number of
	// ICMP errors not sent because the stack's budget (icmp_msgs_per_sec)
	// or the destination's (icmp_ratelimit) was spent: Linux's ICMP
	// OutRateLimitGlobal and OutRateLimitHost.
	ICMPOutRateLimitGlobal, ICMPOutRateLimitHost uint64

	UDPInDatagrams, UDPNoPorts, UDPInErrors, UDPInCsumErrors, UDPRcvbufErrors, UDPOutDatagrams uint64

	NoMbuf uint64 // packets not built for want of a buffer

	// TCP are TCP's counters (Tcp and TcpExt).
	TCP TCPCounters
}

// Stats sums the shards' counters, with the shared tables' counts.
func (s *Stack) Stats() Stats {
	var st Stats
	for _, sh := range s.shards {
		sh.mu.Lock()
		c := sh.stats
		c.TCP = sh.tcpStats
		rc := sh.reasm.Counters()
		sh.letGo()
		c.ReasmReqds, c.ReasmOKs, c.ReasmFails = rc.ReasmReqds, rc.ReasmOKs, rc.ReasmFails
		st.add(&c)
	}
	copyNeighStats(&st, s.neigh.Stats())
	st.NoMbuf += s.app.noBuffers.Load()
	st.IPOutNoRoutes += s.app.noRoutes.Load()
	s.addUDPStats(&st)
	st.HeldMbufs, st.HeldRefusals = uint64(s.held.held.Load()), s.held.refused.Load()
	return st
}

// add adds every counter of o to st. Every field of Stats is a uint64
// counter, or a struct of them, summed over shards.
func (st *Stats) add(o *Stats) {
	addFields(reflect.ValueOf(st).Elem(), reflect.ValueOf(o).Elem())
}

// addFields adds b's counters to a's, field by field, into nested structs.
func addFields(a, b reflect.Value) {
	for i := range a.NumField() {
		f := a.Field(i)
		if f.Kind() == reflect.Struct {
			addFields(f, b.Field(i))
			continue
		}
		f.SetUint(f.Uint() + b.Field(i).Uint())
	}
}

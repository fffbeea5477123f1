package stack

import (
	"encoding/binary"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/siphash"
)

// Flows and shards. A port with RSS and as many receive queues as the stack
// has shards spreads flows itself: each shard gets the flows of its queue.
// On any other port (one queue, like TAP; a queue count that differs from
// the shard count; the loopback device) the stack steers in software, as
// Linux's receive packet steering does (get_rps_cpu): the shard that polled
// the frame hashes its flow with the stack's secret key and passes it to the
// owner through the owner's steering backlog. Either way, TCP and UDP flows
// hash on addresses and ports, and fragments and every other protocol on
// addresses alone, so the fragments of one datagram meet on one shard.

// steering is how one device's frames find their shard.
type steering struct {
	byPort bool             // the port's RSS picks the shard
	rss    *engine.Toeplitz // the port's RSS hash, to predict where a flow lands
	info   engine.PortInfo
}

// initSteering decides, per device, whether its port steers flows to shards
// itself.
func (s *Stack) initSteering() error {
	s.steer = make([]steering, len(s.devs))
	for i, d := range s.devs {
		info := d.Port.Info()
		st := steering{info: info}
		if !d.Loopback && info.Features.RSS && len(info.RSSKey) > 0 && len(info.RETA) > 0 &&
			(d.Queues == len(s.shards) || len(s.shards) == 1) {
			rss, err := engine.NewToeplitz(info.RSSKey, 12)
			if err != nil {
				return err
			}
			st.byPort, st.rss = true, rss
		}
		if len(s.shards) == 1 {
			st.byPort = true
		}
		s.steer[i] = st
	}
	return nil
}

// rssSteers reports whether dev's port delivers every flow on its owner's
// queue.
func (s *Stack) rssSteers(dev *link.Device) bool { return s.steer[dev.ID].byPort }

// ownerOf picks the shard that owns a received frame's flow by the stack's
// keyed hash, or self for a frame that is not IPv4 (ARP: any shard may
// answer) or too short to say (the shard that has it drops it).
func (s *Stack) ownerOf(m engine.Mbuf, self int) int {
	b := m.Data()
	if len(b) < eth.HeaderLen+ipv4.HeaderLen || binary.BigEndian.Uint16(b[12:14]) != eth.TypeIPv4 {
		return self
	}
	ip := b[eth.HeaderLen:]
	hl := int(ip[0]&0xf) * 4
	var src, dst [4]byte
	copy(src[:], ip[12:16])
	copy(dst[:], ip[16:20])
	proto := ip[9]
	fragment := binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0
	var sport, dport uint16
	if !fragment && (proto == ipv4.ProtoUDP || proto == ipv4.ProtoTCP) && hl >= ipv4.HeaderLen && len(ip) >= hl+4 {
		sport, dport = binary.BigEndian.Uint16(ip[hl:]), binary.BigEndian.Uint16(ip[hl+2:])
	} else {
		proto = 0
	}
	return s.softShard(src, dst, proto, sport, dport)
}

// softShard is the shard software steering gives a flow: a keyed hash of
// its addresses (and protocol and ports), mapped onto the shards.
func (s *Stack) softShard(src, dst [4]byte, proto uint8, sport, dport uint16) int {
	h := s.secret.Hash3(uint64(binary.BigEndian.Uint32(src[:]))<<32|uint64(binary.BigEndian.Uint32(dst[:])),
		uint64(sport)<<16|uint64(dport), uint64(proto)<<8|siphash.TagSteer)
	return int((h >> 32) * uint64(len(s.shards)) >> 32)
}

// ShardOf is the shard on which a datagram of proto from src:sport to
// dst:dport (one of ours) arrives: the queue the receiving port's RSS picks,
// or the software steering's choice. A socket that sends from one shard
// picks its ports so that the answers come back to it.
func (s *Stack) ShardOf(proto uint8, src, dst [4]byte, sport, dport uint16) int {
	if len(s.shards) == 1 {
		return 0
	}
	dev := 0
	if r, ok := s.routes.Lookup4(src); ok {
		dev = r.Dev
	}
	st := &s.steer[dev]
	if !st.byPort {
		if proto != ipv4.ProtoUDP && proto != ipv4.ProtoTCP {
			proto, sport, dport = 0, 0, 0
		}
		return s.softShard(src, dst, proto, sport, dport)
	}
	var h uint32
	if proto == ipv4.ProtoUDP || proto == ipv4.ProtoTCP {
		h = st.rss.HashIPv4Ports(src, dst, sport, dport)
	} else {
		h = st.rss.HashIPv4(src, dst)
	}
	return st.info.QueueOf(h) % len(s.shards)
}

// flushSteer passes every shard its frames gathered in this burst. Under
// mu.
func (sh *shard) flushSteer() {
	for i := range sh.steerOut {
		if len(sh.steerOut[i]) > 0 {
			sh.flushSteerTo(i)
		}
	}
}

// flushSteerTo passes shard i its frames; a full backlog drops and counts
// them (softnet_stat's dropped).
func (sh *shard) flushSteerTo(i int) {
	sh.s.shards[i].steer.TxBurst(0, sh.steerOut[i])
	sh.steerOut[i] = sh.steerOut[i][:0]
}

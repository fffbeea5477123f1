package link

import (
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/eth"
)

// Device is an interface as the stack sees it (a net_device): a port, its
// link address and MTU, and the IPv4 address configured on it. A stack
// builds its devices once; they are read-only after, so every shard reads
// them without a lock.
type Device struct {
	ID       int // the interface index: 0 is loopback, then the configured interfaces in order
	Port     engine.Port
	Queues   int // receive queues the port has
	MAC      eth.MAC
	MTU      int
	Addr     netip.Prefix
	Loopback bool
	// TxChecksum says the port fills TCP and UDP checksums
	// (Features.TxChecksum): a transport leaves it the pseudo-header sum
	// and engine.FlagTxL4Csum, as Linux's CHECKSUM_PARTIAL.
	TxChecksum bool
}

//go:build dpdk

package bench

import (
	"fmt"
	"os"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/dpdk"
)

// benchEAL is the EAL this process runs the DPDK-port scenario in: started
// on the first run and kept, since DPDK allows one EAL per process. It
// starts with no devices (each run probes its own net_null) on ordinary
// pages, so it needs no hugepage setup.
var benchEAL = dpdk.EALConfig{MemoryMB: 256}

// dpdkBuilt: this binary has the DPDK port.
func dpdkBuilt() error { return nil }

// openDPDKNull starts the EAL if it is not up, then probes a net_null vdev
// making frames of size bytes (copying them in and out when copy is set)
// and opens it as a pmd/dpdk port with one queue pair; its Close removes
// the vdev again.
func openDPDKNull(size int, copy bool) (engine.Port, error) {
	if err := dpdk.InitEAL(benchEAL); err != nil {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("--port dpdk: %w (the EAL may need root: run as root)", err)
		}
		return nil, fmt.Errorf("--port dpdk: %w", err)
	}
	p, err := dpdk.Open(dpdk.Config{
		Device: fmt.Sprintf("%s,size=%d,copy=%d", dpdkDevice, size, b2i(copy)),
		// A frame must fit the port's MTU to be sent; net_null has no MTU of
		// its own.
		MTU: min(max(dpdk.DefaultMTU, size-14), dpdk.MaxMTU),
	})
	if err != nil {
		return nil, fmt.Errorf("--port dpdk: %w", err)
	}
	return p, nil
}

// dpdkKnobs records how the pmd/dpdk port was set up.
func dpdkKnobs(k map[string]any) {
	k["pool"] = dpdk.DefaultPoolPerQueue
	k["dpdk_pool"] = dpdk.DefaultPoolPerQueue - 1
	k["device"] = dpdkDevice
	k["boundary_copy"] = true // pmd/dpdk copies every frame in and out
	k["shared_cache"] = false // its receive and transmit queues have a cache each
}

//go:build !dpdk

package bench

import "github.com/pollnet/pollnet/engine"

// dpdkBuilt refuses --port dpdk in a binary built without the dpdk tag,
// saying how to build one that has it.
func dpdkBuilt() error { return flagErr("%s", dpdkBuildHint) }

// openDPDKNull is never reached without the tag: Validate refuses the port.
func openDPDKNull(int, bool) (engine.Port, error) { return nil, dpdkBuilt() }

func dpdkKnobs(map[string]any) {}

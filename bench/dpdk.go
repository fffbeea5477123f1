package bench

import "slices"

// The pps scenario on a DPDK port (--port dpdk) is the null-port scenario
// (null.go) with pollnet's forwarder on a pmd/dpdk port instead of
// pmd/null: DPDK's own net_null, opened as a vdev in this process's one EAL,
// so both paths read the same driver, beside dpdk-testpmd on net_null in
// the same run, at the same frame size and copy mode. What it adds to the
// null-port figure is the cost of crossing into DPDK: one cgo call per
// burst each way, and the copy at the boundary (pmd/dpdk copies every frame
// into an engine mbuf on receive and out into an rte_mbuf on transmit, even
// when net_null's own copy mode is off).
//
// It needs a binary built with the dpdk tag (`go build -tags dpdk
// ./cmd/pollnet`, or `make build-dpdk`), which links the system's DPDK;
// without the tag --port dpdk is refused before anything runs.

// PortDPDK is the port kind of the pps scenario on a pmd/dpdk port.
const PortDPDK = "dpdk"

// dpdkBuildHint says how to get a binary that runs --port dpdk.
const dpdkBuildHint = "--port dpdk needs a binary built with the dpdk tag: go build -tags dpdk ./cmd/pollnet " +
	"(or make build-dpdk; make setup-dpdk installs the DPDK it links)"

// dpdkDevice is the net_null vdev each pollnet run probes and removes again.
const dpdkDevice = "net_null0"

// dpdkSuiteNames adds the DPDK-port pps scenario to the quick suite when
// --port dpdk asks for it (the full suite's pps is already on that port).
func dpdkSuiteNames(suite, port string, names []string) []string {
	if suite == "quick" && port == PortDPDK && !slices.Contains(names, "pps") {
		i := slices.Index(names, "pps-null") + 1
		return slices.Insert(names, i, "pps")
	}
	return names
}

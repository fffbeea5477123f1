//go:build dpdk

package serve

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/dpdk"
	"github.com/pollnet/pollnet/stack"
)

// serveEAL is the process's one EAL: no devices of its own (openDPDK
// probes net_tap), on ordinary pages, so it needs no hugepage setup.
var serveEAL = dpdk.EALConfig{MemoryMB: 256}

// tapDevice is the net_tap vdev serve probes; its Close removes it.
const tapDevice = "net_tap_serve"

// checkDPDK refuses the NAPI mode: DPDK ports are polled and raise no
// interrupts.
func (c *Config) checkDPDK() error {
	if c.Mode == stack.ModeNAPI {
		return usagef("--port dpdk --mode napi: a DPDK port is polled and raises no interrupts, so it has no NAPI mode: use --mode pmd")
	}
	return nil
}

// openDPDK starts the EAL and opens DPDK's net_tap as a pmd/dpdk port. The
// TAP it makes is set up as the TAP port's is (kernelEnd), with a MAC of
// its own: net_tap gives the kernel's end the port's MAC.
func (s *Server) openDPDK() error {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("serve: --port dpdk: DPDK's net_tap needs /dev/net/tun (%v): modprobe tun", err)
	}
	name, err := tapName(s.cfg.TAP)
	if err != nil {
		return err
	}
	if err := dpdk.InitEAL(serveEAL); err != nil {
		if os.Geteuid() != 0 {
			return fmt.Errorf("serve: --port dpdk: %w (the EAL needs root: run as root)", err)
		}
		return fmt.Errorf("serve: --port dpdk: %w", err)
	}
	p, err := dpdk.Open(dpdk.Config{Device: tapDevice + ",iface=" + name})
	if err != nil {
		return fmt.Errorf("serve: --port dpdk: open DPDK's net_tap: %w", err)
	}
	s.port, s.name = p, name
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("serve: --port dpdk: net_tap made no interface %s: %w", name, err)
	}
	if mac := p.Info().MAC; string(ifc.HardwareAddr) == string(mac[:]) {
		kmac := mac
		kmac[0] = kmac[0]&^1 | 2 // unicast, locally administered
		kmac[5] ^= 1
		if _, err := netns.Run("ip", "link", "set", name, "address", net.HardwareAddr(kmac[:]).String()); err != nil {
			return fmt.Errorf("serve: --port dpdk: give the TAP's kernel end a MAC of its own: %w", err)
		}
	}
	return s.kernelEnd()
}

// tapName is name with its "%d" made the lowest number no interface here
// has: net_tap needs the name before it makes the device, to find it again.
func tapName(name string) (string, error) {
	if !strings.Contains(name, "%d") {
		return name, nil
	}
	for i := 0; i < 1000; i++ {
		n := strings.Replace(name, "%d", strconv.Itoa(i), 1)
		if _, err := net.InterfaceByName(n); err != nil && len(n) <= 15 {
			return n, nil
		}
	}
	return "", fmt.Errorf("serve: --tap %s: no free name among the first 1000 numbers: give one with --tap", name)
}

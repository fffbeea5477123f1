//go:build !dpdk

package serve

// checkDPDK refuses --port dpdk in a binary built without the dpdk tag,
// saying how to build one that has it.
func (c *Config) checkDPDK() error { return usagef("%s", dpdkBuildHint) }

// openDPDK is never reached without the tag: Check refuses the port.
func (s *Server) openDPDK() error { return s.cfg.checkDPDK() }

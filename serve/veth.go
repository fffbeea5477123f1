package serve

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/afpacket"
)

// openVeth makes the veth pair of PortAFPacket and opens our end as an
// AF_PACKET port. Our end lives in a namespace of its own, made here,
// where the kernel has no address, no IPv6 and no forwarding: it sees every
// frame our port sees (AF_PACKET taps, it does not take), and must answer
// or forward none of them. The kernel's end gets the peer address, here or
// in --netns, with TSO and GSO off so that it sends no frame beyond the MTU
// (pmd/afpacket drops those).
func (s *Server) openVeth() error {
	if _, err := exec.LookPath("ethtool"); err != nil {
		return errors.New("serve: --port afpacket needs ethtool to turn TSO and GSO off on the kernel's veth end: apt-get install ethtool (make deps does), or use --port tap")
	}
	ours, kernel := s.cfg.veth()
	own, err := netns.New("pn-sveth")
	if err != nil {
		return fmt.Errorf("serve: a namespace for our veth end (needs root): %w", err)
	}
	s.own = own
	if _, err := netns.Run("ip", "link", "add", ours, "type", "veth", "peer", "name", kernel); err != nil {
		return fmt.Errorf("serve: make the veth pair: %w", err)
	}
	s.veth = true
	if _, err := netns.Run("ip", "link", "set", ours, "netns", own.Name); err != nil {
		return fmt.Errorf("serve: move our veth end: %w", err)
	}
	cmds := [][]string{{"ip", "-n", own.Name, "link", "set", ours, "up"}}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		cmds = append(cmds, []string{"ip", "netns", "exec", own.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"})
	}
	in := func(args ...string) []string { return args }
	if ns := s.cfg.NetNS; ns != "" {
		cmds = append(cmds, []string{"ip", "link", "set", kernel, "netns", ns})
		in = func(args ...string) []string { return append([]string{"ip", "netns", "exec", ns}, args...) }
	}
	cmds = append(cmds,
		in("ethtool", "-K", kernel, "tso", "off", "gso", "off"),
		in("ip", "addr", "add", s.cfg.Peer.String(), "dev", kernel),
		in("ip", "link", "set", kernel, "up"))
	for _, c := range cmds {
		if _, err := netns.Run(c...); err != nil {
			return fmt.Errorf("serve: set up the veth pair: %w", err)
		}
	}
	var p *afpacket.Port
	if err := own.Do(func() (err error) {
		p, err = afpacket.Open(afpacket.Config{Name: ours})
		return err
	}); err != nil {
		return fmt.Errorf("serve: open our veth end: %w", err)
	}
	s.port, s.name = p, ours
	return nil
}

// removeVeth deletes the pair (deleting our namespace deletes our end, and
// with it the kernel's, wherever it is) and the namespace.
func (s *Server) removeVeth() error {
	var errs []error
	if s.veth {
		// Our end may not have reached its namespace: delete it here.
		ours, _ := s.cfg.veth()
		if _, err := netns.Run("ip", "link", "show", ours); err == nil {
			if _, err := netns.Run("ip", "link", "del", ours); err != nil {
				errs = append(errs, fmt.Errorf("serve: delete the veth pair: %w", err))
			}
		}
		s.veth = false
	}
	if s.own != nil {
		if err := s.own.Delete(); err != nil {
			errs = append(errs, fmt.Errorf("serve: delete our veth end's namespace: %w", err))
		}
		s.own = nil
	}
	return errors.Join(errs...)
}

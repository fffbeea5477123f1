package serve

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/afpacket"
	"github.com/pollnet/pollnet/pmd/afxdp"
)

// vethPort is a port kind on our end of a veth pair.
type vethPort struct {
	via string // what the port is, for the first line Run prints
	// offloads are the ethtool features turned off on the kernel's end.
	// Neither port takes a frame beyond the MTU, so TSO and GSO go.
	// AF_PACKET completes the partial checksums the kernel leaves to a
	// veth (pmd/afpacket); XDP sees the bytes as they are, so for AF_XDP
	// the kernel fills them itself (tx off), and GRO goes too, as the
	// veth bench has it.
	offloads []string
	// usable says, before anything is made, why this kernel cannot run
	// the port, or nil.
	usable func() error
	// open opens our end, in our end's namespace.
	open func(dev string) (engine.Port, error)
}

var vethPorts = map[string]vethPort{
	PortAFPacket: {via: "AF_PACKET", offloads: []string{"tso", "off", "gso", "off"},
		usable: func() error { return nil },
		open:   func(dev string) (engine.Port, error) { return afpacket.Open(afpacket.Config{Name: dev}) }},
	PortAFXDP: {via: "AF_XDP", offloads: []string{"tx", "off", "tso", "off", "gso", "off", "gro", "off"},
		usable: func() error {
			fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("serve: --port afxdp: this kernel has no AF_XDP sockets (%v): use --port afpacket or tap", err)
			}
			unix.Close(fd)
			return nil
		},
		// Generic (SKB) mode: the mode every driver has.
		open: func(dev string) (engine.Port, error) { return afxdp.Open(afxdp.Config{Interface: dev}) }},
}

// openVeth makes the veth pair of a veth port kind and opens our end as
// that kind's port. Our end lives in a namespace of its own, made here,
// where the kernel has no address, no IPv6 and no forwarding: it sees every
// frame an AF_PACKET port sees (AF_PACKET taps, it does not take), and must
// answer or forward none of them. The kernel's end gets the peer address,
// here or in --netns, with the offloads off that would hand our port
// frames it cannot take.
func (s *Server) openVeth() error {
	kind := s.cfg.port()
	vp := vethPorts[kind]
	if _, err := exec.LookPath("ethtool"); err != nil {
		return fmt.Errorf("serve: --port %s needs ethtool to turn offloads off on the kernel's veth end: apt-get install ethtool (make deps does), or use --port tap", kind)
	}
	if err := vp.usable(); err != nil {
		return err
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
		in(append([]string{"ethtool", "-K", kernel}, vp.offloads...)...),
		in("ip", "addr", "add", s.cfg.Peer.String(), "dev", kernel),
		in("ip", "link", "set", kernel, "up"))
	for _, c := range cmds {
		if _, err := netns.Run(c...); err != nil {
			return fmt.Errorf("serve: set up the veth pair: %w", err)
		}
	}
	var p engine.Port
	if err := own.Do(func() (err error) {
		p, err = vp.open(ours)
		return err
	}); err != nil {
		return fmt.Errorf("serve: open our veth end as an %s port: %w", vp.via, err)
	}
	s.port, s.name = p, ours
	return nil
}

// removeVeth deletes the pair and our end's namespace. The pair goes
// first, by our end, wherever it is: the kernel deletes a namespace's
// interfaces in deferred work, so the kernel's end could outlive our exit
// if the namespace's deletion were left to delete it.
func (s *Server) removeVeth() error {
	var errs []error
	if s.veth {
		ours, _ := s.cfg.veth()
		here := []string{"ip"}
		if s.own != nil {
			if _, err := netns.Run("ip", "-n", s.own.Name, "link", "show", ours); err == nil {
				here = []string{"ip", "-n", s.own.Name}
			}
		}
		// Our end may not have reached its namespace: then it is here.
		if _, err := netns.Run(append(here, "link", "show", ours)...); err == nil {
			if _, err := netns.Run(append(here, "link", "del", ours)...); err != nil {
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

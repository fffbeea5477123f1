package bench

import (
	"errors"
	"fmt"

	"github.com/pollnet/pollnet/compare/testpmd"
	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/tap"
)

// The pps scenario on a TAP (--port tap): the veth scenario's rig with the
// link a TAP device, pn-dut, in the namespace. The device under test holds
// the TAP's file descriptor, pollnet's forwarder on a pmd/tap port or
// dpdk-testpmd on net_tap; the generator and sink is the same pktgen on an
// AF_PACKET port on the TAP's kernel netdev. What the generator sends, the
// kernel queues for the descriptor's reader; what the device under test
// writes, the kernel receives on the netdev, where the sink reads it.
//
// The rig makes the TAP persistent before either side opens it, so the
// generator can open first, as on the veth. The two devices under test open
// a TAP differently: pmd/tap with one queue asks for a single-queue TAP,
// net_tap always for a multi-queue one (IFF_MULTI_QUEUE), and the kernel
// attaches a descriptor only to a TAP of the same kind. So each path's rig
// makes the kind its device under test opens; with one queue attached both
// kinds hand every frame to that queue.

// PortTAP is the pps scenario on a TAP device.
const PortTAP = "tap"

// The MACs of the TAP rig. net_tap gives the TAP's kernel side the port's
// own address, so testpmd's port is told the one the kernel side already
// has: nothing changes under the generator, whose frames come back to its
// own address on both paths. pollnet's port has its own, as a NIC on the
// far side of the wire.
var (
	tapKernelMAC  = [6]byte{0x02, 0x70, 0x6e, 0x00, 0x00, 0x01} // the netdev: the generator's and net_tap's
	tapPollnetMAC = [6]byte{0x02, 0x70, 0x6e, 0x00, 0x00, 0x02} // pmd/tap's
)

// newRig is one run's rig: the veth pair, or the TAP made for the path's
// device under test.
func (c *VethConfig) newRig(size int, forTestpmd bool) (*vethRig, error) {
	if c.Port != PortTAP {
		return newVethRig(size, c.GenCore, c.FwdCore, !c.NoSteer)
	}
	dut, mq := tapPollnetMAC, false
	if forTestpmd {
		dut, mq = tapKernelMAC, true
	}
	return newTapRig(size, c.GenCore, !c.NoSteer, dut, mq)
}

// newTapRig makes the namespace and the persistent TAP (multi-queue if mq),
// with the kernel side's MAC fixed and the offloads off that would hand the
// ports frames beyond the MTU, and opens the generator's port on the kernel
// side, its frames addressed to dutMAC. It starts nothing.
func newTapRig(size, genCore int, steer bool, dutMAC [6]byte, mq bool) (_ *vethRig, err error) {
	r, err := newRigNS()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	add := []string{"ip", "tuntap", "add", "dev", vethDUT, "mode", "tap"}
	if mq {
		add = append(add, "multi_queue")
	}
	if _, err := r.ns.Exec(add...); err != nil {
		return nil, err
	}
	// Deleted before the namespace, so that nothing depends on the
	// namespace's teardown to remove a persistent TAP.
	r.links = []string{vethDUT}
	k := tapKernelMAC
	if _, err := r.ns.Exec("ip", "link", "set", vethDUT, "address", fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", k[0], k[1], k[2], k[3], k[4], k[5])); err != nil {
		return nil, err
	}
	if err := upWithoutOffloads(r.ns, vethDUT); err != nil {
		return nil, err
	}
	// Frames the device under test writes are received by the kernel in
	// its write(2) (tun_get_user), on its core: RPS moves that receive
	// processing, the sink's, to the generator's core, as on the veth.
	// The other way has no receive processing to move: the generator's
	// send queues the frame for the descriptor (tun_net_xmit) in its own
	// syscall, and the device under test copies it out in its read(2), on
	// its own core already.
	if steer {
		if err := steerVeth(r.ns, vethDUT, genCore); err != nil {
			return nil, err
		}
	}
	if err := r.openGen(vethDUT, size, func() ([6]byte, error) { return dutMAC, nil }); err != nil {
		return nil, err
	}
	if r.gen.Info().MAC != tapKernelMAC {
		return nil, fmt.Errorf("the TAP's kernel side has MAC %x, not the %x the rig gave it", r.gen.Info().MAC, tapKernelMAC)
	}
	return r, nil
}

// openTapDUT opens pollnet's port on the rig's TAP, with the MAC the
// generator addresses.
func openTapDUT(r *vethRig) (engine.Port, error) {
	var p *tap.Port
	err := r.ns.Do(func() (err error) {
		p, err = tap.Open(tap.Config{Name: vethDUT, MAC: tapPollnetMAC})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the rig's TAP (single-queue, persistent): %w", err)
	}
	if p.Name() != vethDUT || p.Info().MAC != tapPollnetMAC {
		return nil, errors.Join(fmt.Errorf("pmd/tap opened %s with MAC %x, not %s with %x", p.Name(), p.Info().MAC, vethDUT, tapPollnetMAC), p.Close())
	}
	return p, nil
}

// ifaceForward is testpmd's launch on the rig's device under test end.
func (c *VethConfig) ifaceForward(size int) testpmd.IfaceForward {
	f := testpmd.IfaceForward{Vdev: vdevOf(c.Port), Iface: vethDUT, Size: size, Warmup: c.Warmup, Duration: c.Duration}
	if c.Port == PortTAP {
		f.MAC = tapKernelMAC
	}
	return f
}

// link names the scenario's link, for the knobs.
func (c *VethConfig) link() string {
	if c.Port == PortTAP {
		return "tap"
	}
	return "veth"
}

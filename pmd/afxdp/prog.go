package afxdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Mode is how the redirect program is attached.
type Mode int

// Attach modes.
const (
	// Generic attaches in SKB mode (XDP_FLAGS_SKB_MODE): the program runs on
	// the skb after the driver, for any driver; veth's AF_XDP tests use it.
	Generic Mode = iota
	// Native attaches in driver mode (XDP_FLAGS_DRV_MODE), where the driver
	// has it; veth does.
	Native
)

func (m Mode) String() string {
	if m == Native {
		return "native"
	}
	return "generic"
}

// xdpMdRxQueue is the offset of rx_queue_index in struct xdp_md, the
// program's context: data, data_end, data_meta, ingress_ifindex, then it.
const xdpMdRxQueue = 16

// xdpPass is XDP_PASS: bpf_redirect_map returns its flags' low bits as the
// action when the map has no socket for the key, so frames of a queue
// without a socket go on to the kernel's stack.
const xdpPass = 2

// redirect is the XDP program and its XSKMAP: every frame received on queue
// q goes to the socket at key q, or to the kernel's stack if there is none.
// It is attached through a bpf_link, which the kernel detaches when the link
// is closed, or when its last descriptor goes with this process, so no
// program outlives the port. A link is detached by closing it, so it needs
// no mode flag; an attachment made through netlink must be detached with
// the flag it was attached with.
type redirect struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	link link.Link
}

// newRedirect builds the program with the asm package: the equivalent of
//
//	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
func newRedirect(queues int) (*redirect, error) {
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pollnet_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return nil, fmt.Errorf("afxdp: create XSKMAP: %w", err)
	}
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, xdpMdRxQueue, asm.Word),
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "pollnet_xsk", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		xsks.Close()
		return nil, fmt.Errorf("afxdp: load redirect program: %w", err)
	}
	return &redirect{xsks: xsks, prog: prog}, nil
}

// insert puts the socket fd at the queue's key.
func (r *redirect) insert(queue, fd int) error {
	if err := r.xsks.Update(uint32(queue), uint32(fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("afxdp: put queue %d's socket in the XSKMAP: %w", queue, err)
	}
	return nil
}

// attach links the program to the interface in the given mode.
func (r *redirect) attach(ifindex int, mode Mode) error {
	flags := link.XDPGenericMode
	if mode == Native {
		flags = link.XDPDriverMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: r.prog, Interface: ifindex, Flags: flags})
	if err != nil {
		return fmt.Errorf("afxdp: attach redirect program to ifindex %d in %s mode: %w", ifindex, mode, err)
	}
	r.link = l
	return nil
}

// close detaches the program and frees it and the map.
func (r *redirect) close() error {
	var errs []error
	if r.link != nil {
		if err := r.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: detach redirect program: %w", err))
		}
		r.link = nil
	}
	if err := r.prog.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := r.xsks.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Package ring provides bounded, lock-free, fixed-size rings that carry small
// values (in pollnet, mbuf indices) between goroutines.
//
// Two flavours exist:
//
//   - SPSC: one producer goroutine and one consumer goroutine. Cheapest: a
//     burst costs one release store of its own index and, at most, one load
//     of the other side's index.
//   - MPMC: any number of producers and consumers. Each slot carries a
//     sequence number, so a goroutine preempted in the middle of an operation
//     never makes the others wait for it.
//
// Both follow the DPDK rte_ring vocabulary: Burst moves as many values as it
// can, Bulk moves all or none, and the single-value forms are Bulk of one.
// No operation blocks, spins waiting on another goroutine, or allocates.
//
// Values stay in their slot after they are dequeued until a later lap
// overwrites them; a T holding pointers would therefore keep its referents
// reachable for up to one lap. pollnet uses pointer-free T.
package ring

import "fmt"

// MaxSize is the largest number of slots a ring may have.
const MaxSize = 1 << 24

// padSize separates fields written by different goroutines. A cache line is
// 64 bytes on amd64, but the L2 prefetchers of Zen (and Intel since Sandy
// Bridge) pull lines in adjacent 128-byte pairs, so two hot fields on
// neighbouring 64-byte lines would still ping-pong. 128 bytes per gap costs a
// few hundred bytes per ring, which is nothing next to the slot array.
const padSize = 128

type pad [padSize]byte

// checkSize reports whether size is a usable ring size.
func checkSize(size int) error {
	switch {
	case size < 2:
		return fmt.Errorf("ring: size %d is too small (minimum 2)", size)
	case size > MaxSize:
		return fmt.Errorf("ring: size %d is too large (maximum %d)", size, MaxSize)
	case size&(size-1) != 0:
		return fmt.Errorf("ring: size %d is not a power of two", size)
	}
	return nil
}

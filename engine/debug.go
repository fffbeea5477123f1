package engine

// The debug build (go build -tags pollnetdebug) catches misuse of mbufs at
// the moment it happens, as KASAN and slab poisoning do for skbs:
//   - a freed mbuf's buffer is filled with poisonByte, so a use after free
//     reads an obvious pattern instead of the next owner's bytes;
//   - each free records its caller's stack in a side table, so a second
//     free panics at once with "mbuf X freed twice; first freed at <stack>";
//   - Data, Append, Prepend, Chain, Clone and Ref of a freed mbuf panic with
//     where it was freed.
//
// Other builds carry none of it: debug is a constant false there (see
// debug_off.go), so the compiler drops every "if debug" block, and the side
// table is an empty struct.

// poisonByte fills freed buffers in the debug build (slab's POISON_FREE).
const poisonByte = 0x6b

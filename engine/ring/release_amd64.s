//go:build !race

#include "textflag.h"

// func storeRelease(addr *uint64, v uint64)
//
// A plain MOV: on amd64 every store already has release semantics (TSO), and
// the call keeps the Go compiler from moving earlier memory accesses past it.
TEXT ·storeRelease(SB), NOSPLIT, $0-16
	MOVQ	addr+0(FP), AX
	MOVQ	v+8(FP), BX
	MOVQ	BX, 0(AX)
	RET

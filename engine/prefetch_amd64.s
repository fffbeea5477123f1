#include "textflag.h"

// func prefetchLines(addrs *uintptr, n int)
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVQ	addrs+0(FP), SI
	MOVQ	n+8(FP), CX
	TESTQ	CX, CX
	JE	done
loop:
	MOVQ	(SI), AX
	PREFETCHT0	(AX)
	ADDQ	$8, SI
	DECQ	CX
	JNE	loop
done:
	RET

// func prefetchLinesW(addrs *uintptr, n int)
TEXT ·prefetchLinesW(SB), NOSPLIT, $0-16
	MOVQ	addrs+0(FP), SI
	MOVQ	n+8(FP), CX
	TESTQ	CX, CX
	JE	donew
loopw:
	MOVQ	(SI), AX
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08 // PREFETCHW (AX), unknown to the Go assembler
	ADDQ	$8, SI
	DECQ	CX
	JNE	loopw
donew:
	RET

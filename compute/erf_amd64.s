//go:build amd64 && !purego

#include "textflag.h"

// Constants of erf32Scalar (erf.go), one float32 (or mask) each.
DATA erfAbs<>+0(SB)/4, $0x7fffffff
GLOBL erfAbs<>(SB), RODATA|NOPTR, $4
DATA erfFour<>+0(SB)/4, $0x40800000
GLOBL erfFour<>(SB), RODATA|NOPTR, $4
DATA erfHalf<>+0(SB)/4, $0x3f000000
GLOBL erfHalf<>(SB), RODATA|NOPTR, $4
DATA erfSign<>+0(SB)/4, $0x80000000
GLOBL erfSign<>(SB), RODATA|NOPTR, $4

// func erf32AVX512(out, x []float32, tab *[8][32]float32)
// len(x) is a positive multiple of 16 and len(out) >= len(x): erf32Scalar on sixteen values at a
// time, the same operations in the same order. tab holds erfTable by column (c0 … c5, w, omw; 32
// rows each), two registers a column, and each value's row is picked with a two-register permute.
// erfMax and erfScale are both 4, so one register holds both.
TEXT ·erf32AVX512(SB), NOSPLIT, $0-56
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	MOVQ tab+48(FP), AX
	VMOVUPS 0(AX), Z16              // c0, rows 0-15
	VMOVUPS 64(AX), Z17             // c0, rows 16-31
	VMOVUPS 128(AX), Z18            // c1
	VMOVUPS 192(AX), Z19
	VMOVUPS 256(AX), Z20            // c2
	VMOVUPS 320(AX), Z21
	VMOVUPS 384(AX), Z22            // c3
	VMOVUPS 448(AX), Z23
	VMOVUPS 512(AX), Z24            // c4
	VMOVUPS 576(AX), Z25
	VMOVUPS 640(AX), Z26            // c5
	VMOVUPS 704(AX), Z27
	VMOVUPS 768(AX), Z28            // w
	VMOVUPS 832(AX), Z29
	VMOVUPS 896(AX), Z30            // omw
	VMOVUPS 960(AX), Z31
	VPBROADCASTD erfAbs<>(SB), Z8
	VBROADCASTSS erfFour<>(SB), Z9
	VBROADCASTSS erfHalf<>(SB), Z10
	VPBROADCASTD erfSign<>(SB), Z11
loop16:
	VMOVUPS (SI), Z0
	VANDPS Z8, Z0, Z1               // a = |x|
	VMINPS Z1, Z9, Z1               // a = min(4, a); a when a is NaN
	VMULPS Z9, Z1, Z2               // f = 4a
	VCVTTPS2DQ Z2, Z3               // k = ⌊f⌋ (0x80000000 for NaN: row 0, and the result stays NaN)
	VCVTDQ2PS Z3, Z4
	VSUBPS Z4, Z2, Z4
	VSUBPS Z10, Z4, Z4              // t = (f - k) - 1/2
	VMOVDQA32 Z3, Z5
	VPERMI2PS Z27, Z26, Z5          // c5[k]
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z25, Z24, Z6          // c4[k]
	VMULPS Z4, Z5, Z5
	VADDPS Z6, Z5, Z5               // p = c5·t + c4
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z23, Z22, Z6          // c3[k]
	VMULPS Z4, Z5, Z5
	VADDPS Z6, Z5, Z5
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z21, Z20, Z6          // c2[k]
	VMULPS Z4, Z5, Z5
	VADDPS Z6, Z5, Z5
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z19, Z18, Z6          // c1[k]
	VMULPS Z4, Z5, Z5
	VADDPS Z6, Z5, Z5
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z17, Z16, Z6          // c0[k]
	VMULPS Z4, Z5, Z5
	VADDPS Z6, Z5, Z5               // p
	VMOVDQA32 Z3, Z6
	VPERMI2PS Z29, Z28, Z6          // w[k]
	VMOVDQA32 Z3, Z7
	VPERMI2PS Z31, Z30, Z7          // omw[k]
	VMULPS Z1, Z6, Z6
	VADDPS Z7, Z6, Z6               // w·a + omw
	VMULPS Z6, Z5, Z5               // r = p·(w·a + omw)
	VANDPS Z11, Z0, Z6
	VORPS Z6, Z5, Z5                // erf(x) = copysign(r, x)
	VMOVUPS Z5, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ loop16
	VZEROUPPER
	RET

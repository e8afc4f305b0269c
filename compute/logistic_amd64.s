//go:build amd64 && !purego

#include "textflag.h"

// Constants of logistic32f (logistic.go), one float32 (or int32) each.

DATA lgAbs<>+0(SB)/4, $0x7fffffff
GLOBL lgAbs<>(SB), RODATA|NOPTR, $4
DATA lgMaxC<>+0(SB)/4, $0x42d00000
GLOBL lgMaxC<>(SB), RODATA|NOPTR, $4
DATA lgLog2eC<>+0(SB)/4, $0x3fb8aa3b
GLOBL lgLog2eC<>(SB), RODATA|NOPTR, $4
DATA lgMagicC<>+0(SB)/4, $0x4b400000
GLOBL lgMagicC<>(SB), RODATA|NOPTR, $4
DATA lgLn2hiC<>+0(SB)/4, $0x3f318000
GLOBL lgLn2hiC<>(SB), RODATA|NOPTR, $4
DATA lgLn2loC<>+0(SB)/4, $0xb95e8083
GLOBL lgLn2loC<>(SB), RODATA|NOPTR, $4
DATA lgC2C<>+0(SB)/4, $0x3f000000
GLOBL lgC2C<>(SB), RODATA|NOPTR, $4
DATA lgC3C<>+0(SB)/4, $0x3e2aaaab
GLOBL lgC3C<>(SB), RODATA|NOPTR, $4
DATA lgC4C<>+0(SB)/4, $0x3d2aaaab
GLOBL lgC4C<>(SB), RODATA|NOPTR, $4
DATA lgC5C<>+0(SB)/4, $0x3c088889
GLOBL lgC5C<>(SB), RODATA|NOPTR, $4
DATA lgC6C<>+0(SB)/4, $0x3ab60b61
GLOBL lgC6C<>(SB), RODATA|NOPTR, $4
DATA lgC7C<>+0(SB)/4, $0x39500d01
GLOBL lgC7C<>(SB), RODATA|NOPTR, $4
DATA lgOneC<>+0(SB)/4, $0x3f800000
GLOBL lgOneC<>(SB), RODATA|NOPTR, $4
DATA lgMagicBitsC<>+0(SB)/4, $0x4b400000
GLOBL lgMagicBitsC<>(SB), RODATA|NOPTR, $4
DATA lgBiasC<>+0(SB)/4, $0x0000007f
GLOBL lgBiasC<>(SB), RODATA|NOPTR, $4
DATA lgSignC<>+0(SB)/4, $0x80000000
GLOBL lgSignC<>(SB), RODATA|NOPTR, $4

// The exponential e = e^-a of expNegCore32, shared by the kernels below. EXPNEG512 reads a from Z1
// (clamped here: a = min(104, a), a when a is NaN) and leaves e in Z6, using Z2-Z5; LOADEXP512
// fills Z17-Z31 with its constants. EXPNEG256 is the same on Y registers with a in Y1, e in Y6,
// Y2-Y5 and Y7 as scratch and LOADEXP256's constants in Y9-Y15 (the AVX2 kernels have 16
// registers, so the polynomial's and ln 2's constants are broadcast from memory where they are used).

#define LOADEXP512 \
	VBROADCASTSS lgMaxC<>(SB), Z17; \
	VBROADCASTSS lgLog2eC<>(SB), Z18; \
	VBROADCASTSS lgMagicC<>(SB), Z19; \
	VBROADCASTSS lgLn2hiC<>(SB), Z20; \
	VBROADCASTSS lgLn2loC<>(SB), Z21; \
	VBROADCASTSS lgC2C<>(SB), Z22; \
	VBROADCASTSS lgC3C<>(SB), Z23; \
	VBROADCASTSS lgC4C<>(SB), Z24; \
	VBROADCASTSS lgC5C<>(SB), Z25; \
	VBROADCASTSS lgC6C<>(SB), Z26; \
	VBROADCASTSS lgC7C<>(SB), Z27; \
	VBROADCASTSS lgOneC<>(SB), Z28; \
	VPBROADCASTD lgMagicBitsC<>(SB), Z29; \
	VPBROADCASTD lgBiasC<>(SB), Z30; \
	VPBROADCASTD lgSignC<>(SB), Z31

#define EXPNEG512 \
	VMINPS Z1, Z17, Z1; \
	VMULPS Z18, Z1, Z2; \
	VSUBPS Z2, Z19, Z2; \
	VSUBPS Z19, Z2, Z3; \
	VMULPS Z20, Z3, Z4; \
	VADDPS Z4, Z1, Z4; \
	VXORPS Z31, Z4, Z5; \
	VMULPS Z21, Z3, Z4; \
	VSUBPS Z4, Z5, Z5; \
	VMULPS Z27, Z5, Z6; \
	VADDPS Z26, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z25, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z24, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z23, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z22, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z28, Z6, Z6; \
	VMULPS Z5, Z6, Z6; \
	VADDPS Z28, Z6, Z6; \
	VPSUBD Z29, Z2, Z2; \
	VPSRAD $1, Z2, Z4; \
	VPSUBD Z4, Z2, Z2; \
	VPADDD Z30, Z4, Z4; \
	VPSLLD $23, Z4, Z4; \
	VPADDD Z30, Z2, Z2; \
	VPSLLD $23, Z2, Z2; \
	VMULPS Z4, Z6, Z6; \
	VMULPS Z2, Z6, Z6

// Step by step (both widths): t = 1.5·2^23 - a·log2(e) holds n in its low bits; nf = t - 1.5·2^23;
// r = -(a + nf·ln2hi) - nf·ln2lo; p = the degree-7 polynomial in r, ≈ e^r; n1 = n >> 1, n2 = n - n1;
// e = p·2^n1·2^n2.

#define LOADEXP256 \
	VBROADCASTSS lgMaxC<>(SB), Y9; \
	VBROADCASTSS lgLog2eC<>(SB), Y10; \
	VBROADCASTSS lgMagicC<>(SB), Y11; \
	VBROADCASTSS lgOneC<>(SB), Y12; \
	VPBROADCASTD lgMagicBitsC<>(SB), Y13; \
	VPBROADCASTD lgBiasC<>(SB), Y14; \
	VPBROADCASTD lgSignC<>(SB), Y15

#define EXPNEG256 \
	VMINPS Y1, Y9, Y1; \
	VMULPS Y10, Y1, Y2; \
	VSUBPS Y2, Y11, Y2; \
	VSUBPS Y11, Y2, Y3; \
	VBROADCASTSS lgLn2hiC<>(SB), Y7; \
	VMULPS Y7, Y3, Y4; \
	VADDPS Y4, Y1, Y4; \
	VXORPS Y15, Y4, Y5; \
	VBROADCASTSS lgLn2loC<>(SB), Y7; \
	VMULPS Y7, Y3, Y4; \
	VSUBPS Y4, Y5, Y5; \
	VBROADCASTSS lgC7C<>(SB), Y7; \
	VMULPS Y7, Y5, Y6; \
	VBROADCASTSS lgC6C<>(SB), Y7; \
	VADDPS Y7, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VBROADCASTSS lgC5C<>(SB), Y7; \
	VADDPS Y7, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VBROADCASTSS lgC4C<>(SB), Y7; \
	VADDPS Y7, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VBROADCASTSS lgC3C<>(SB), Y7; \
	VADDPS Y7, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VBROADCASTSS lgC2C<>(SB), Y7; \
	VADDPS Y7, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VADDPS Y12, Y6, Y6; \
	VMULPS Y5, Y6, Y6; \
	VADDPS Y12, Y6, Y6; \
	VPSUBD Y13, Y2, Y2; \
	VPSRAD $1, Y2, Y4; \
	VPSUBD Y4, Y2, Y2; \
	VPADDD Y14, Y4, Y4; \
	VPSLLD $23, Y4, Y4; \
	VPADDD Y14, Y2, Y2; \
	VPSLLD $23, Y2, Y2; \
	VMULPS Y4, Y6, Y6; \
	VMULPS Y2, Y6, Y6

// func logistic32AVX512(out, x []float32)
// len(x) is a positive multiple of 16 and len(out) >= len(x): logistic32Scalar on 16 values
// at a time, the same operations in the same order.
TEXT ·logistic32AVX512(SB), NOSPLIT, $0-48
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VPBROADCASTD lgAbs<>(SB), Z16
	LOADEXP512
loop16:
	VMOVUPS (SI), Z0
	VANDPS Z16, Z0, Z1              // a = |x|
	EXPNEG512                       // Z6 = e^-a
	VADDPS Z28, Z6, Z4              // 1 + e
	VPMOVD2M Z0, K1                 // sign bits of x
	VBLENDMPS Z6, Z28, K1, Z7       // x < 0: e, else 1
	VDIVPS Z4, Z7, Z7
	VMOVUPS Z7, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ loop16
	VZEROUPPER
	RET

// func logistic32AVX2(out, x []float32)
// len(x) is a positive multiple of 8 and len(out) >= len(x): logistic32Scalar on 8 values
// at a time, the same operations in the same order.
TEXT ·logistic32AVX2(SB), NOSPLIT, $0-48
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VPBROADCASTD lgAbs<>(SB), Y8
	LOADEXP256
loop8:
	VMOVUPS (SI), Y0
	VANDPS Y8, Y0, Y1               // a = |x|
	EXPNEG256                       // Y6 = e^-a
	VADDPS Y12, Y6, Y4              // 1 + e
	VBLENDVPS Y0, Y6, Y12, Y7       // x < 0 (sign bit): e, else 1
	VDIVPS Y4, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop8
	VZEROUPPER
	RET

// func expNegShift32AVX512(out, x []float32, m, c float32)
// len(x) is a positive multiple of 16 and len(out) >= len(x): out[i] = expNegCore32(min(m - c·x[i], 104)),
// the exponential of logistic32AVX512 with a = m - c·x[i] in place of |x| (the product rounded
// before the difference, no fused multiply-add), sixteen values at a time.
TEXT ·expNegShift32AVX512(SB), NOSPLIT, $0-56
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VBROADCASTSS m+48(FP), Z16
	VBROADCASTSS c+52(FP), Z7
	LOADEXP512
eloop16:
	VMOVUPS (SI), Z0
	VMULPS Z7, Z0, Z0               // c·x
	VSUBPS Z0, Z16, Z1              // a = m - c·x
	EXPNEG512                       // Z6 = e^-a
	VMOVUPS Z6, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ eloop16
	VZEROUPPER
	RET

// func expNegShift32AVX2(out, x []float32, m, c float32)
// len(x) is a positive multiple of 8 and len(out) >= len(x): expNegShift32AVX512 eight values at a
// time (no register is left for c, so it is broadcast from the frame in the loop).
TEXT ·expNegShift32AVX2(SB), NOSPLIT, $0-56
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VBROADCASTSS m+48(FP), Y8
	LOADEXP256
eloop8:
	VMOVUPS (SI), Y0
	VBROADCASTSS c+52(FP), Y1
	VMULPS Y1, Y0, Y0               // c·x
	VSUBPS Y0, Y8, Y1               // a = m - c·x
	EXPNEG256                       // Y6 = e^-a
	VMOVUPS Y6, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ eloop8
	VZEROUPPER
	RET

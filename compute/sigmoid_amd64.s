//go:build amd64 && !purego

#include "textflag.h"

// Constants of sigmoid32 (sigmoid.go), each repeated in the four lanes of a 256-bit register.

DATA sigAbs<>+0(SB)/8, $0x7fffffffffffffff
DATA sigAbs<>+8(SB)/8, $0x7fffffffffffffff
DATA sigAbs<>+16(SB)/8, $0x7fffffffffffffff
DATA sigAbs<>+24(SB)/8, $0x7fffffffffffffff
GLOBL sigAbs<>(SB), RODATA|NOPTR, $32
DATA sigSign<>+0(SB)/8, $0x8000000000000000
DATA sigSign<>+8(SB)/8, $0x8000000000000000
DATA sigSign<>+16(SB)/8, $0x8000000000000000
DATA sigSign<>+24(SB)/8, $0x8000000000000000
GLOBL sigSign<>(SB), RODATA|NOPTR, $32
DATA sigOne<>+0(SB)/8, $0x3ff0000000000000
DATA sigOne<>+8(SB)/8, $0x3ff0000000000000
DATA sigOne<>+16(SB)/8, $0x3ff0000000000000
DATA sigOne<>+24(SB)/8, $0x3ff0000000000000
GLOBL sigOne<>(SB), RODATA|NOPTR, $32
DATA sigC2<>+0(SB)/8, $0x3fe0000000000000
DATA sigC2<>+8(SB)/8, $0x3fe0000000000000
DATA sigC2<>+16(SB)/8, $0x3fe0000000000000
DATA sigC2<>+24(SB)/8, $0x3fe0000000000000
GLOBL sigC2<>(SB), RODATA|NOPTR, $32
DATA sigC6<>+0(SB)/8, $0x3fc5555555555555
DATA sigC6<>+8(SB)/8, $0x3fc5555555555555
DATA sigC6<>+16(SB)/8, $0x3fc5555555555555
DATA sigC6<>+24(SB)/8, $0x3fc5555555555555
GLOBL sigC6<>(SB), RODATA|NOPTR, $32
DATA sigC24<>+0(SB)/8, $0x3fa5555555555555
DATA sigC24<>+8(SB)/8, $0x3fa5555555555555
DATA sigC24<>+16(SB)/8, $0x3fa5555555555555
DATA sigC24<>+24(SB)/8, $0x3fa5555555555555
GLOBL sigC24<>(SB), RODATA|NOPTR, $32
DATA sigC120<>+0(SB)/8, $0x3f81111111111111
DATA sigC120<>+8(SB)/8, $0x3f81111111111111
DATA sigC120<>+16(SB)/8, $0x3f81111111111111
DATA sigC120<>+24(SB)/8, $0x3f81111111111111
GLOBL sigC120<>(SB), RODATA|NOPTR, $32
DATA sigC720<>+0(SB)/8, $0x3f56c16c16c16c17
DATA sigC720<>+8(SB)/8, $0x3f56c16c16c16c17
DATA sigC720<>+16(SB)/8, $0x3f56c16c16c16c17
DATA sigC720<>+24(SB)/8, $0x3f56c16c16c16c17
GLOBL sigC720<>(SB), RODATA|NOPTR, $32
DATA sigC5040<>+0(SB)/8, $0x3f2a01a01a01a01a
DATA sigC5040<>+8(SB)/8, $0x3f2a01a01a01a01a
DATA sigC5040<>+16(SB)/8, $0x3f2a01a01a01a01a
DATA sigC5040<>+24(SB)/8, $0x3f2a01a01a01a01a
GLOBL sigC5040<>(SB), RODATA|NOPTR, $32
DATA sigC40320<>+0(SB)/8, $0x3efa01a01a01a01a
DATA sigC40320<>+8(SB)/8, $0x3efa01a01a01a01a
DATA sigC40320<>+16(SB)/8, $0x3efa01a01a01a01a
DATA sigC40320<>+24(SB)/8, $0x3efa01a01a01a01a
GLOBL sigC40320<>(SB), RODATA|NOPTR, $32
DATA sigC362880<>+0(SB)/8, $0x3ec71de3a556c734
DATA sigC362880<>+8(SB)/8, $0x3ec71de3a556c734
DATA sigC362880<>+16(SB)/8, $0x3ec71de3a556c734
DATA sigC362880<>+24(SB)/8, $0x3ec71de3a556c734
GLOBL sigC362880<>(SB), RODATA|NOPTR, $32
DATA sigC3628800<>+0(SB)/8, $0x3e927e4fb7789f5c
DATA sigC3628800<>+8(SB)/8, $0x3e927e4fb7789f5c
DATA sigC3628800<>+16(SB)/8, $0x3e927e4fb7789f5c
DATA sigC3628800<>+24(SB)/8, $0x3e927e4fb7789f5c
GLOBL sigC3628800<>(SB), RODATA|NOPTR, $32
DATA sigC39916800<>+0(SB)/8, $0x3e5ae64567f544e4
DATA sigC39916800<>+8(SB)/8, $0x3e5ae64567f544e4
DATA sigC39916800<>+16(SB)/8, $0x3e5ae64567f544e4
DATA sigC39916800<>+24(SB)/8, $0x3e5ae64567f544e4
GLOBL sigC39916800<>(SB), RODATA|NOPTR, $32
DATA sigNegLog2e<>+0(SB)/8, $0xbff71547652b82fe
DATA sigNegLog2e<>+8(SB)/8, $0xbff71547652b82fe
DATA sigNegLog2e<>+16(SB)/8, $0xbff71547652b82fe
DATA sigNegLog2e<>+24(SB)/8, $0xbff71547652b82fe
GLOBL sigNegLog2e<>(SB), RODATA|NOPTR, $32
DATA sigMagic<>+0(SB)/8, $0x4338000000000000
DATA sigMagic<>+8(SB)/8, $0x4338000000000000
DATA sigMagic<>+16(SB)/8, $0x4338000000000000
DATA sigMagic<>+24(SB)/8, $0x4338000000000000
GLOBL sigMagic<>(SB), RODATA|NOPTR, $32
DATA sigLn2hi<>+0(SB)/8, $0x3fe62e42fee00000
DATA sigLn2hi<>+8(SB)/8, $0x3fe62e42fee00000
DATA sigLn2hi<>+16(SB)/8, $0x3fe62e42fee00000
DATA sigLn2hi<>+24(SB)/8, $0x3fe62e42fee00000
GLOBL sigLn2hi<>(SB), RODATA|NOPTR, $32
DATA sigLn2lo<>+0(SB)/8, $0x3dea39ef35793c76
DATA sigLn2lo<>+8(SB)/8, $0x3dea39ef35793c76
DATA sigLn2lo<>+16(SB)/8, $0x3dea39ef35793c76
DATA sigLn2lo<>+24(SB)/8, $0x3dea39ef35793c76
GLOBL sigLn2lo<>(SB), RODATA|NOPTR, $32
DATA sigMax<>+0(SB)/8, $0x405b800000000000
DATA sigMax<>+8(SB)/8, $0x405b800000000000
DATA sigMax<>+16(SB)/8, $0x405b800000000000
DATA sigMax<>+24(SB)/8, $0x405b800000000000
GLOBL sigMax<>(SB), RODATA|NOPTR, $32
DATA sigBias<>+0(SB)/8, $0x00000000000003ff
DATA sigBias<>+8(SB)/8, $0x00000000000003ff
DATA sigBias<>+16(SB)/8, $0x00000000000003ff
DATA sigBias<>+24(SB)/8, $0x00000000000003ff
GLOBL sigBias<>(SB), RODATA|NOPTR, $32

// func sigmoid32AVX2(out, x []float32)
// len(x) is a positive multiple of 4 and len(out) >= len(x). Four float32 values per iteration, in
// float64 lanes, with the same operations in the same order as sigmoid32Scalar.
TEXT ·sigmoid32AVX2(SB), NOSPLIT, $0-48
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VMOVUPD sigMax<>(SB), Y15
	VMOVUPD sigOne<>(SB), Y14
	VMOVUPD sigMagic<>(SB), Y13
	VMOVUPD sigAbs<>(SB), Y12

loop:
	VCVTPS2PD (SI), Y0               // x
	VANDPD Y12, Y0, Y1               // a = |x|
	VMINPD Y1, Y15, Y1               // a = min(110, a); a when a is NaN
	VMULPD sigNegLog2e<>(SB), Y1, Y2 // -a·log2(e)
	VADDPD Y13, Y2, Y2               // t = -a·log2(e) + 1.5·2^52: n = round(-a·log2(e)) in the low bits
	VSUBPD Y13, Y2, Y3               // nf = t - 1.5·2^52
	VXORPD sigSign<>(SB), Y1, Y4     // -a
	VMULPD sigLn2hi<>(SB), Y3, Y5
	VSUBPD Y5, Y4, Y4
	VMULPD sigLn2lo<>(SB), Y3, Y5
	VSUBPD Y5, Y4, Y4                // r = -a - nf·ln2hi - nf·ln2lo
	VMULPD Y4, Y4, Y5                // r²
	VMULPD sigC6<>(SB), Y4, Y6
	VADDPD sigC2<>(SB), Y6, Y6
	VMULPD Y6, Y5, Y6
	VADDPD Y14, Y4, Y7
	VADDPD Y6, Y7, Y7                // p0 = 1 + r + r²(1/2 + r/6)
	VMULPD sigC5040<>(SB), Y4, Y8
	VADDPD sigC720<>(SB), Y8, Y8
	VMULPD Y8, Y5, Y8
	VMULPD sigC120<>(SB), Y4, Y9
	VADDPD sigC24<>(SB), Y9, Y9
	VADDPD Y8, Y9, Y9                // p1 = 1/24 + r/120 + r²(1/720 + r/5040)
	VMULPD sigC39916800<>(SB), Y4, Y8
	VADDPD sigC3628800<>(SB), Y8, Y8
	VMULPD Y8, Y5, Y8
	VMULPD sigC362880<>(SB), Y4, Y10
	VADDPD sigC40320<>(SB), Y10, Y10
	VADDPD Y8, Y10, Y10              // p2 = 1/8! + r/9! + r²(1/10! + r/11!)
	VMULPD Y5, Y5, Y5                // r⁴
	VMULPD Y10, Y5, Y10
	VADDPD Y10, Y9, Y9
	VMULPD Y9, Y5, Y9
	VADDPD Y9, Y7, Y7                // p = p0 + r⁴(p1 + r⁴·p2) ≈ e^r
	VPADDQ sigBias<>(SB), Y2, Y2
	VPSLLQ $52, Y2, Y2               // 2^n
	VMULPD Y2, Y7, Y7                // e = e^-a
	VBLENDVPD Y0, Y7, Y14, Y8        // x < 0 (sign bit): e, else 1
	VADDPD Y14, Y7, Y9               // 1 + e
	VDIVPD Y9, Y8, Y8
	VCVTPD2PSY Y8, X8
	VMOVUPS X8, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	SUBQ $4, CX
	JNZ loop
	VZEROUPPER
	RET

// func sigmoid32AVX512(out, x []float32)
// len(x) is a positive multiple of 8 and len(out) >= len(x). sigmoid32AVX2's operations, in the same
// order, on eight float64 lanes; the constants are broadcast once into Z16-Z31.
TEXT ·sigmoid32AVX512(SB), NOSPLIT, $0-48
	MOVQ out_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VBROADCASTSD sigMax<>(SB), Z15
	VBROADCASTSD sigOne<>(SB), Z14
	VBROADCASTSD sigMagic<>(SB), Z13
	VBROADCASTSD sigAbs<>(SB), Z12
	VBROADCASTSD sigNegLog2e<>(SB), Z16
	VBROADCASTSD sigSign<>(SB), Z17
	VBROADCASTSD sigLn2hi<>(SB), Z18
	VBROADCASTSD sigLn2lo<>(SB), Z19
	VBROADCASTSD sigC6<>(SB), Z20
	VBROADCASTSD sigC2<>(SB), Z21
	VBROADCASTSD sigC5040<>(SB), Z22
	VBROADCASTSD sigC720<>(SB), Z23
	VBROADCASTSD sigC120<>(SB), Z24
	VBROADCASTSD sigC24<>(SB), Z25
	VBROADCASTSD sigC39916800<>(SB), Z26
	VBROADCASTSD sigC3628800<>(SB), Z27
	VBROADCASTSD sigC362880<>(SB), Z28
	VBROADCASTSD sigC40320<>(SB), Z29
	VPBROADCASTQ sigBias<>(SB), Z30

loop512:
	VCVTPS2PD (SI), Z0       // x
	VANDPD Z12, Z0, Z1       // a = |x|
	VMINPD Z1, Z15, Z1       // a = min(110, a); a when a is NaN
	VMULPD Z16, Z1, Z2       // -a·log2(e)
	VADDPD Z13, Z2, Z2       // t
	VSUBPD Z13, Z2, Z3       // nf
	VXORPD Z17, Z1, Z4       // -a
	VMULPD Z18, Z3, Z5
	VSUBPD Z5, Z4, Z4
	VMULPD Z19, Z3, Z5
	VSUBPD Z5, Z4, Z4        // r
	VMULPD Z4, Z4, Z5        // r²
	VMULPD Z20, Z4, Z6
	VADDPD Z21, Z6, Z6
	VMULPD Z6, Z5, Z6
	VADDPD Z14, Z4, Z7
	VADDPD Z6, Z7, Z7        // p0
	VMULPD Z22, Z4, Z8
	VADDPD Z23, Z8, Z8
	VMULPD Z8, Z5, Z8
	VMULPD Z24, Z4, Z9
	VADDPD Z25, Z9, Z9
	VADDPD Z8, Z9, Z9        // p1
	VMULPD Z26, Z4, Z8
	VADDPD Z27, Z8, Z8
	VMULPD Z8, Z5, Z8
	VMULPD Z28, Z4, Z10
	VADDPD Z29, Z10, Z10
	VADDPD Z8, Z10, Z10      // p2
	VMULPD Z5, Z5, Z5        // r⁴
	VMULPD Z10, Z5, Z10
	VADDPD Z10, Z9, Z9
	VMULPD Z9, Z5, Z9
	VADDPD Z9, Z7, Z7        // p ≈ e^r
	VPADDQ Z30, Z2, Z2
	VPSLLQ $52, Z2, Z2       // 2^n
	VMULPD Z2, Z7, Z7        // e = e^-a
	VPMOVQ2M Z0, K1          // sign bits of x
	VBLENDMPD Z7, Z14, K1, Z8 // x < 0: e, else 1
	VADDPD Z14, Z7, Z9       // 1 + e
	VDIVPD Z9, Z8, Z8
	VCVTPD2PS Z8, Y8
	VMOVUPS Y8, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop512
	VZEROUPPER
	RET

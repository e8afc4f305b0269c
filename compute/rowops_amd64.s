//go:build amd64 && !purego

#include "textflag.h"

// func sum32to64AVX512(x []float32) float64
// len(x) is a positive multiple of 16: the float64 sum of x in sixteen lanes (lane j adds x[16i+j],
// i ascending), then the lanes pairwise: j + (j+8), j + (j+4), j + (j+2), 0 + 1 (see sumRow32).
TEXT ·sum32to64AVX512(SB), NOSPLIT, $0-32
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
sloop:
	VCVTPS2PD (SI), Z2              // lanes 0-7
	VCVTPS2PD 32(SI), Z3            // lanes 8-15
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ sloop
	VADDPD Z1, Z0, Z0               // j + (j+8)
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPD Y1, Y0, Y0               // j + (j+4)
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0               // j + (j+2)
	VUNPCKHPD X0, X0, X1
	VADDSD X1, X0, X0               // 0 + 1
	VZEROUPPER
	MOVSD X0, ret+24(FP)
	RET

// func maxNaN32AVX512(x []float32) (m float32, nan bool)
// len(x) is a positive multiple of 16: the largest value of x, and whether x holds a NaN.
TEXT ·maxNaN32AVX512(SB), NOSPLIT, $0-29
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS (SI), Z0
	KXORW K1, K1, K1
mloop:
	VMOVUPS (SI), Z2
	VCMPPS $3, Z2, Z2, K2           // unordered with itself: NaN
	KORW K2, K1, K1
	VMAXPS Z2, Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ mloop
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1         // lanes 2,3,0,1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1         // lanes 1,0,3,2
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, m+24(FP)
	KORTESTW K1, K1
	SETNE nan+28(FP)
	RET

// func scale32AVX512(x []float32, s float32)
// len(x) is a positive multiple of 16: x[i] *= s.
TEXT ·scale32AVX512(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS s+24(FP), Z1
cloop:
	VMULPS (SI), Z1, Z2
	VMOVUPS Z2, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ cloop
	VZEROUPPER
	RET

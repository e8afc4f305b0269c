//go:build amd64 && !purego

#include "textflag.h"

// func affineF32AVX2(dst, src, m, a, b []float32)
// len(src) is a positive multiple of 8; dst, m, a, b hold at least as many values.
// dst[i] = (src[i] - m[i])·a[i] + b[i], each operation rounded as in Go (no fused multiply-add).
TEXT ·affineF32AVX2(SB), NOSPLIT, $0-120
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	MOVQ m_base+48(FP), R8
	MOVQ a_base+72(FP), R9
	MOVQ b_base+96(FP), R10
affineloop:
	VMOVUPS (SI), Y0
	VSUBPS (R8), Y0, Y0
	VMULPS (R9), Y0, Y0
	VADDPS (R10), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ affineloop
	VZEROUPPER
	RET

// func chanSums16AVX2(s, q, shift []float64, x []float32, stride, n int)
// For the 16 channels j < 16 and the n > 0 positions p (x[p·stride + j], stride in values):
// d = float64(x[p·stride + j]) - shift[j]; s[j] += d; q[j] += d·d, in the order of p, each operation
// rounded as in Go (no fused multiply-add). s, q and shift hold at least 16 values.
TEXT ·chanSums16AVX2(SB), NOSPLIT, $0-112
	MOVQ s_base+0(FP), DI
	MOVQ q_base+24(FP), DX
	MOVQ shift_base+48(FP), BX
	MOVQ x_base+72(FP), SI
	MOVQ stride+96(FP), R8
	SHLQ $2, R8
	MOVQ n+104(FP), CX
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	VMOVUPD (DX), Y4
	VMOVUPD 32(DX), Y5
	VMOVUPD 64(DX), Y6
	VMOVUPD 96(DX), Y7
	VMOVUPD (BX), Y8
	VMOVUPD 32(BX), Y9
	VMOVUPD 64(BX), Y10
	VMOVUPD 96(BX), Y11
sumsloop:
	VCVTPS2PD (SI), Y12
	VCVTPS2PD 16(SI), Y13
	VCVTPS2PD 32(SI), Y14
	VCVTPS2PD 48(SI), Y15
	VSUBPD Y8, Y12, Y12
	VSUBPD Y9, Y13, Y13
	VSUBPD Y10, Y14, Y14
	VSUBPD Y11, Y15, Y15
	VADDPD Y12, Y0, Y0
	VADDPD Y13, Y1, Y1
	VADDPD Y14, Y2, Y2
	VADDPD Y15, Y3, Y3
	VMULPD Y12, Y12, Y12
	VMULPD Y13, Y13, Y13
	VMULPD Y14, Y14, Y14
	VMULPD Y15, Y15, Y15
	VADDPD Y12, Y4, Y4
	VADDPD Y13, Y5, Y5
	VADDPD Y14, Y6, Y6
	VADDPD Y15, Y7, Y7
	ADDQ R8, SI
	DECQ CX
	JNZ sumsloop
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VMOVUPD Y4, (DX)
	VMOVUPD Y5, 32(DX)
	VMOVUPD Y6, 64(DX)
	VMOVUPD Y7, 96(DX)
	VZEROUPPER
	RET

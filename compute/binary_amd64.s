//go:build amd64 && !purego

#include "textflag.h"

// func addF32AVX2(out, a, b []float32)
// len(a) is a positive multiple of 8; len(out), len(b) >= len(a). out[i] = a[i] + b[i].
TEXT ·addF32AVX2(SB), NOSPLIT, $0-72
	MOVQ out_base+0(FP), DI
	MOVQ a_base+24(FP), SI
	MOVQ a_len+32(FP), CX
	MOVQ b_base+48(FP), DX
addloop:
	VMOVUPS (SI), Y0
	VADDPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ addloop
	VZEROUPPER
	RET

// func subF32AVX2(out, a, b []float32): out[i] = a[i] - b[i], as addF32AVX2.
TEXT ·subF32AVX2(SB), NOSPLIT, $0-72
	MOVQ out_base+0(FP), DI
	MOVQ a_base+24(FP), SI
	MOVQ a_len+32(FP), CX
	MOVQ b_base+48(FP), DX
subloop:
	VMOVUPS (SI), Y0
	VSUBPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ subloop
	VZEROUPPER
	RET

// func mulF32AVX2(out, a, b []float32): out[i] = a[i] · b[i], as addF32AVX2.
TEXT ·mulF32AVX2(SB), NOSPLIT, $0-72
	MOVQ out_base+0(FP), DI
	MOVQ a_base+24(FP), SI
	MOVQ a_len+32(FP), CX
	MOVQ b_base+48(FP), DX
mulloop:
	VMOVUPS (SI), Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ mulloop
	VZEROUPPER
	RET

DATA siluOne<>+0(SB)/4, $0x3f800000
GLOBL siluOne<>(SB), RODATA|NOPTR, $4

// func siluGradF32AVX2(out, v, x, s []float32)
// len(v) is a positive multiple of 8; len(out), len(x), len(s) >= len(v).
// out[i] = v[i]·s[i] + (v[i]·x[i])·(s[i]·(1 - s[i])), each operation rounded as in Go.
TEXT ·siluGradF32AVX2(SB), NOSPLIT, $0-96
	MOVQ out_base+0(FP), DI
	MOVQ v_base+24(FP), SI
	MOVQ v_len+32(FP), CX
	MOVQ x_base+48(FP), DX
	MOVQ s_base+72(FP), BX
	VBROADCASTSS siluOne<>(SB), Y7
siluloop:
	VMOVUPS (SI), Y0            // v
	VMOVUPS (BX), Y2            // s
	VMULPS Y2, Y0, Y3           // v·s
	VMULPS (DX), Y0, Y4         // v·x
	VSUBPS Y2, Y7, Y5           // 1 - s
	VMULPS Y5, Y2, Y5           // s·(1 - s)
	VMULPS Y5, Y4, Y4
	VADDPS Y4, Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, BX
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ siluloop
	VZEROUPPER
	RET

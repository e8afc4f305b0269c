//go:build amd64 && !purego

package compute

import "golang.org/x/sys/cpu"

// binaryVector is true when the AVX2 kernels below may run.
var binaryVector = cpu.X86.HasAVX2

// The element-wise float32 Add, Sub and Mul of equal-length runs, eight values at a time (AVX2,
// binary_amd64.s); len(a) must be a positive multiple of 8 and len(out), len(b) >= len(a). Each value
// is one IEEE single-precision operation, as in Go, so the results equal the scalar loop's.

//go:noescape
func addF32AVX2(out, a, b []float32)

//go:noescape
func subF32AVX2(out, a, b []float32)

//go:noescape
func mulF32AVX2(out, a, b []float32)

// siluGradF32AVX2 is siluGrad on float32, eight values at a time: out = v·s + (v·x)·(s·(1-s)), one
// IEEE operation each (the operand orders siluGrad's flags choose only swap commutative operands,
// so every order gives these bits); len(v) must be a positive multiple of 8.
//
//go:noescape
func siluGradF32AVX2(out, v, x, s []float32)

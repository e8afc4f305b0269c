//go:build amd64 && !purego

package compute

import "golang.org/x/sys/cpu"

// logisticVector512 and logisticVector say whether logistic32f may run its AVX-512 and AVX2 kernels.
var (
	logisticVector512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ
	logisticVector    = cpu.X86.HasAVX2
)

// logistic32AVX512 is logistic32Scalar on sixteen values at a time (logistic_amd64.s); len(x) must be
// a positive multiple of 16 and len(out) >= len(x).
//
//go:noescape
func logistic32AVX512(out, x []float32)

// logistic32AVX2 is logistic32Scalar on eight values at a time; len(x) must be a positive multiple of
// 8 and len(out) >= len(x).
//
//go:noescape
func logistic32AVX2(out, x []float32)

// expNegShift32AVX512 writes out[i] = expNegCore32(min(m-c·x[i], lgMax)) sixteen values at a time
// (logistic_amd64.s); len(x) must be a positive multiple of 16 and len(out) >= len(x).
//
//go:noescape
func expNegShift32AVX512(out, x []float32, m, c float32)

// expNegShift32AVX2 is expNegShift32AVX512 eight values at a time; len(x) must be a positive
// multiple of 8.
//
//go:noescape
func expNegShift32AVX2(out, x []float32, m, c float32)

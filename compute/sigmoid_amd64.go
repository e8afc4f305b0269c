//go:build amd64 && !purego

package compute

import "golang.org/x/sys/cpu"

// sigmoidVector is true when sigmoid32 may run its AVX2 kernel, sigmoidVector512 its AVX-512 one.
var (
	sigmoidVector    = cpu.X86.HasAVX2
	sigmoidVector512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ
)

// sigmoid32AVX2 is sigmoid32Scalar on four values at a time (sigmoid_amd64.s); len(x) must be a
// positive multiple of 4 and len(out) >= len(x).
//
//go:noescape
func sigmoid32AVX2(out, x []float32)

// sigmoid32AVX512 is sigmoid32Scalar on eight values at a time (sigmoid_amd64.s); len(x) must be a
// positive multiple of 8 and len(out) >= len(x).
//
//go:noescape
func sigmoid32AVX512(out, x []float32)

//go:build amd64 && !purego

package compute

import "golang.org/x/sys/cpu"

// sigmoidVector is true when sigmoid32 may run its AVX2 kernel.
var sigmoidVector = cpu.X86.HasAVX2

// sigmoid32AVX2 is sigmoid32Scalar on four values at a time (sigmoid_amd64.s); len(x) must be a
// positive multiple of 4 and len(out) >= len(x).
//
//go:noescape
func sigmoid32AVX2(out, x []float32)

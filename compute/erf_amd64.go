//go:build amd64 && !purego

package compute

// erfVector512 says whether erf32 may run its AVX-512 kernel (two-register permutes need AVX-512F).
var erfVector512 = logisticVector512

// erf32AVX512 is erf32Scalar on sixteen values at a time (erf_amd64.s), with erfTable by column in
// tab; len(x) must be a positive multiple of 16 and len(out) >= len(x).
//
//go:noescape
func erf32AVX512(out, x []float32, tab *[8][32]float32)

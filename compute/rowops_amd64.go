//go:build amd64 && !purego

package compute

// sum32to64AVX512 is the sixteen-lane float64 sum of sumRow32 (rowops_amd64.s); len(x) must be a
// positive multiple of 16.
//
//go:noescape
func sum32to64AVX512(x []float32) float64

// maxNaN32AVX512 returns the largest value of x and whether x holds a NaN; len(x) must be a positive
// multiple of 16.
//
//go:noescape
func maxNaN32AVX512(x []float32) (m float32, nan bool)

// scale32AVX512 multiplies x by s in place; len(x) must be a positive multiple of 16.
//
//go:noescape
func scale32AVX512(x []float32, s float32)

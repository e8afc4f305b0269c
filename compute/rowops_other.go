//go:build !amd64 || purego

package compute

func sum32to64AVX512(x []float32) float64              { return sumLanes32(x) }
func maxNaN32AVX512(x []float32) (m float32, nan bool) { return maxNaN32Scalar(x) }
func scale32AVX512(x []float32, s float32)             { scale32Scalar(x, s) }

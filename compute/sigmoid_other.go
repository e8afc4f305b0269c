//go:build !amd64 || purego

package compute

const (
	sigmoidVector    = false
	sigmoidVector512 = false
)

func sigmoid32AVX2(out, x []float32)   { sigmoid32Scalar(out, x) }
func sigmoid32AVX512(out, x []float32) { sigmoid32Scalar(out, x) }

//go:build !amd64 || purego

package compute

const sigmoidVector = false

func sigmoid32AVX2(out, x []float32) { sigmoid32Scalar(out, x) }

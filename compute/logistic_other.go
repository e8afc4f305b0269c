//go:build !amd64 || purego

package compute

const (
	logisticVector512 = false
	logisticVector    = false
)

func logistic32AVX512(out, x []float32) { logistic32Scalar(out, x) }
func logistic32AVX2(out, x []float32)   { logistic32Scalar(out, x) }

func expNegShift32AVX512(out, x []float32, m, c float32) { expNegShift32Scalar(out, x, m, c) }
func expNegShift32AVX2(out, x []float32, m, c float32)   { expNegShift32Scalar(out, x, m, c) }

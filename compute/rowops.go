package compute

import "math"

// Row reductions of the fused softmax (softmaxfuse.go) on float32 rows: the maximum, the float64 sum
// and the scaling by 1/sum, sixteen values at a time on AVX-512 (rowops_amd64.s). The loops they
// replace were scalar, and the sum's loop-carried float64 addition made it several times slower than
// the exponentials themselves on attention rows of 4096 entries.

// maxRow32 returns the largest value of x (len(x) > 0), NaN if x holds one.
func maxRow32(x []float32) float32 {
	n := len(x) &^ 15
	if !logisticVector512 || n == 0 {
		m, nan := maxNaN32Scalar(x)
		if nan {
			return float32(math.NaN())
		}
		return m
	}
	m, nan := maxNaN32AVX512(x[:n])
	t, tnan := maxNaN32Scalar(x[n:])
	if nan || tnan {
		return float32(math.NaN())
	}
	if n < len(x) && t > m {
		m = t
	}
	return m
}

// maxNaN32Scalar returns the largest value of x (x[0]'s sign for equal zeros; -Inf for no values)
// and whether x holds a NaN.
func maxNaN32Scalar(x []float32) (m float32, nan bool) {
	m = float32(math.Inf(-1))
	for _, v := range x {
		if v != v {
			nan = true
		} else if v > m {
			m = v
		}
	}
	return m, nan
}

// sumRow32 returns the sum of x in float64, in a fixed order whatever the machine: the first
// len(x) &^ 15 values in sixteen lanes (lane j adds x[16i+j], i ascending), the lanes added pairwise
// (j + (j+8), then j + (j+4), j + (j+2), 0 + 1), then the remaining values one by one.
func sumRow32(x []float32) float64 {
	n := len(x) &^ 15
	var s float64
	if n > 0 {
		if logisticVector512 {
			s = sum32to64AVX512(x[:n])
		} else {
			s = sumLanes32(x[:n])
		}
	}
	for _, v := range x[n:] {
		s += float64(v)
	}
	return s
}

// sumLanes32 is sum32to64AVX512 in Go: the sixteen-lane sum of x (len(x) a multiple of 16).
func sumLanes32(x []float32) float64 {
	var l [16]float64
	for i := 0; i+16 <= len(x); i += 16 {
		for j, v := range x[i : i+16] {
			l[j] += float64(v)
		}
	}
	for w := 8; w >= 2; w /= 2 {
		for j := range w {
			l[j] += l[j+w]
		}
	}
	return l[0] + l[1]
}

// scaleRow32 multiplies x by s in place.
func scaleRow32(x []float32, s float32) {
	n := len(x) &^ 15
	if logisticVector512 && n > 0 {
		scale32AVX512(x[:n], s)
		x = x[n:]
	}
	scale32Scalar(x, s)
}

// scale32Scalar is scaleRow32 one value at a time.
func scale32Scalar(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

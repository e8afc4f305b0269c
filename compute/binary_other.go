//go:build !amd64 || purego

package compute

const binaryVector = false

func addF32AVX2(out, a, b []float32) {
	for i, v := range a {
		out[i] = v + b[i]
	}
}

func subF32AVX2(out, a, b []float32) {
	for i, v := range a {
		out[i] = v - b[i]
	}
}

func mulF32AVX2(out, a, b []float32) {
	for i, v := range a {
		out[i] = v * b[i]
	}
}

func siluGradF32AVX2(out, v, x, s []float32) {
	for i, vi := range v {
		si := s[i]
		out[i] = float32(vi*si) + float32(float32(vi*x[i])*float32(si*(1-si))) // rounded as siluGrad's loop
	}
}

func affineF32AVX2(dst, src, m, a, b []float32) {
	for i, v := range src {
		dst[i] = (v-m[i])*a[i] + b[i]
	}
}

func chanSums16AVX2(s, q, shift []float64, x []float32, stride, n int) {
	for p := range n {
		for j := range 16 {
			d := float64(x[p*stride+j]) - shift[j]
			s[j] += d
			q[j] += d * d
		}
	}
}

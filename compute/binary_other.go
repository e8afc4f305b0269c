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

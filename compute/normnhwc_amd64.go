//go:build amd64 && !purego

package compute

// The channels-last normalization's vector kernels (normnhwc_amd64.s, AVX2; they run when
// binaryVector is true). Each value is computed with the scalar loops' operations in their order,
// so the results equal theirs bit for bit.

// affineF32AVX2 writes dst[i] = (src[i] - m[i])·a[i] + b[i]; len(src) must be a positive multiple
// of 8.
//
//go:noescape
func affineF32AVX2(dst, src, m, a, b []float32)

// chanSums16AVX2 adds, for 16 channels and n > 0 positions p, d = float64(x[p·stride + j]) - shift[j]
// to s[j] and d·d to q[j].
//
//go:noescape
func chanSums16AVX2(s, q, shift []float64, x []float32, stride, n int)

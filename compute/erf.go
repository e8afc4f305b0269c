package compute

import "math"

// The error function in float32 arithmetic, for float32 Erf nodes on the patched backend (GELU's
// x·Φ(x) = x/2·(1 + erf(x/√2)) in the imported models). SimpleGo evaluates each value with float64
// math.Erf, some 10 ns a value; erf32 is a table of short polynomials.
//
// With a = min(|x|, 4) (erfc(4) ≈ 1.5e-8, so erf rounds to 1 in float32 from about 3.92 on):
//
//	f = 4a,  k = ⌊f⌋ ∈ {0, …, 16},  t = f - k - 1/2 ∈ [-1/2, 1/2)   (exact in float32)
//	erf(|x|) ≈ P_k(t)          for k ≥ 1
//	erf(|x|) ≈ a·P_0(t)        for k = 0 (so that erf(x) ≈ 2x/√π keeps its relative accuracy for tiny x)
//	erf(x) = copysign(erf(|x|), x)
//
// P_k, of degree 5, interpolates erf (k ≥ 1) or erf(x)/x (k = 0) on [k/4, (k+1)/4] at the six
// Chebyshev nodes of that interval; erfTable is built from math.Erf when the package loads. The
// interpolation error is below 2e-9 (Chebyshev bound (h/2)^6·max|erf⁽⁶⁾|/(6!·2^5) with h = 1/4), so
// what is left is float32 rounding: the coefficients' and Horner's, about one unit in the last place.
// TestErf32Accuracy bounds the absolute error against math.Erf at 1e-7 (5.8e-8 measured) on a dense sweep, every
// float32 exponent and the edge values (±0 keeps its sign, ±Inf gives ±1, NaN stays NaN); k = 16 is
// the clamp (P_16 = 1). The loop has no data-dependent branch but the rare |x| ≥ 4 or NaN one.

const (
	erfDegree = 5
	erfMax    = float32(4)
	erfScale  = float32(4) // intervals per unit
)

// erfRow is one interval's polynomial (coefficients of t^0 … t^5) and its factor w·a + omw (w = 1,
// omw = 0 on the first interval, w = 0, omw = 1 on the others).
type erfRow struct {
	c      [erfDegree + 1]float32
	w, omw float32
}

// erfTable has 32 rows so that k&31 needs no bounds check; rows 0…16 are used.
var erfTable = buildErfTable()

func buildErfTable() (tab [32]erfRow) {
	const n = erfDegree + 1
	for k := 0; k <= 16; k++ {
		row := &tab[k]
		if k == 16 {
			row.c[0], row.omw = 1, 1
			continue
		}
		// Solve the Vandermonde system V c = y at the Chebyshev nodes of [-1/2, 1/2] in float64.
		var v [n][n + 1]float64
		for i := range n {
			t := 0.5 * math.Cos(math.Pi*(float64(i)+0.5)/n)
			x := (float64(k) + 0.5 + t) / float64(erfScale)
			y := math.Erf(x)
			if k == 0 {
				y /= x
			}
			p := 1.0
			for j := range n {
				v[i][j] = p
				p *= t
			}
			v[i][n] = y
		}
		for col := range n { // Gaussian elimination, partial pivoting
			piv := col
			for r := col + 1; r < n; r++ {
				if math.Abs(v[r][col]) > math.Abs(v[piv][col]) {
					piv = r
				}
			}
			v[col], v[piv] = v[piv], v[col]
			for r := col + 1; r < n; r++ {
				f := v[r][col] / v[col][col]
				for j := col; j <= n; j++ {
					v[r][j] -= f * v[col][j]
				}
			}
		}
		var c [n]float64
		for r := n - 1; r >= 0; r-- {
			s := v[r][n]
			for j := r + 1; j < n; j++ {
				s -= v[r][j] * c[j]
			}
			c[r] = s / v[r][r]
		}
		for j := range n {
			row.c[j] = float32(c[j])
		}
		if k == 0 {
			row.w = 1
		} else {
			row.omw = 1
		}
	}
	return tab
}

// erf32Scalar writes out[i] = erf(x[i]) (see above); len(out) >= len(x).
func erf32Scalar(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		bits := math.Float32bits(v)
		a := math.Float32frombits(bits &^ (1 << 31))
		if !(a < erfMax) {
			if a != a {
				out[i] = v
				continue
			}
			a = erfMax
		}
		f := a * erfScale
		k := int32(f)
		t := (f - float32(k)) - 0.5
		row := &erfTable[k&31]
		c := &row.c
		p := float32(c[5]*t) + c[4]
		p = float32(p*t) + c[3]
		p = float32(p*t) + c[2]
		p = float32(p*t) + c[1]
		p = float32(p*t) + c[0]
		r := p * (float32(row.w*a) + row.omw)
		out[i] = math.Float32frombits(math.Float32bits(r) | bits&(1<<31))
	}
}

// erfColumns is erfTable by column: c0 … c5, w, omw, each over the 32 rows, as the vector kernel
// loads it.
var erfColumns = func() (cols [8][32]float32) {
	for k, row := range erfTable {
		for j, c := range row.c {
			cols[j][k] = c
		}
		cols[6][k], cols[7][k] = row.w, row.omw
	}
	return cols
}()

// erf32Vector is erf32Scalar, sixteen values at a time where the CPU has AVX-512 (the same bits).
func erf32Vector(out, x []float32) {
	if n := len(x) &^ 15; erfVector512 && n > 0 {
		erf32AVX512(out[:n], x[:n], &erfColumns)
		out, x = out[n:], x[n:]
	}
	erf32Scalar(out, x)
}

// erfParallelMin is the smallest tensor whose erf is split over two goroutines.
const erfParallelMin = 2 * elemParallelMin

// erf32 is erf32Vector, large tensors split over two goroutines.
func erf32(out, x []float32) {
	if len(x) < erfParallelMin {
		erf32Vector(out, x)
		return
	}
	parallelRanges(len(x), 2, 16, func(lo, hi int) { erf32Vector(out[lo:hi], x[lo:hi]) })
}

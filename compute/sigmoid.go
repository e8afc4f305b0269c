package compute

import "math"

// The logistic function σ(x) = 1/(1+e^-x) on float32 tensors, with SimpleGo's values.
//
// SimpleGo computes σ in float64 (1/(1+e^-x) for x ≥ 0, e^x/(1+e^x) below, both with math.Exp) and
// rounds the result to float32. sigmoid32 computes the same two expressions, in float64 too, with
// e = e^-|x| from its own exponential: n = round(-|x|·log2 e), r = -|x| - n·ln 2 (|r| ≤ ln2/2, with ln 2
// split in two parts so that r is exact to about 2^-60), e^r from its Taylor polynomial of degree 11
// (truncation error below 2.2e-15 relative, on the order of float64 rounding), e = e^r·2^n. Its float64
// result is within a few units of 2^-52 of SimpleGo's, so both round to the same float32 except when
// the exact value lies within about 1e-15 relative of a float32 rounding boundary (about one value in
// 10^7 by that estimate; then they differ by one float32 unit in the last place).
// TestSigmoidMatchesStock finds no difference on millions of inputs. |x| is capped at 110, where
// σ(-x) already rounds to 0 in float32 and σ(x) to 1; NaN stays NaN. Without branches on the sign, so that it runs eight values at
// a time in AVX-512 or four in AVX2 (sigmoid_amd64.s, the same operations in the same order) and a
// mixed-sign input does not stall on mispredictions. The float64 divisions bound the AVX-512 kernel:
// 1.13 ns a value against the AVX2 kernel's 1.4 on this project's machine.

const (
	sigLog2e  = 1.4426950408889634         // log2(e)
	sigLn2hi  = 6.93147180369123816490e-01 // ln 2 rounded to 32 bits of mantissa (n·ln2hi is exact)
	sigLn2lo  = 1.90821492927058770002e-10 // ln 2 - sigLn2hi
	sigMagic  = 6755399441055744.0         // 1.5·2^52: t + sigMagic rounds t to an integer in the low bits
	sigMaxAbs = 110.0
)

// sigmoid32 writes out[i] = σ(x[i]) (see above); len(out) >= len(x).
func sigmoid32(out, x []float32) {
	n := len(x)
	if sigmoidVector512 && n >= 8 {
		v := n &^ 7
		sigmoid32AVX512(out[:v], x[:v])
		out, x = out[v:], x[v:]
		n -= v
	}
	if sigmoidVector && n >= 4 {
		v := n &^ 3
		sigmoid32AVX2(out[:v], x[:v])
		out, x = out[v:], x[v:]
	}
	sigmoid32Scalar(out, x)
}

// sigmoid32Scalar is sigmoid32 one value at a time.
func sigmoid32Scalar(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		vb := math.Float32bits(v)
		a := float64(math.Float32frombits(vb &^ (1 << 31)))
		if a > sigMaxAbs {
			a = sigMaxAbs
		}
		t := float64(a*-sigLog2e) + sigMagic
		nf := t - sigMagic
		r := float64(-a-float64(nf*sigLn2hi)) - float64(nf*sigLn2lo)
		r2 := r * r
		p0 := float64(1+r) + float64(r2*float64(1.0/2+float64(r*(1.0/6))))
		p1 := float64(1.0/24+float64(r*(1.0/120))) + float64(r2*float64(1.0/720+float64(r*(1.0/5040))))
		p2 := float64(1.0/40320+float64(r*(1.0/362880))) + float64(r2*float64(1.0/3628800+float64(r*(1.0/39916800))))
		r4 := r2 * r2
		p := p0 + float64(r4*float64(p1+float64(r4*p2)))
		e := p * math.Float64frombits((math.Float64bits(t)+1023)<<52)
		mask := -uint64(vb >> 31) // all ones when x's sign bit is set
		num := math.Float64frombits((math.Float64bits(1.0) &^ mask) | (math.Float64bits(e) & mask))
		out[i] = float32(num / (1 + e))
	}
}

package compute

import "math"

// The logistic function σ(x) = 1/(1+e^-x) in float32 arithmetic.
//
// logistic32f computes, with a = min(|x|, 104) (beyond which σ(-a) is below half the smallest
// float32 and rounds to 0, and σ(a) rounds to 1):
//
//	n = round(-a·log2 e)              (by adding and subtracting 1.5·2^23)
//	r = (-a - n·ln2hi) - n·ln2lo      (|r| ≤ ln2/2; ln2hi has 9 significant bits, so n·ln2hi is exact)
//	p = 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r(1/720 + r/5040))))))   ≈ e^r
//	e = (p·2^⌊n/2⌋)·2^(n-⌊n/2⌋)        = e^-a, scaled in two steps so that it may be subnormal
//	σ(x) = 1/(1+e) for x ≥ 0 (sign bit clear), e/(1+e) otherwise
//
// every operation rounded to float32 in this order (no fused multiply-adds), so the scalar loop and
// the vector kernels (logistic_amd64.s: sixteen values at a time in AVX-512, eight in AVX2) give the
// same bits. The degree-7 Taylor polynomial's truncation error is below 5.4e-9 relative on
// [-ln2/2, ln2/2]; TestLogisticAccuracy bounds the result's error against the float64 logistic at 3
// units in the last place of float32 over the whole range (subnormal results excepted, which are
// within 2 units of the smallest subnormal). NaN stays NaN.
//
// It replaced an emulation of SimpleGo's rounding (SimpleGo computes σ in float64 and rounds; that
// kernel ran 1.1 ns a value, bound by float64 divisions; this one 0.49, on this project's machine,
// activation-like inputs): the products and convolutions round as OpenBLAS or oneDNN do, not as
// SimpleGo's loops, so bit equality with SimpleGo's logistic bought no equality downstream.

const (
	lgLog2e     = float32(1.44269504088896341)
	lgLn2hi     = float32(0.693359375)    // 355/512: 9 significant bits
	lgLn2lo     = float32(-2.12194440e-4) // ln 2 - lgLn2hi
	lgMagic     = float32(12582912)       // 1.5·2^23
	lgMax       = float32(104)
	lgMagicBits = 0x4B400000
)

// Taylor coefficients of e^r: 1/k!.
const (
	lgC2 = float32(1.0 / 2)
	lgC3 = float32(1.0 / 6)
	lgC4 = float32(1.0 / 24)
	lgC5 = float32(1.0 / 120)
	lgC6 = float32(1.0 / 720)
	lgC7 = float32(1.0 / 5040)
)

// logistic32f writes out[i] = σ(x[i]) (see above); len(out) >= len(x).
func logistic32f(out, x []float32) {
	n := len(x)
	if logisticVector512 && n >= 16 {
		v := n &^ 15
		logistic32AVX512(out[:v], x[:v])
		out, x = out[v:], x[v:]
		n -= v
	}
	if logisticVector && n >= 8 {
		v := n &^ 7
		logistic32AVX2(out[:v], x[:v])
		out, x = out[v:], x[v:]
	}
	logistic32Scalar(out, x)
}

// expNegCore32 is e^-a for 0 ≤ a ≤ lgMax (NaN for NaN) in float32 arithmetic, the exponential of
// every float32 logistic kernel (the vector kernels in logistic_amd64.s compute the same steps):
// 2^(-a·log2 e) split as 2^k·e^r with |r| ≤ ln2/2, e^r by a degree-7 polynomial, 2^k applied in two
// halves so that k below -126 still reaches the subnormals.
func expNegCore32(a float32) float32 {
	// The float32 conversions round each product, so that no compiler fuses a multiply and an add
	// (the vector kernels round each operation).
	t := float32(-a*lgLog2e) + lgMagic
	nf := t - lgMagic
	r := (-a - float32(nf*lgLn2hi)) - float32(nf*lgLn2lo)
	p := float32(lgC7*r) + lgC6
	p = float32(p*r) + lgC5
	p = float32(p*r) + lgC4
	p = float32(p*r) + lgC3
	p = float32(p*r) + lgC2
	p = float32(p*r) + 1
	p = float32(p*r) + 1
	k := int32(math.Float32bits(t) - lgMagicBits)
	k1 := k >> 1
	k2 := k - k1
	e := p * math.Float32frombits(uint32(k1+127)<<23)
	return e * math.Float32frombits(uint32(k2+127)<<23)
}

// logistic32Scalar is logistic32f one value at a time.
func logistic32Scalar(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		bits := math.Float32bits(v)
		a := math.Float32frombits(bits &^ (1 << 31))
		if a > lgMax { // false for NaN, which stays NaN
			a = lgMax
		}
		e := expNegCore32(a)
		num := float32(1)
		if bits>>31 != 0 {
			num = e
		}
		out[i] = num / (1 + e)
	}
}

package hypernet

// TiltBeta is the temperature beta of the tilt p*(x) ∝ p(x) exp(r(x)/beta) that the objective
// targets, for noise of the given shape: Beta for the tempered regularizers (kl, exact-kl,
// logdet); 2*Weight/D for mean-sq, whose per-sample loss Weight*mean(f^2) - r equals
// beta*(1/2||f||^2 - r/beta) at beta = 2*Weight/D (D noise elements); 0 for chi and none, which
// target no tilt (and for mean-sq with weight 0, the unregularized limit).
func (o Objective) TiltBeta(noiseShape []int) float64 {
	switch o.Reg {
	case RegKL, RegExactKL, RegLogDet:
		return o.Beta
	case RegMeanSquare:
		if d := size(noiseShape); d > 0 {
			return 2 * o.Weight / float64(d)
		}
	}
	return 0
}

// MeanSquareWeight is the mean-sq regularizer weight whose objective is the tilt at beta for
// noise of the given shape: beta*D/2 (the inverse of TiltBeta for RegMeanSquare).
func MeanSquareWeight(beta float64, noiseShape []int) float64 {
	return beta * float64(size(noiseShape)) / 2
}

// HasTilt reports whether the regularizer targets a tilt whose temperature --beta can set: the
// tempered ones and mean-sq (through its weight); not chi (ReNO's norm prior) nor none.
func (r Regularizer) HasTilt() bool { return r.Tempered() || r == RegMeanSquare }

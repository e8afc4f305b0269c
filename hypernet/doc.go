// Package hypernet is the method: noise hypernetworks (Eyring et al. 2025, "Noise Hypernetworks:
// Amortizing Test-Time Compute in Diffusion Models"), generic over hypernoise.Generator,
// hypernoise.Reward and hypernoise.Modulator, for noise of any shape and conditional or
// unconditional generators.
//
// A frozen one-step generator x = g(eps, c) turns noise eps ~ N(0, I) into samples. A modulator
// f_phi outputs a residual in noise space, eps' = eps + f_phi(eps, c), and is trained so that the
// law of g(eps', c) approaches the reward-tilted distribution
//
//	p*(x) ∝ p_g(x) exp(r(x, c)/beta),
//
// which, g being deterministic, is the push-forward of p0*(eps) ∝ N(eps; 0, I) exp(r(g(eps))/beta).
// Minimizing over T = I + f_phi
//
//	KL(T#N || N) - E[r(g(T(eps)))]/beta  =  KL(T#N || p0*) + const
//
// gives T#N = p0*. The paper replaces the KL by the tractable 1/2 ||f_phi(eps)||^2.
//
// The pieces:
//
//   - Modulators: LoRA (the paper's: a copy of the generator's own noise-shaped network with
//     LoRA adapters, output layer = LoRA branch only, so f_phi = 0 at step 0) and MLP (a small
//     standalone network of noise and prompt, zero-initialized output), and Flow (an invertible
//     coupling flow, T = eps at step 0, whose log|det dT/deps| is exact and cheap: with it
//     RegExactKL is the exact KL at any noise dimension, trained with the path gradient PathKL).
//   - Objective: the reward term plus one of the regularizers RegKL (paper, 1/2||f||^2 with an
//     explicit beta), RegMeanSquare (the reference code's reg_weight*mean(f^2), equal to beta times
//     the paper's loss for beta = 2*reg_weight/D), RegChi (ReNO's chi-norm prior), RegExactKL (the
//     exact KL(T#N || N) through log|det(I + J_f)|, for 1- or 2-element noise or a LogDetModulator), RegLogDet (the
//     exact KL at any noise dimension, estimated as 1/2||f||^2 + Σ_{k>=2} (-1)^k tr(J_f^k)/k with
//     Hutchinson probes and vector-Jacobian products, a guard and divergence detection; LogDet,
//     LogDetSeries), RegNone. KLSurrogate, MeanSquare, ChiPrior, JacobianRows, LogDetJacobian,
//     ExactKL and LogDetSeries are the terms.
//   - Tilt dial: a modulator conditioned on beta (Dial, DialMLP), trained over a range of beta by
//     NewDialProblem; AtBeta turns it into an ordinary modulator for one beta.
//   - Problem: what the trainer minimizes (a per-sample loss over the variables of one scope).
//     NewProblem builds HyperNoise's; the fine-tune baseline builds its own.
//   - Train: SGD with (Nesterov) momentum or AdamW, linear warm-up, gradient-norm clipping, steps
//     with a non-finite loss or gradient skipped and counted, the noise modes fresh / one / multi /
//     batch (TrainingBatch), seeded, periodic atomic checkpoints (safetensors + JSON) and resume
//     that reproduces the uninterrupted run.
//   - Sampler: inference, x = g(eps + f_phi(eps, c), c): one modulator forward, then the generator.
//   - Cost: network evaluations (forward, backward) and seconds per sample, reported by every method.
//
// All randomness is a pure function of (seed, stream, index) (Normal, NoiseTensor, PromptIDs), so
// runs are reproducible and resumable.
package hypernet

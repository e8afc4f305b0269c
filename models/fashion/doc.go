// Package fashion is the embedded default image pipeline: a one-step, class-conditional
// Fashion-MNIST generator distilled from a latent flow-matching teacher, with the reward and
// evaluation networks that go with it, all trained by this project (hypernoise zoo train) and
// embedded in the binary, so sampling needs no dataset and no download.
//
// The parts (each a plain function of a context and graph nodes, built from package nn layers, the
// last layer an nn.OutputDense/OutputConv, weights under their own scope):
//
//   - autoencoder: images x [B,28,28,1] in [0,1] <-> latents [B,7,7,4]. Encode returns the
//     standardized latent (z_raw - mu)/sd (per-channel statistics of the training latents), so the
//     latent distribution has roughly unit scale and N(0, I) noise matches it; Decode inverts it.
//   - teacher: a velocity field v(x_t, t, c) for the straight path x_t = (1-t) z + t eps, trained by
//     flow matching (target eps - z) with 10% label dropout to a null class, sampled with
//     classifier-free guidance v_u + w (v_c - v_u) by TeacherSample (Euler, K steps, t: 1 -> 0).
//   - student: the one-step map s(eps, c) ≈ teacher ODE endpoint, the same MLP initialized from the
//     teacher and regressed on (eps, endpoint) pairs. The generator is g(eps, c) = Decode(s(eps, c)).
//   - classifier: the reward classifier (logits; alignment reward = log softmax of the prompt).
//   - heldout: a classifier of another architecture and seed, used only for evaluation
//     (alignment accuracy, and its 128 penultimate features for the Fréchet distance).
//   - discriminator: a realism critic, logit of "real test image" vs "student sample".
//
// Using it from Go:
//
//	m, err := fashion.Default()            // embedded weights, all variables frozen
//	ctx := m.Context()                     // root context holding the weights
//	x := m.Generate(ctx, eps, prompts)     // hypernoise.Generator; eps [B,7,7,4], prompts [B] int32
//	z := m.Backbone(ctx, eps, prompts)     // hypernoise.Backbone: the student, same shape as eps
//	logits := fashion.ClassifierLogits(ctx, x)
//	hl, feats := fashion.HeldOut(ctx, x)
//	d := fashion.DiscriminatorLogits(ctx, x)
//	zT := fashion.TeacherSample(ctx, eps, prompts, 16, m.Guidance)
//
// and on the host: PromptID, Noise (seeded noise), GenerateImages, GridPNG, NewEvaluator (held-out
// alignment and FD against the test set, which needs the data set), FrechetDistance, Train.
package fashion

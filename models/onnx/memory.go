package onnx

import "github.com/hypernoise/hypernoise/family"

// memStats are the sizes Load measured while checking the spec: activations per sample are the
// bytes of every tensor the graphs compute (constants and weights excluded) for a batch of 2,
// halved.
type memStats struct {
	genActivations    int64 // the generator, per sample
	rewardActivations int64 // all rewards together, per sample
}

// Terms of the estimates (see EstimateBytes).
const (
	memBase       = 300 << 20 // process, backend, compiled graphs
	bytesPerParam = 4 * 4     // a trained float32 parameter: value, gradient, two AdamW moments
	// The MLP modulator's terms, as the embedded model's fit has them (models/fashion).
	mlpBytesPerParam = 72
	mlpPromptEmbed   = 32
)

// WeightBytes is the memory of the imported weights, generator and rewards (held once, shared by
// every graph and by LoRA copies).
func (m *Model) WeightBytes() int64 {
	sum := m.gen.WeightBytes()
	for _, r := range m.rewards {
		sum += r.WeightBytes()
	}
	return sum
}

// EstimateBytes estimates the peak memory of running the model on batch samples at once:
//
//	forward (training false): base + weights + batch · (generator activations + reward activations)
//	training: base + weights + batch · 2 · (2 · generator activations + reward activations)
//
// A forward pass holds at most every tensor it computes (the backend frees them as it goes, so this
// bounds it from above). A HyperNoise training step runs the generator twice (its LoRA copy, whose
// output is the modulated noise, then the frozen generator) and the rewards, keeps every activation
// for the backward pass and holds a gradient as large as each. LoRA adapters are added by
// EstimateTrainBytes.
func (m *Model) EstimateBytes(batch int, training bool) int64 {
	b := int64(batch)
	perSample := m.mem.genActivations + m.mem.rewardActivations
	if training {
		perSample = 2 * (2*m.mem.genActivations + m.mem.rewardActivations)
	}
	return memBase + m.WeightBytes() + b*perSample
}

// EstimateTrainBytes is EstimateBytes(batch, true) plus rank-rank LoRA adapters on the generator
// (their values, gradients and AdamW moments).
func (m *Model) EstimateTrainBytes(batch, rank int) int64 {
	return m.EstimateBytes(batch, true) + m.gen.LoRAParams(rank)*bytesPerParam
}

// MemoryFit is the model's estimate in the form the commands' memory checks read
// (pipeline.EstimateTrainBytes, EstimateSampleBytes): the terms of EstimateBytes and
// EstimateTrainBytes. A sample keeps every image of a request in one batch, so each image costs a
// forward pass's activations.
func (m *Model) MemoryFit() *family.MemoryFit {
	base := memBase + m.WeightBytes()
	return &family.MemoryFit{
		TrainBase:      base,
		TrainPerSample: 2 * (2*m.mem.genActivations + m.mem.rewardActivations),
		PerLoRARank:    m.gen.LoRAParams(1) * bytesPerParam,
		PerMLPParam:    mlpBytesPerParam,
		PromptEmbed:    mlpPromptEmbed,
		SampleBase:     base,
		PerImage:       m.mem.genActivations + m.mem.rewardActivations,
	}
}

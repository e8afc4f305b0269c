package onnx

import (
	"github.com/hypernoise/hypernoise/compute/dnnl"
	"github.com/hypernoise/hypernoise/family"
)

// memStats are the sizes Load measured while checking the spec, per sample (for a batch of 2,
// halved): the bytes of every tensor the graphs compute (constants and weights excluded), and the
// most of them alive at once in a forward pass (shim.Activations).
type memStats struct {
	genActivations    int64 // the generator, all its tensors
	rewardActivations int64 // all rewards together, all their tensors
	genPeak           int64 // the generator, most alive at once
	rewardPeak        int64 // the rewards, the sum of each one's most alive at once
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
//	forward (training false): base + weights + kernel copies + batch · min(all activations, fwdFactor · peaks)
//	training: base + weights + kernel copies + batch · 2 · (2 · generator activations + reward activations)
//
// A forward pass holds at most every tensor it computes, and in practice far less (the backend frees
// tensors as it goes): the graphs' liveness peaks times fwdFactor, for what the peaks do not see
// (the temporaries of the ops one ONNX node becomes, buffers freed late). A HyperNoise training step runs the generator twice (its LoRA copy, whose
// output is the modulated noise, then the frozen generator) and the rewards, keeps every activation
// for the backward pass and holds a gradient as large as each. LoRA adapters are added by
// EstimateTrainBytes.
func (m *Model) EstimateBytes(batch int, training bool) int64 {
	b := int64(batch)
	perSample := m.forwardPerSample()
	if training {
		perSample = m.gradPerSample()
	}
	return m.baseBytes() + b*perSample
}

// baseBytes is what a run holds whatever its batch: the process (memBase), the weights, and the
// convolution kernels kept reordered between calls (compute/dnnl's copies, forward and
// backward-data: at most twice the weights, never more than dnnl.PackedBudget).
func (m *Model) baseBytes() int64 {
	w := m.WeightBytes()
	return memBase + w + min(2*w, dnnl.PackedBudget.Load())
}

// fwdFactor is how much more than the liveness peaks a forward pass was measured to hold on the
// pure-Go backend: on the sd-turbo-size fixture (peaks of 1.0 GiB per sample), `sample --n 1`
// peaked at 10.2 and 10.9 GiB for 4.3 GiB of weights, about 6 times the peaks above the weights and
// the process (docs/bring-your-model.md, section 6); 8 keeps a margin of about 15%.
const fwdFactor = 8

// forwardPerSample is a forward pass's activations per sample: fwdFactor times the liveness peaks,
// never more than every tensor the graphs compute.
func (m *Model) forwardPerSample() int64 {
	return min(m.mem.genActivations+m.mem.rewardActivations, fwdFactor*(m.mem.genPeak+m.mem.rewardPeak))
}

// gradPerSample is a pass with gradients per sample: twice (values and gradients) the generator's
// activations twice (LoRA copy and frozen generator) and the rewards'.
func (m *Model) gradPerSample() int64 {
	return 2 * (2*m.mem.genActivations + m.mem.rewardActivations)
}

// EstimateTrainBytes is EstimateBytes(batch, true) plus rank-rank LoRA adapters on the generator
// (their values, gradients and AdamW moments).
func (m *Model) EstimateTrainBytes(batch, rank int) int64 {
	return m.EstimateBytes(batch, true) + m.gen.LoRAParams(rank)*bytesPerParam
}

// MemoryFit is the model's estimate in the form the commands' memory checks read
// (pipeline.EstimateTrainBytes, EstimateSampleBytes): the terms of EstimateBytes and
// EstimateTrainBytes. A sample keeps every image of a request in one batch, so each image costs a
// forward pass's activations. The chunks of evaluation, the tilt pool, the reward spread and the
// methods follow the same terms (family.Model.ChunkRows): a forward pass's activations per row,
// and for ReNO's gradient steps EstimateBytes(batch, true)'s.
func (m *Model) MemoryFit() *family.MemoryFit {
	base := m.baseBytes()
	return &family.MemoryFit{
		TrainBase:      base,
		TrainPerSample: 2 * (2*m.mem.genActivations + m.mem.rewardActivations),
		PerLoRARank:    m.gen.LoRAParams(1) * bytesPerParam,
		PerMLPParam:    mlpBytesPerParam,
		PromptEmbed:    mlpPromptEmbed,
		SampleBase:     base,
		PerImage:       m.forwardPerSample(),
		ForwardPerRow:  m.forwardPerSample(),
		GradPerRow:     m.gradPerSample(),
	}
}

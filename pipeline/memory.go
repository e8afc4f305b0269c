package pipeline

import (
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
)

// Up-front memory estimates, in bytes, so that sizes that cannot fit are refused before anything
// is allocated (cli.CheckMemory): the model's memory fit (family.MemoryFit, measured per family)
// applied to the run's sizes; 0 (no estimate) for a model without one.

const maxEstimate = int64(1) << 62 // saturation

// EstimateTrainBytes estimates the peak memory of Train with o on model m.
func EstimateTrainBytes(m *family.Model, o TrainOptions) int64 {
	f := m.Memory
	if f == nil {
		return 0
	}
	b := int64(o.Train.BatchSize)
	est := f.TrainBase + b*f.TrainPerSample
	switch o.Modulator.Kind {
	case infer.KindLoRA:
		est += int64(o.Modulator.Rank) * f.PerLoRARank
	case infer.KindFlow:
		if o.Modulator.Conditioner == infer.ConditionerLoRA { // one adapter set and backbone pass per coupling
			c := int64(o.Modulator.Couplings)
			est += c*int64(o.Modulator.Rank)*f.PerLoRARank + (c-1)*b*f.TrainPerSample
			break
		}
		fallthrough
	case infer.KindAffine, infer.KindGaussian: // P·(D² + D) parameters; each row's noise lifted by its prompt's one-hot, and its gradient
		noise := int64(1)
		for _, d := range m.Generator.NoiseShape() {
			noise *= int64(d)
		}
		p := int64(max(len(m.Generator.Prompts()), 1))
		est += p*(noise*noise+noise)*f.PerMLPParam + 2*b*p*noise*4
	case infer.KindMLP, infer.KindDial:
		noise := int64(1)
		for _, d := range m.Generator.NoiseShape() {
			noise *= int64(d)
		}
		d, h, l := noise+f.PromptEmbed, int64(o.Modulator.Hidden), int64(o.Modulator.Layers)
		params, nets := d*h+(l-1)*h*h+h*noise, int64(1)
		if o.Modulator.Kind == infer.KindFlow { // one conditioner per coupling, each with 2*noise outputs
			nets = int64(o.Modulator.Couplings)
			params = nets * (params + h*noise)
		}
		est += params*f.PerMLPParam + nets*b*h*l*16
	}
	return min(est, maxEstimate)
}

// EstimateSampleBytes estimates the peak memory of generating images samples of model m with any
// method: best-of-N and ReNO run in chunks of DefaultChunk rows, so only the samples kept grow
// with the request.
func EstimateSampleBytes(m *family.Model, images int) int64 {
	if m.Memory == nil {
		return 0
	}
	return min(m.Memory.SampleBase+int64(images)*m.Memory.PerImage, maxEstimate)
}

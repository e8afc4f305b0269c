package pipeline

import "github.com/hypernoise/hypernoise/infer"

// Up-front memory estimates, in bytes, of the commands on the embedded default, so that sizes that
// cannot fit are refused before anything is allocated (cli.CheckMemory). They are fits to peak
// resident memory measured with /usr/bin/time -v on the pure-Go backend (issue 12 note: train
// batch 32/256 at rank 8, rank 128 and 256, MLP widths 1024 and 4096; sample base, best-of-N and
// ReNO at several sizes), rounded up.
const (
	memTrainBase      = 100 << 20      // process, embedded models, compiled graphs
	memTrainPerSample = 5 << 19        // 2.5 MiB of activations and gradients per batch sample
	memPerLoRARank    = 2 << 19        // 1 MiB per unit of LoRA rank (adapters, optimizer state, activations)
	memPerMLPParam    = 72             // bytes per MLP parameter (weights, gradient, AdamW moments, temporaries)
	memSampleBase     = 500 << 20      // sampling: process, models, graphs
	memPerImage       = 20 << 10       // per generated image (noise, latents, pixels, PNG)
	memPerCandidate   = 5 << 18        // best-of-N: 1.25 MiB per candidate image evaluated at once
	memPerRenoImage   = 5 << 19        // ReNO: 2.5 MiB per image optimized at once
	bestOfNChunk      = 2048           // candidates per chunk in BestOfNMethod
	maxEstimate       = int64(1) << 62 // saturation
)

// EstimateTrainBytes estimates the peak memory of TrainHypernet with o.
func EstimateTrainBytes(o TrainOptions) int64 {
	b := int64(o.Train.BatchSize)
	est := memTrainBase + b*memTrainPerSample
	switch o.Modulator.Kind {
	case infer.KindLoRA:
		est += int64(o.Modulator.Rank) * memPerLoRARank
	case infer.KindMLP, infer.KindDial:
		d, h, l := int64(196+32), int64(o.Modulator.Hidden), int64(o.Modulator.Layers)
		params := d*h + (l-1)*h*h + h*196
		est += params*memPerMLPParam + b*h*l*16
	}
	return min(est, maxEstimate)
}

// EstimateSampleBytes estimates the peak memory of generating images images with any method:
// best-of-N and ReNO run in chunks of DefaultChunk rows, so only the images kept grow with the
// request.
func EstimateSampleBytes(images int) int64 {
	return min(memSampleBase+int64(images)*memPerImage, maxEstimate)
}

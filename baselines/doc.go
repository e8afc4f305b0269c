// Package baselines groups the methods HyperNoise is compared with, one package each:
//
//   - bestofn:  draw N noises per sample, keep the sample with the highest reward (N forward passes).
//   - reno:     ReNO test-time optimization of each sample's noise by gradient ascent on the reward
//     with a chi-norm prior (50 forward and backward passes per sample).
//   - finetune: LoRA adapters on the generator itself, trained on the reward with no regularizer
//     (one forward pass per sample after training; this is the baseline that reward-hacks).
//
// All three are generic over hypernoise.Generator and hypernoise.Reward, batched over samples, and
// report their cost per sample (hypernoise.Cost). Each is a registered hypernoise.Method
// (package methods lists them): best-of-n, reno, hypernoise-reno, finetune.
package baselines

// Package onnx brings a user's own one-step generator and reward models, exported from PyTorch to
// ONNX, into hypernoise: a JSON spec (Spec) names the files and tensors, Load checks them against
// each other, and the Model implements hypernoise.Generator, hypernoise.Backbone (when the spec
// names a noise-shaped tensor) and one hypernoise.Reward per reward model, so every method runs on
// it, the paper's LoRA hypernetwork included.
//
// The LoRA hypernetwork on an imported model is a copy of the generator's backbone (the graph
// from the noise to backbone_output) with adapters on every Conv (one group), Gemm and MatMul whose
// weight is stored in the file (generator.lora_layers, a regular expression over node names,
// narrows them); the layer producing backbone_output is replaced by its LoRA branch alone, so
// f_phi = 0 exactly at step 0. A backbone output that is a residual sum (the noise plus a scaled
// layer output, as in a scheduler's x0 = (x_T - s eps_hat) / c) is traced through: the added
// residual or bias is dropped and the scaling kept, so f_phi is that layer's LoRA branch carried to
// the output's scale (CheckLoRA says when the graph does not allow that).
//
// Prompt embeddings can be data: a spec's prompt_embeddings names a safetensors file of per-prompt
// embeddings that the generator's (or a reward's) prompt input receives (EmbeddingsSpec).
//
// Errors: a mistake in the spec or a mismatch between the spec and a graph (a missing or ill-typed
// field, a tensor name not in the graph, a noise shape the graph does not take, a reward that does
// not return one score per sample) is a *SpecError; a file that is missing, truncated, not ONNX or
// uses unsupported operations is a *FileError or *UnsupportedError. The ONNX conversion itself is
// in the sub-package shim.
package onnx

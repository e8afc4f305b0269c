// Package export writes a trained noise hypernetwork as a standalone ONNX graph of its noise
// modulation, eps' = eps + f_phi(eps, c), so that PyTorch or onnxruntime users can put it in front of
// their own generator without this program.
//
// The graph has inputs "noise" (float32 [N, noise shape...]) and, for a prompt-conditioned model,
// "prompt" (int64 [N], the index of the prompt in the model's prompt list, stored in the metadata
// as "hypernoise.prompts"), and one output "modulated_noise" (float32, the noise's shape).
//
//   - MLP modulator (and a tilt dial, at the beta it serves by default): the MLP written out,
//     h_0 = [flat(eps), E[c]], h_{l+1} = SiLU(W_l h_l + b_l), f = W_out h_L + b_out; a dial's beta
//     features phi(beta) are constants there, folded into each layer's bias (W [h, phi] + b =
//     W_h h + (W_phi phi + b)). Any model family.
//   - LoRA modulator (the paper's): only on an imported ONNX generator. Its nodes up to the backbone
//     output are copied with each adapter folded into its layer's weight (W + (alpha/r) A B) and the
//     output layer reduced to its LoRA term (see models/onnx/shim.Model.ExportLoRA).
package export

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/onnxpb"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
)

// Names of the exported graph's inputs and output.
const (
	InputNoise  = "noise"
	InputPrompt = "prompt"
	Output      = "modulated_noise"
)

// opsetMLP is the ONNX operator set of graphs written from scratch (Gemm, Sigmoid, Gather, ...).
const opsetMLP = 17

// ONNX returns the ONNX model of the hypernetwork in folder f, trained on model m (m must be the
// model the folder names: its generator and weights hash are checked).
func ONNX(f *infer.Folder, m *family.Model) (*onnxpb.Model, error) {
	if err := f.CheckModel(m); err != nil {
		return nil, err
	}
	cfg, gen := f.Config, m.Generator
	vars, err := weights(f)
	if err != nil {
		return nil, err
	}
	conditional := len(gen.Prompts()) > 0
	var res *onnx.Residual
	switch cfg.Modulator.Kind {
	case infer.KindMLP, infer.KindDial:
		res, err = mlpResidual(cfg, gen.NoiseShape(), len(gen.Prompts()), vars)
	case infer.KindLoRA:
		om, ok := onnxModel(gen)
		if !ok {
			return nil, fmt.Errorf("hypernetwork %s is a LoRA copy of the %s generator, which is not an ONNX graph: only LoRA hypernetworks on imported ONNX models, and MLP hypernetworks on any model, can be exported (train with --modulator mlp)", f.Dir, gen.Name())
		}
		res, err = loraResidual(cfg, om, vars)
	default:
		err = fmt.Errorf("hypernetwork %s: modulator %q cannot be exported", f.Dir, cfg.Modulator.Kind)
	}
	if err != nil {
		return nil, err
	}
	shape := gen.NoiseShape()
	noiseDims := append([]int64{-1}, onnxpb.Dims(shape)...)
	g := onnxpb.Graph{Name: "hypernoise_" + f.Name(), Nodes: res.Nodes, Inits: res.Inits,
		Inputs:  []onnxpb.Value{{Name: InputNoise, Type: onnxpb.Float, Dims: noiseDims, Param: "N"}},
		Outputs: []onnxpb.Value{{Name: Output, Type: onnxpb.Float, Dims: noiseDims, Param: "N"}}}
	if conditional {
		g.Inputs = append(g.Inputs, onnxpb.Value{Name: InputPrompt, Type: onnxpb.Int64, Dims: []int64{-1}, Param: "N"})
	}
	g.Nodes = append(g.Nodes, onnxpb.Node{Op: "Add", Name: "hn/modulate", Inputs: []string{InputNoise, res.Output}, Outputs: []string{Output}})
	prompts, _ := json.Marshal(gen.Prompts())
	noise, _ := json.Marshal(shape)
	md := [][2]string{
		{"hypernoise.kind", cfg.Modulator.Kind},
		{"hypernoise.generator", cfg.Generator},
		{"hypernoise.model", cfg.Model},
		{"hypernoise.base_model_sha256", cfg.BaseHash},
		{"hypernoise.reward_spec", cfg.RewardSpec},
		{"hypernoise.beta", strconv.FormatFloat(cfg.Beta, 'g', -1, 64)},
		{"hypernoise.noise_shape", string(noise)},
		{"hypernoise.prompts", string(prompts)},
		{"hypernoise.formula", "modulated_noise = noise + f_phi(noise, prompt); feed modulated_noise to the generator in place of noise"},
	}
	return &onnxpb.Model{IRVersion: res.IRVersion, Opsets: res.Opsets, Producer: "hypernoise", Version: "1", Graph: g, Metadata: md}, nil
}

// weights are the folder's tensors by their path under the saved scope, e.g. "dense_0/weights".
func weights(f *infer.Folder) (map[string]*tensors.Tensor, error) {
	vars, err := f.Weights()
	if err != nil {
		return nil, err
	}
	root := context.ScopeSeparator + infer.SavedScope + context.ScopeSeparator
	out := map[string]*tensors.Tensor{}
	for _, v := range vars {
		val, err := v.Value()
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(v.Scope()+context.ScopeSeparator, root)+v.Name()] = val
	}
	return out, nil
}

// onnxModel is the imported ONNX model behind a generator, if it is one.
func onnxModel(gen any) (*onnx.Model, bool) {
	switch g := gen.(type) {
	case *onnx.Model:
		return g, true
	case *onnx.WithBackbone:
		return g.Model, true
	}
	return nil, false
}

// loraResidual gathers the adapters by the weight they adapt (saved under
// generator/<shim.VarName(weight)>/lora_a|lora_b) and has the ONNX model write the residual.
func loraResidual(cfg infer.Config, m *onnx.Model, vars map[string]*tensors.Tensor) (*onnx.Residual, error) {
	prefix := onnx.ScopeGenerator + context.ScopeSeparator
	factors := map[string]shim.LoRAFactors{}
	for path, t := range vars {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			return nil, fmt.Errorf("LoRA hypernetwork: unexpected tensor %q", path)
		}
		i := strings.LastIndex(rest, context.ScopeSeparator)
		if i < 0 {
			return nil, fmt.Errorf("LoRA hypernetwork: unexpected tensor %q", path)
		}
		weight := strings.ReplaceAll(rest[:i], "|", context.ScopeSeparator) // shim.VarName undone
		f := factors[weight]
		switch rest[i+1:] {
		case "lora_a":
			f.A = t
		case "lora_b":
			f.B = t
		default:
			return nil, fmt.Errorf("LoRA hypernetwork: unexpected tensor %q", path)
		}
		factors[weight] = f
	}
	alpha := cfg.Modulator.Alpha
	if alpha <= 0 {
		alpha = 2 * float64(cfg.Modulator.Rank)
	}
	return m.LoRAResidual(factors, cfg.Modulator.Rank, alpha, InputNoise, InputPrompt)
}

// mlpResidual writes the MLP (or the dial at cfg.Beta) as Gemm, Sigmoid and Mul nodes.
func mlpResidual(cfg infer.Config, noiseShape []int, numPrompts int, vars map[string]*tensors.Tensor) (*onnx.Residual, error) {
	d := 1
	for _, s := range noiseShape {
		d *= s
	}
	var phi []float32 // the dial's beta features, folded into the biases
	if cfg.Modulator.Kind == infer.KindDial {
		phi = hypernet.DialFeatures(cfg.Beta, cfg.Modulator.BetaRange[0], cfg.Modulator.BetaRange[1])
	}
	r := &onnx.Residual{Opsets: map[string]int64{"": opsetMLP}, IRVersion: 8}
	get := func(name string, rank int) (*tensors.Tensor, error) {
		t, ok := vars[name]
		if !ok || t.Rank() != rank {
			return nil, fmt.Errorf("MLP hypernetwork: weights lack %q (rank %d)", name, rank)
		}
		return t, nil
	}
	r.Inits = append(r.Inits, onnxpb.Int64Tensor("hn/flat_shape", []int64{2}, []int64{-1, int64(d)}))
	r.Nodes = append(r.Nodes, onnxpb.Node{Op: "Reshape", Name: "hn/flatten", Inputs: []string{InputNoise, "hn/flat_shape"}, Outputs: []string{"hn/h0"}})
	h := "hn/h0"
	if numPrompts > 0 {
		emb, err := get("prompt/embeddings", 2)
		if err != nil {
			return nil, err
		}
		r.Inits = append(r.Inits, floatInit("hn/prompt_table", emb))
		r.Nodes = append(r.Nodes,
			onnxpb.Node{Op: "Gather", Name: "hn/prompt_lookup", Inputs: []string{"hn/prompt_table", InputPrompt}, Outputs: []string{"hn/prompt_emb"}, Attrs: []onnxpb.Attr{onnxpb.IntAttr("axis", 0)}},
			onnxpb.Node{Op: "Concat", Name: "hn/concat", Inputs: []string{h, "hn/prompt_emb"}, Outputs: []string{"hn/h0c"}, Attrs: []onnxpb.Attr{onnxpb.IntAttr("axis", 1)}})
		h = "hn/h0c"
	}
	layers := make([]string, 0, cfg.Modulator.Layers+1)
	for i := range cfg.Modulator.Layers {
		layers = append(layers, fmt.Sprintf("dense_%d", i))
	}
	layers = append(layers, "out")
	for i, l := range layers {
		w, err := get(l+"/weights", 2)
		if err != nil {
			return nil, err
		}
		b, err := get(l+"/biases", 1)
		if err != nil {
			return nil, err
		}
		wv, bv := tensors.MustCopyFlatData[float32](w), tensors.MustCopyFlatData[float32](b)
		in, out := w.Shape().Dim(0), w.Shape().Dim(1)
		if len(bv) != out {
			return nil, fmt.Errorf("MLP hypernetwork: %s biases %d do not fit weights %v", l, len(bv), w.Shape().Dimensions)
		}
		if l == "out" && out != d {
			return nil, fmt.Errorf("MLP hypernetwork: output width %d, noise has %d elements", out, d)
		}
		if phi != nil { // rows in-3..in-1 multiply phi(beta): fold them into the bias
			if in < len(phi) {
				return nil, fmt.Errorf("MLP hypernetwork: %s weights %v are too narrow for a dial", l, w.Shape().Dimensions)
			}
			in -= len(phi)
			for k, p := range phi {
				for j := range out {
					bv[j] += p * wv[(in+k)*out+j]
				}
			}
			wv = wv[:in*out]
		}
		wn, bn, y := "hn/"+l+"/weights", "hn/"+l+"/biases", "hn/"+l
		r.Inits = append(r.Inits, onnxpb.FloatTensor(wn, []int64{int64(in), int64(out)}, wv), onnxpb.FloatTensor(bn, []int64{int64(out)}, bv))
		r.Nodes = append(r.Nodes, onnxpb.Node{Op: "Gemm", Name: y + "/gemm", Inputs: []string{h, wn, bn}, Outputs: []string{y}})
		h = y
		if i < len(layers)-1 { // SiLU(x) = x sigmoid(x)
			r.Nodes = append(r.Nodes,
				onnxpb.Node{Op: "Sigmoid", Name: y + "/sigmoid", Inputs: []string{y}, Outputs: []string{y + "/sigmoid"}},
				onnxpb.Node{Op: "Mul", Name: y + "/silu", Inputs: []string{y, y + "/sigmoid"}, Outputs: []string{y + "/silu"}})
			h = y + "/silu"
		}
	}
	shape := append([]int64{-1}, onnxpb.Dims(noiseShape)...)
	r.Inits = append(r.Inits, onnxpb.Int64Tensor("hn/noise_shape", []int64{int64(len(shape))}, shape))
	r.Nodes = append(r.Nodes, onnxpb.Node{Op: "Reshape", Name: "hn/unflatten", Inputs: []string{h, "hn/noise_shape"}, Outputs: []string{"hn/residual"}})
	r.Output = "hn/residual"
	return r, nil
}

func floatInit(name string, t *tensors.Tensor) onnxpb.Tensor {
	return onnxpb.FloatTensor(name, onnxpb.Dims(t.Shape().Dimensions), tensors.MustCopyFlatData[float32](t))
}

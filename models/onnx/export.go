package onnx

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/onnxpb"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
)

// Residual is an exported hypernetwork residual f_phi(eps, c) as ONNX nodes: they read the float32
// noise tensor and the int64 prompt-index tensor named when it was built and write Output (float32,
// the noise's shape). Opsets and IRVersion are the generator's, whose nodes it copies.
type Residual struct {
	Nodes     []onnxpb.Node
	Inits     []onnxpb.Tensor
	Output    string
	Opsets    map[string]int64
	IRVersion int64
}

// LoRAResidual is the LoRA hypernetwork's residual on this model's generator as an ONNX graph: the
// generator's nodes up to its backbone output, with the trained adapters folded into the copied
// layers' weights (shim.Model.ExportLoRA), fed from noise [N, noise_shape...] and prompt [N] (the
// spec's prompt indices; ignored by an unconditional generator) through casts to the generator's
// declared input types, or, when the spec gives prompt embeddings, a lookup in their table.
func (m *Model) LoRAResidual(factors map[string]shim.LoRAFactors, rank int, alpha float64, noise, prompt string) (*Residual, error) {
	if err := m.CheckLoRA(); err != nil {
		return nil, err
	}
	g := m.gen
	gs := m.Spec.Generator
	for _, name := range []string{noise, prompt} {
		if g.Defines(name) && name != gs.NoiseInput && name != gs.PromptInput {
			return nil, fmt.Errorf("export: the generator has a tensor named %q, the name the exported graph gives its input; rename it in the ONNX file", name)
		}
	}
	const genNoise, genPrompt, outName = "hn/generator_noise", "hn/generator_prompt", "hn/residual"
	rename := map[string]string{gs.NoiseInput: genNoise}
	if gs.PromptInput != "" {
		rename[gs.PromptInput] = genPrompt
	}
	nodes, inits, inputs, err := g.ExportLoRA(shim.LoRAExport{Output: m.backboneName(), Rank: rank, Alpha: alpha, Factors: factors, Rename: rename})
	if err != nil {
		return nil, err
	}
	var feed []onnxpb.Node
	for _, in := range inputs {
		code, ok := g.StoredInputType(in.Name)
		if !ok {
			return nil, fmt.Errorf("export: input %q of %s has an element type that cannot be exported", in.Name, gs.ONNX)
		}
		switch in.Name {
		case gs.NoiseInput:
			feed = append(feed, castNode(noise, genNoise, code))
		case gs.PromptInput:
			if gs.PromptEmbeddings == nil {
				feed = append(feed, castNode(prompt, genPrompt, code))
				continue
			}
			table := m.ctx.GetVariableByScopeAndName(context.ScopeSeparator+scopeEmbeddings, "generator")
			if table == nil {
				return nil, fmt.Errorf("export: the generator's prompt embeddings are not loaded")
			}
			val, err := table.Value()
			if err != nil {
				return nil, err
			}
			const tableName = "hn/prompt_embeddings"
			inits = append(inits, onnxpb.FloatTensor(tableName, onnxpb.Dims(val.Shape().Dimensions), tensors.MustCopyFlatData[float32](val)))
			feed = append(feed,
				onnxpb.Node{Op: "Gather", Name: "hn/prompt_lookup", Inputs: []string{tableName, prompt}, Outputs: []string{genPrompt + "/f32"}, Attrs: []onnxpb.Attr{onnxpb.IntAttr("axis", 0)}},
				castNode(genPrompt+"/f32", genPrompt, code))
		default:
			return nil, fmt.Errorf("export: the backbone reads input %q of %s, which the spec does not feed", in.Name, gs.ONNX)
		}
	}
	nodes = append(feed, nodes...)
	nodes = append(nodes, castNode(m.backboneName(), outName, onnxpb.Float))
	return &Residual{Nodes: nodes, Inits: inits, Output: outName, Opsets: g.Opsets(), IRVersion: g.IRVersion()}, nil
}

// castNode is Cast(in) -> out to the ONNX element type code.
func castNode(in, out string, code int) onnxpb.Node {
	return onnxpb.Node{Op: "Cast", Name: out + "/cast", Inputs: []string{in}, Outputs: []string{out}, Attrs: []onnxpb.Attr{onnxpb.IntAttr("to", int64(code))}}
}

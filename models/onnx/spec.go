package onnx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hypernoise/hypernoise/internal/safeio"
)

// Spec is the JSON description of an imported model: a one-step generator and its rewards, each an
// ONNX file with the names of its input and output tensors. A relative path is relative to the spec
// file's folder; an absolute path is used as it is. Prompts are matched ignoring case and runs of
// blanks, so two that differ only so are refused, as is "all" (the command line's word for every
// prompt); their number must not exceed the rows of the embedding tables the prompt inputs index.
//
//	{"name": "my-model",
//	 "generator": {"onnx": "gen.onnx", "noise_input": "noise", "noise_shape": [4, 8, 8],
//	               "prompt_input": "prompt", "output": "image", "backbone_output": "latent"},
//	 "prompts": ["cat", "dog"],
//	 "rewards": {"score": {"onnx": "reward.onnx", "image_input": "image", "prompt_input": "prompt",
//	                       "output": "score"}}}
type Spec struct {
	Name      string                `json:"name"`
	Generator GeneratorSpec         `json:"generator"`
	Prompts   []string              `json:"prompts"`
	Rewards   map[string]RewardSpec `json:"rewards"`
}

// GeneratorSpec names the generator's file and tensors. PromptInput "" means unconditional;
// BackboneOutput (optional) is a tensor of the noise's shape computed from the noise (the network
// the LoRA hypernetwork copies). Layout is the output image layout, "NCHW" (default, PyTorch's) or
// "NHWC"; Range is the pixel range [lo, hi], default [0, 1].
type GeneratorSpec struct {
	ONNX           string    `json:"onnx"`
	NoiseInput     string    `json:"noise_input"`
	NoiseShape     []int     `json:"noise_shape"`
	PromptInput    string    `json:"prompt_input,omitempty"`
	Output         string    `json:"output"`
	BackboneOutput string    `json:"backbone_output,omitempty"`
	Layout         string    `json:"layout,omitempty"`
	Range          []float64 `json:"range,omitempty"`
	// PromptEmbeddings (optional): prompt_input receives per-prompt embeddings from this file.
	PromptEmbeddings *EmbeddingsSpec `json:"prompt_embeddings,omitempty"`
	// LoRALayers (optional) is a regular expression over node names: only the matching Conv, Gemm
	// and MatMul layers get LoRA adapters (hypernetwork and fine-tune); default all.
	LoRALayers string `json:"lora_layers,omitempty"`
}

// RewardSpec names a reward's file and tensors: image_input receives the generator's output as is;
// output is the score [B] or [B, 1], higher is better.
type RewardSpec struct {
	ONNX        string `json:"onnx"`
	ImageInput  string `json:"image_input"`
	PromptInput string `json:"prompt_input,omitempty"`
	Output      string `json:"output"`
	// PromptEmbeddings (optional): prompt_input receives per-prompt embeddings from this file.
	PromptEmbeddings *EmbeddingsSpec `json:"prompt_embeddings,omitempty"`
}

// SpecError is a mistake in the spec (a missing or ill-typed field, a name not in the graph, a shape
// that does not match): the command line reports it as a usage error (exit code 2).
type SpecError struct {
	Path  string // the spec file
	Field string // e.g. "generator.noise_shape"
	Msg   string
}

func (e *SpecError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("model spec %s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("model spec %s: field %q: %s", e.Path, e.Field, e.Msg)
}

func specErr(path, field, format string, args ...any) error {
	return &SpecError{Path: path, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ParseSpec decodes and checks a spec's JSON (path is only used in messages). It checks the fields'
// presence, types and values, not the ONNX files (Load does).
func ParseSpec(path string, data []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return nil, specErr(path, te.Field, "must be %s, got a JSON %s", jsonKind(te.Type.String()), te.Value)
		case errors.As(err, &se):
			return nil, specErr(path, "", "invalid JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, specErr(path, "", "empty or truncated JSON")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, specErr(path, f, "unknown field (known: name, generator{onnx, noise_input, noise_shape, prompt_input, output, backbone_output, layout, range, prompt_embeddings{file, tensor}, lora_layers}, prompts, rewards{onnx, image_input, prompt_input, output, prompt_embeddings{file, tensor}})")
		default:
			return nil, specErr(path, "", "invalid JSON: %v", err)
		}
	}
	if dec.More() {
		return nil, specErr(path, "", "trailing data after the JSON object")
	}
	if err := s.check(path); err != nil {
		return nil, err
	}
	return &s, nil
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "map"), strings.Contains(goType, "Spec"):
		return "an object"
	}
	return goType
}

// validName is a reward or model name usable in reward specs and scopes.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ",= \t\n/")
}

func (s *Spec) check(path string) error {
	if s.Name == "" {
		return specErr(path, "name", "missing")
	}
	if !validName(s.Name) {
		return specErr(path, "name", "%q must have no ',', '=', '/' or spaces", s.Name)
	}
	g := s.Generator
	for _, f := range []struct{ field, val string }{{"generator.onnx", g.ONNX},
		{"generator.noise_input", g.NoiseInput}, {"generator.output", g.Output}} {
		if f.val == "" {
			return specErr(path, f.field, "missing")
		}
	}
	if len(g.NoiseShape) == 0 {
		return specErr(path, "generator.noise_shape", "missing (the shape of one noise sample, without the batch axis)")
	}
	if err := checkNoiseShape(path, g.NoiseShape); err != nil {
		return err
	}
	switch g.Layout {
	case "", "NCHW", "NHWC":
	default:
		return specErr(path, "generator.layout", "must be \"NCHW\" or \"NHWC\", got %q", g.Layout)
	}
	if err := checkPixelRange(path, g.Range); err != nil {
		return err
	}
	if g.PromptInput != "" && len(s.Prompts) == 0 {
		return specErr(path, "prompts", "missing: the generator has a prompt input, so the spec must list its prompts")
	}
	if err := checkPrompts(path, s.Prompts); err != nil {
		return err
	}
	if len(s.Rewards) == 0 {
		return specErr(path, "rewards", "missing: name at least one reward model")
	}
	for _, name := range s.RewardNames() {
		r := s.Rewards[name]
		f := "rewards." + name
		if !validName(name) {
			return specErr(path, f, "reward name %q must have no ',', '=', '/' or spaces", name)
		}
		for _, x := range []struct{ field, val string }{{f + ".onnx", r.ONNX}, {f + ".image_input", r.ImageInput}, {f + ".output", r.Output}} {
			if x.val == "" {
				return specErr(path, x.field, "missing")
			}
		}
		if r.PromptInput != "" && len(s.Prompts) == 0 {
			return specErr(path, "prompts", "missing: reward %q has a prompt input, so the spec must list the prompts", name)
		}
	}
	return s.checkEmbeddings(path)
}

// RewardNames lists the spec's reward names, sorted.
func (s *Spec) RewardNames() []string {
	names := make([]string, 0, len(s.Rewards))
	for n := range s.Rewards {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ReadSpec reads and checks a spec file. A file that cannot be read is a *FileError.
func ReadSpec(path string) (*Spec, error) {
	data, err := safeio.ReadFile(path, safeio.JSON)
	if errors.Is(err, safeio.ErrRefused) {
		return nil, err
	}
	if err != nil {
		return nil, &FileError{Path: path, Err: errors.Unwrap(err)}
	}
	return ParseSpec(path, data)
}

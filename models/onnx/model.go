package onnx

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
	"github.com/hypernoise/hypernoise/rewards"
)

// FileError is a problem with a file named by the spec (missing, unreadable, not ONNX, truncated,
// unsupported operations): the command line reports it as a run-time failure (exit code 1).
type FileError = shim.FileError

// UnsupportedError names every unsupported operation of an ONNX file at once.
type UnsupportedError = shim.UnsupportedError

// Scopes of the imported weights in Model.Context().
const (
	ScopeGenerator = "generator"
	scopeRewards   = "rewards"
)

// Model is an imported generator and its rewards, with all weights (frozen) in one context.
type Model struct {
	Spec       *Spec
	SpecPath   string
	ctx        *context.Context
	gen        *shim.Model
	rewards    map[string]*shim.Model
	nativeDims []int // one generated sample's dimensions in the generator's own layout
	mem        memStats
}

// Load reads a spec and its ONNX files and checks them against each other by building the
// generator and every reward once (without running them) on backend: the tensor names exist, the
// noise shape matches the graph, rewards accept the generator's output and return one score per
// sample. Errors are a *SpecError (the spec is wrong), a *FileError or an *UnsupportedError (a file
// is wrong); never a panic.
func Load(specPath string, backend backends.Backend) (m *Model, err error) {
	spec, err := ReadSpec(specPath)
	if err != nil {
		return nil, err
	}
	return FromSpec(spec, specPath, backend)
}

// FromSpec is Load for a parsed spec; specPath locates the files (relative paths are relative to
// its folder, absolute ones are used as they are).
func FromSpec(spec *Spec, specPath string, backend backends.Backend) (m *Model, err error) {
	dir := filepath.Dir(specPath)
	m = &Model{Spec: spec, SpecPath: specPath, ctx: context.New(), rewards: map[string]*shim.Model{}}
	if m.gen, err = shim.Load(resolve(dir, spec.Generator.ONNX)); err != nil {
		return nil, err
	}
	m.gen.CreateVariables(m.ctx.In(ScopeGenerator))
	if _, err := m.gen.SetLoRALayers(spec.Generator.LoRALayers); err != nil {
		return nil, m.specErr("generator.lora_layers", "%v", err)
	}
	for _, name := range spec.RewardNames() {
		r, err := shim.Load(resolve(dir, spec.Rewards[name].ONNX))
		if err != nil {
			return nil, err
		}
		r.CreateVariables(m.rewardCtx(m.ctx, name))
		m.rewards[name] = r
	}
	if err := m.checkNames(); err != nil {
		return nil, err
	}
	if err := m.loadEmbeddings(); err != nil {
		return nil, err
	}
	if err := m.checkPromptTables(); err != nil {
		return nil, err
	}
	if err := m.dryRun(backend); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Model) rewardCtx(ctx *context.Context, name string) *context.Context {
	return ctx.InAbsPath(context.ScopeSeparator + scopeRewards + context.ScopeSeparator + name)
}

func (m *Model) specErr(field, format string, args ...any) error {
	return specErr(m.SpecPath, field, format, args...)
}

// checkNames checks that every tensor the spec names is in its graph, inputs being graph inputs
// of the right kind.
func (m *Model) checkNames() error {
	g := m.Spec.Generator
	if err := m.checkInput(m.gen, "generator.noise_input", g.NoiseInput, true); err != nil {
		return err
	}
	if g.PromptInput != "" {
		if err := m.checkInput(m.gen, "generator.prompt_input", g.PromptInput, g.PromptEmbeddings != nil); err != nil {
			return err
		}
	}
	if err := m.checkInputsCovered(m.gen, "generator", g.NoiseInput, g.PromptInput); err != nil {
		return err
	}
	for field, name := range map[string]string{"generator.output": g.Output, "generator.backbone_output": g.BackboneOutput} {
		if name != "" && !m.gen.Has(name) {
			return m.specErr(field, "no tensor %q in %s", name, g.ONNX)
		}
	}
	for _, rn := range m.Spec.RewardNames() {
		rs, rg := m.Spec.Rewards[rn], m.rewards[rn]
		f := "rewards." + rn
		if err := m.checkInput(rg, f+".image_input", rs.ImageInput, true); err != nil {
			return err
		}
		if rs.PromptInput != "" {
			if err := m.checkInput(rg, f+".prompt_input", rs.PromptInput, rs.PromptEmbeddings != nil); err != nil {
				return err
			}
		}
		if err := m.checkInputsCovered(rg, f, rs.ImageInput, rs.PromptInput); err != nil {
			return err
		}
		if !rg.Has(rs.Output) {
			return m.specErr(f+".output", "no tensor %q in %s", rs.Output, rs.ONNX)
		}
	}
	return nil
}

func (m *Model) checkInput(g *shim.Model, field, name string, isFloat bool) error {
	v, ok := g.Input(name)
	if !ok {
		var names []string
		for _, in := range g.Inputs {
			names = append(names, in.Name)
		}
		return m.specErr(field, "%q is not an input of %s (its inputs: %v)", name, filepath.Base(g.Path), names)
	}
	if isFloat && v.DType != dtypes.Float32 {
		return m.specErr(field, "input %q of %s is %s, want a float tensor (it receives %s)", name, filepath.Base(g.Path), v.DType, floatRole(field))
	}
	if !isFloat && !v.DType.IsInt() {
		return m.specErr(field, "input %q of %s is %s, want int64 prompt ids (or give prompt_embeddings for a float input)", name, filepath.Base(g.Path), v.DType)
	}
	if len(v.Dims) > 0 && v.Dims[0] > 0 {
		return &FileError{Path: g.Path, Err: fmt.Errorf("input %q has a fixed batch size %d; export it with a dynamic batch axis, e.g. torch.onnx.export(..., dynamic_axes={%q: {0: \"batch\"}, ...})", name, v.Dims[0], name)}
	}
	if !isFloat && len(v.Dims) != 1 {
		return m.specErr(field, "input %q of %s has rank %d, want prompt ids of shape [batch]", name, filepath.Base(g.Path), len(v.Dims))
	}
	return nil
}

// checkInputsCovered fails if the graph has inputs the spec does not feed.
func (m *Model) checkInputsCovered(g *shim.Model, field string, fed ...string) error {
	for _, in := range g.Inputs {
		if !slices.Contains(fed, in.Name) {
			return m.specErr(field, "%s has input %q that the spec does not name (as noise/image or prompt input)", filepath.Base(g.Path), in.Name)
		}
	}
	return nil
}

// dryRun builds the generator and rewards for a batch of 2 (no execution) to check shapes.
func (m *Model) dryRun(backend backends.Backend) (err error) {
	phase, phaseFile := "generator", m.Spec.Generator.ONNX
	defer func() {
		if r := recover(); r != nil {
			var se *SpecError
			if e, ok := r.(error); ok && errors.As(e, &se) {
				err = se
				return
			}
			err = m.specErr(phase, "%s cannot be built with this spec: %v", phaseFile, r)
		}
	}()
	g := m.Spec.Generator
	if v, _ := m.gen.Input(g.NoiseInput); !shapeFits(v.Dims, g.NoiseShape) {
		return m.specErr("generator.noise_shape", "%v does not match input %q of %s, shaped %s", g.NoiseShape, g.NoiseInput, g.ONNX, dimsString(v.Dims))
	}
	gr := NewGraph(backend, "check")
	defer gr.Finalize()
	const b = 2
	eps := Parameter(gr, "eps", shapes.Make(dtypes.Float32, append([]int{b}, g.NoiseShape...)...))
	prompts := Parameter(gr, "prompts", shapes.Make(dtypes.Int32, b))
	xs, act := m.gen.CallStats(m.ctx.In(ScopeGenerator), gr, m.feed(m.ctx, eps, prompts), g.Output)
	x := xs[0]
	m.mem.genActivations, m.mem.genPeak = act.Total/b, act.Peak/b
	m.nativeDims = x.Shape().Dimensions[1:]
	if x.Shape().Dim(0) != b || x.DType() != dtypes.Float32 {
		return m.specErr("generator.output", "%q is %s for a batch of %d, want float32 [batch, ...]", g.Output, x.Shape(), b)
	}
	if err := m.checkLayout(x); err != nil {
		return err
	}
	if g.BackboneOutput != "" {
		bb := m.gen.Call(m.ctx.In(ScopeGenerator), gr, m.feed(m.ctx, eps, prompts), g.BackboneOutput)[0]
		if !slices.Equal(bb.Shape().Dimensions, eps.Shape().Dimensions) {
			return m.specErr("generator.backbone_output", "%q is shaped %v for noise %v; the backbone output must have the noise's shape", g.BackboneOutput, bb.Shape().Dimensions, eps.Shape().Dimensions)
		}
	}
	x = m.Generate(m.ctx, eps, prompts)
	for _, rn := range m.Spec.RewardNames() {
		rs := m.Spec.Rewards[rn]
		v, _ := m.rewards[rn].Input(rs.ImageInput)
		if !shapeFits(v.Dims, m.nativeDims) {
			return m.specErr("rewards."+rn+".image_input", "input %q of %s is shaped %s, but the generator makes %v per sample", rs.ImageInput, rs.ONNX, dimsString(v.Dims), m.nativeDims)
		}
		phase, phaseFile = "rewards."+rn, rs.ONNX
		s := m.score(m.ctx, rn, x, prompts, true)
		if s.Rank() != 1 || s.Shape().Dim(0) != b {
			return m.specErr("rewards."+rn+".output", "%q must be one score per sample, [batch] or [batch, 1]; it is %v for a batch of %d", rs.Output, s.Shape().Dimensions, b)
		}
	}
	return nil
}

// shapeFits reports whether per-sample dims fit a graph input's dims (batch axis first, -1 = any).
func shapeFits(graphDims, sample []int) bool {
	if len(graphDims) != len(sample)+1 {
		return false
	}
	for i, d := range sample {
		if g := graphDims[i+1]; g > 0 && g != d {
			return false
		}
	}
	return true
}

func dimsString(d []int) string {
	s := "["
	for i, v := range d {
		if i > 0 {
			s += ", "
		}
		if v < 0 {
			s += "?"
		} else {
			s += fmt.Sprint(v)
		}
	}
	return s + "]"
}

func (m *Model) checkLayout(x *Node) error {
	if x.Rank() != 4 {
		return nil // not an image; grids are not written for it
	}
	c := x.Shape().Dim(1)
	if m.Spec.Generator.Layout == "NHWC" {
		c = x.Shape().Dim(3)
	}
	if c != 1 && c != 3 {
		return m.specErr("generator.layout", "output %q is %v: with layout %s it has %d channels, want 1 (grey) or 3 (RGB)", m.Spec.Generator.Output, x.Shape().Dimensions, m.layout(), c)
	}
	return nil
}

func (m *Model) layout() string {
	if m.Spec.Generator.Layout == "" {
		return "NCHW"
	}
	return m.Spec.Generator.Layout
}

// feed maps the generator's inputs: the noise, and the prompt ids (in the input's integer type)
// or their embeddings when it takes them.
func (m *Model) feed(ctx *context.Context, eps, prompts *Node) map[string]*Node {
	g := m.Spec.Generator
	in := map[string]*Node{g.NoiseInput: eps}
	if g.PromptInput != "" {
		in[g.PromptInput] = m.promptFeed(ctx, m.gen, g.PromptInput, "generator", g.PromptEmbeddings, prompts)
	}
	return in
}

// Context is the context holding the imported weights (frozen); build graphs with it or a LoRA
// context derived from it.
func (m *Model) Context() *context.Context { return m.ctx }

// Source implements hypernoise.Sourced: the generator's file and output tensor.
func (m *Model) Source() string {
	return fmt.Sprintf("%s, output %q", m.Spec.Generator.ONNX, m.Spec.Generator.Output)
}

// Name implements hypernoise.Generator: the spec's name.
func (m *Model) Name() string { return m.Spec.Name }

// NoiseShape implements hypernoise.Generator.
func (m *Model) NoiseShape() []int { return slices.Clone(m.Spec.Generator.NoiseShape) }

// Prompts implements hypernoise.Generator (nil for an unconditional generator).
func (m *Model) Prompts() []string {
	if m.Spec.Generator.PromptInput == "" && len(m.Spec.Prompts) == 0 {
		return nil
	}
	return slices.Clone(m.Spec.Prompts)
}

// Generate implements hypernoise.Generator: the ONNX generator's output for noise eps
// [B, noise_shape...] and prompt ids [B]. Images (a rank-4 output) are returned like the embedded
// model's, [B, H, W, C] with values in [0, 1]: the spec's layout and range are undone here (an affine
// map and a transpose, no clipping), and redone before the rewards see them, so every method, grid
// writer and server handles imported images as it handles the embedded ones. Other outputs are
// returned as they are.
func (m *Model) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	x := m.gen.Call(ctx.In(ScopeGenerator), eps.Graph(), m.feed(ctx, eps, prompts), m.Spec.Generator.Output)[0]
	if !m.isImage() {
		return x
	}
	if m.layout() == "NCHW" {
		x = TransposeAllAxes(x, 0, 2, 3, 1)
	}
	if r := m.Spec.Generator.Range; r != nil {
		x = MulScalar(AddScalar(x, -r[0]), 1/(r[1]-r[0]))
	}
	return x
}

// ImageDims returns [H, W, C] of Generate's images, or nil when the output is not an image batch.
func (m *Model) ImageDims() []int {
	if !m.isImage() {
		return nil
	}
	d := m.nativeDims
	if m.layout() == "NCHW" {
		return []int{d[1], d[2], d[0]}
	}
	return slices.Clone(d)
}

// isImage reports whether the generator's output is an image batch (rank 4).
func (m *Model) isImage() bool { return len(m.nativeDims) == 3 }

// toNative maps Generate's images back to the generator's own layout and range (the rewards'
// input format).
func (m *Model) toNative(x *Node) *Node {
	if !m.isImage() {
		return x
	}
	if r := m.Spec.Generator.Range; r != nil {
		x = AddScalar(MulScalar(x, r[1]-r[0]), r[0])
	}
	if m.layout() == "NCHW" {
		x = TransposeAllAxes(x, 0, 3, 1, 2)
	}
	return x
}

// HasBackbone reports whether the spec names a noise-shaped backbone output (or the generator's
// output itself has the noise's shape), so that Generator() implements hypernoise.Backbone.
func (m *Model) HasBackbone() bool { return m.backboneName() != "" }

func (m *Model) backboneName() string {
	g := m.Spec.Generator
	if g.BackboneOutput != "" {
		return g.BackboneOutput
	}
	if slices.Equal(m.nativeDims, g.NoiseShape) {
		return g.Output
	}
	return ""
}

// Generator returns the model as a hypernoise.Generator; it is a hypernoise.Backbone when
// HasBackbone.
func (m *Model) Generator() hypernoise.Generator {
	if m.HasBackbone() {
		return &WithBackbone{m}
	}
	return m
}

// WithBackbone is a Model whose spec names a noise-shaped backbone tensor.
type WithBackbone struct{ *Model }

// Backbone implements hypernoise.Backbone: the tensor named backbone_output (of the noise's
// shape). Under nn.WithLoRA(OutputOnly) the layer producing it is replaced by its LoRA branch.
func (w *WithBackbone) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	return w.gen.Call(ctx.In(ScopeGenerator), eps.Graph(), w.feed(ctx, eps, prompts), w.backboneName())[0]
}

// CheckLoRA returns an error unless the LoRA hypernetwork can start at f = 0 on the backbone:
// the backbone output must come from a Conv, Gemm or MatMul layer with stored weights, through
// ops linear in it and added biases or residuals (shim's output path: f is that layer's LoRA
// branch carried to the backbone output, the residual dropped).
func (m *Model) CheckLoRA() error {
	name := m.backboneName()
	if name == "" {
		return m.specErr("generator.backbone_output", "not given, and the generator's output is not noise-shaped: the LoRA hypernetwork needs a noise-shaped backbone tensor; use the MLP modulator")
	}
	return m.gen.CheckOutputLayer(name)
}

// score builds reward rn, r(x, c) [B], for images x (Generate's format) and prompt ids: the reward
// graph's output, [B, 1] reshaped to [B]. Other shapes panic, unless dryRun (Load then reports them
// as a spec error).
func (m *Model) score(ctx *context.Context, rn string, x, prompts *Node, dryRun bool) *Node {
	rs := m.Spec.Rewards[rn]
	rg := m.rewards[rn]
	in := map[string]*Node{rs.ImageInput: m.toNative(x)}
	if rs.PromptInput != "" {
		in[rs.PromptInput] = m.promptFeed(ctx, rg, rs.PromptInput, "reward_"+rn, rs.PromptEmbeddings, prompts)
	}
	ss, act := rg.CallStats(m.rewardCtx(ctx, rn), x.Graph(), in, rs.Output)
	s := ss[0]
	if dryRun && x.Shape().Dim(0) > 0 {
		m.mem.rewardActivations += act.Total / int64(x.Shape().Dim(0))
		m.mem.rewardPeak += act.Peak / int64(x.Shape().Dim(0))
	}
	if s.Rank() == 2 && s.Shape().Dim(1) == 1 {
		s = Reshape(s, s.Shape().Dim(0))
	}
	if !dryRun && s.Rank() != 1 {
		panic(fmt.Errorf("reward %q: output %q is %s, want [batch]", rn, rs.Output, s.Shape()))
	}
	if s.DType() != x.DType() {
		s = ConvertDType(s, x.DType())
	}
	return s
}

// Reward returns the spec's reward called name (Score must run in Model.Context() or a context
// derived from it).
func (m *Model) Reward(name string) (hypernoise.Reward, bool) {
	if _, ok := m.rewards[name]; !ok {
		return nil, false
	}
	rs := m.Spec.Rewards[name]
	return rewards.Func{RewardName: name, Src: fmt.Sprintf("%s, output %q", rs.ONNX, rs.Output),
		Fn: func(ctx *context.Context, x, prompts *Node) *Node {
			return m.score(ctx, name, x, prompts, false)
		}}, true
}

// Registry returns the spec's rewards, for reward specs like "score=1".
func (m *Model) Registry() *rewards.Registry {
	r := rewards.NewRegistry()
	for _, name := range m.Spec.RewardNames() {
		rw, _ := m.Reward(name)
		summary := "imported reward " + m.Spec.Rewards[name].ONNX
		_ = r.Register(name, summary, func() (hypernoise.Reward, error) { return rw, nil })
	}
	return r
}

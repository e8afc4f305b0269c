// Package infer is the inference pipeline: a model of any family (package family: a frozen
// generator with its rewards), any number of
// trained hypernetworks loaded beside it (each in its own variable scope), and every registered
// method (see package methods) built once per request shape and kept with its compiled graphs.
//
// A Pipeline is safe for concurrent use: graphs are built under one write lock per pipeline (graph
// building reads, and loading adds, variables of the shared context) and run under its read lock,
// so generations run concurrently with each other. Training and evaluation orchestration live in
// package pipeline; this package only generates.
package infer

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/methods" // registers the toolkit's methods
)

// Hypernet is a trained hypernetwork loaded into a pipeline.
type Hypernet struct {
	Name  string // the folder's base name
	Dir   string
	Scope string // absolute scope of its variables in the pipeline's context
	// Modulator is the hypernetwork (for a tilt dial: the dial at Config.Beta; see ModulatorAt).
	Modulator hypernoise.Modulator
	Reward    hypernoise.Reward // the reward it was trained for
	Config    Config
	dial      hypernet.Dial
}

// ModulatorAt is the modulator at tilt temperature beta: 0 means the hypernetwork's own
// (Modulator); another beta needs a tilt dial trained over a range holding it (Config.CheckBeta).
func (h *Hypernet) ModulatorAt(beta float64) (hypernoise.Modulator, error) {
	if beta == 0 {
		return h.Modulator, nil
	}
	if err := h.Config.CheckBeta(beta); err != nil {
		return nil, err
	}
	if h.dial == nil {
		return h.Modulator, nil
	}
	return hypernet.AtBeta(h.dial, beta)
}

// NewHypernet binds a modulator built from cfg (a dial is set to cfg.Beta) into a Hypernet.
func NewHypernet(name, dir, scope string, mod hypernoise.Modulator, reward hypernoise.Reward, cfg Config) (*Hypernet, error) {
	h := &Hypernet{Name: name, Dir: dir, Scope: scope, Modulator: mod, Reward: reward, Config: cfg}
	if d, ok := mod.(hypernet.Dial); ok {
		h.dial = d
		at, err := hypernet.AtBeta(d, cfg.Beta)
		if err != nil {
			return nil, err
		}
		h.Modulator = at
	}
	return h, nil
}

// Pipeline generates with a Model, its hypernetworks and the registered methods.
type Pipeline struct {
	backend backends.Backend
	model   *family.Model
	chunk   int
	lock    sync.RWMutex // graph building (write) vs running (read) on model.Context

	mu        sync.Mutex
	hypernets []*Hypernet
	methods   map[string]*methodEntry
	rewardsBy map[string]hypernoise.Reward
	scorers   map[string]*hypernet.SharedExec
	finetuned hypernoise.Generator
	closed    bool
	uses      int64
}

// MaxCachedMethods bounds the methods Generate keeps built: beyond it, the least recently used
// one that no call is using is closed (methods returned by Method are kept until Close).
const MaxCachedMethods = 32

type methodEntry struct {
	once   sync.Once
	m      hypernoise.Method
	err    error
	users  int   // Generate calls using it now
	pinned bool  // handed out by Method: never evicted
	last   int64 // use counter at the last acquire
}

// New returns a pipeline over model; chunk is the most rows a method runs at once (0: the default).
func New(backend backends.Backend, model *family.Model, chunk int) (*Pipeline, error) {
	if backend == nil || model == nil || model.Generator == nil || model.Context == nil || model.Rewards == nil {
		return nil, fmt.Errorf("inference pipeline needs a backend and a model with a generator, a context and rewards")
	}
	return &Pipeline{backend: backend, model: model, chunk: chunk, methods: map[string]*methodEntry{},
		rewardsBy: map[string]hypernoise.Reward{}, scorers: map[string]*hypernet.SharedExec{}}, nil
}

// Chunk is the most rows a method of the pipeline runs in one compiled call: the pipeline's chunk
// (hypernoise.DefaultChunk when 0), lowered to what the model's memory estimate allows
// (family.Model.ChunkRows; grad: the method takes gradients, as ReNO's optimization steps do).
// Methods treat rows independently, so the chunk changes memory and speed, not the samples.
func (p *Pipeline) Chunk(grad bool) int {
	chunk := p.chunk
	if chunk <= 0 {
		chunk = hypernoise.DefaultChunk
	}
	return p.model.ChunkRows(grad, chunk)
}

// Model returns the pipeline's model.
func (p *Pipeline) Model() *family.Model { return p.model }

// Backend returns the pipeline's backend.
func (p *Pipeline) Backend() backends.Backend { return p.backend }

// Hypernets lists the loaded hypernetworks in load order.
func (p *Pipeline) Hypernets() []*Hypernet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hypernets)
}

// Hypernet returns the loaded hypernetwork with this name; "" means the only one loaded. The error
// names the loaded ones.
func (p *Pipeline) Hypernet(name string) (*Hypernet, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for _, h := range p.hypernets {
		if h.Name == name || name == "" && len(p.hypernets) == 1 {
			return h, nil
		}
		names = append(names, h.Name)
	}
	switch {
	case len(names) == 0:
		return nil, fmt.Errorf("no hypernetwork is loaded")
	case name == "":
		return nil, fmt.Errorf("several hypernetworks are loaded; name one of: %s", strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("unknown hypernetwork %q; loaded: %s", name, strings.Join(names, ", "))
}

// LoadHypernet opens the hypernetwork folder dir (OpenFolder) and loads it (LoadFolder).
func (p *Pipeline) LoadHypernet(dir string) (*Hypernet, error) {
	f, err := OpenFolder(dir)
	if err != nil {
		return nil, err
	}
	return p.LoadFolder(f)
}

// LoadFolder loads an opened hypernetwork folder under its name (Folder.Name), into a scope of its
// own. It refuses a folder trained for another generator or other generator weights, weights that
// fail the folder's integrity checks (Folder.Weights), and weights that do not fit the
// architecture its config names.
func (p *Pipeline) LoadFolder(f *Folder) (hn *Hypernet, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("loading hypernetwork %s: %v", f.Dir, r)
		}
	}()
	dir, cfg, name := f.Dir, f.Config, f.Name()
	cfgPath := filepath.Join(dir, ConfigFile)
	if err := f.CheckModel(p.model); err != nil {
		return nil, err
	}
	gen := p.model.Generator
	reward, err := p.Reward(cfg.RewardSpec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if _, err := f.Weights(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("pipeline is closed")
	}
	for _, h := range p.hypernets {
		if h.Name == name {
			return nil, fmt.Errorf("a hypernetwork named %q is already loaded (from %s)", name, h.Dir)
		}
	}
	scopeName := fmt.Sprintf("%s_%d", SavedScope, len(p.hypernets))
	scope := context.ScopeSeparator + scopeName
	mod, err := cfg.Modulator.Build(gen, scopeName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	p.lock.Lock()
	want, err := f.LoadInto(p.model.Context, scope)
	p.lock.Unlock()
	if err != nil {
		return nil, err
	}
	if hn, err = NewHypernet(name, dir, scope, mod, reward, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if err := p.checkWeights(hn, want); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, WeightsFile), err)
	}
	p.hypernets = append(p.hypernets, hn)
	return hn, nil
}

// checkWeights builds the modulator once and fails if that needed a variable the file lacked.
func (p *Pipeline) checkWeights(hn *Hypernet, have map[string]bool) error {
	s, err := hypernet.NewSharedSampler(p.backend, p.model.Context, &p.lock, 1, p.model.Generator, hn.Modulator)
	if err != nil {
		return err
	}
	defer s.Finalize()
	eps := tensors.FromShape(shapes.Make(dtypes.Float32, append([]int{1}, p.model.Generator.NoiseShape()...)...))
	if _, _, _, err := s.Sample(eps, tensors.FromValue([]int32{0})); err != nil {
		return err
	}
	p.lock.RLock()
	defer p.lock.RUnlock()
	var missing []string
	for v := range p.model.Context.IterVariables() {
		if inScope(v.Scope(), hn.Scope) && !have[v.ScopeAndName()] {
			missing = append(missing, strings.Replace(v.ScopeAndName(), hn.Scope, context.ScopeSeparator+SavedScope, 1))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("weights lack %d variable(s) the %s architecture needs, e.g. %s", len(missing), hn.Config.Modulator.Kind, missing[0])
	}
	return nil
}

// SetFinetuned makes gen, whose adapters are in the model's context (see Update), the generator
// of the methods that need a fine-tuned one.
func (p *Pipeline) SetFinetuned(gen hypernoise.Generator) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finetuned = gen
}

// Update runs f on the model's context under the pipeline's write lock: use it to add or change
// variables (e.g. load adapters) while the pipeline may be generating.
func (p *Pipeline) Update(f func(ctx *context.Context) error) error {
	p.lock.Lock()
	defer p.lock.Unlock()
	return f(p.model.Context)
}

// Reward returns the reward of a spec over the model's rewards ("" is the model's default),
// built once and kept.
func (p *Pipeline) Reward(spec string) (hypernoise.Reward, error) {
	if spec == "" {
		spec = p.model.DefaultReward
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.rewardsBy[spec]; ok {
		return r, nil
	}
	r, err := p.model.Rewards.Parse(spec)
	if err != nil {
		return nil, err
	}
	p.rewardsBy[spec] = r
	return r, nil
}

// Request names a method and what it is built with.
type Request struct {
	Method   string // a registered method name
	Hypernet string // a loaded hypernetwork (methods that need one; "" = the only one loaded)
	// Reward is the reward spec of methods that need one; "" = the hypernetwork's (when the
	// request names or implies one), else the model's default.
	Reward string
	// N (best-of-N candidates) and Steps (ReNO iterations): 0 = the model's default for the
	// method, else the registry's (hypernoise.MethodInfo.Settle).
	N     int
	Steps int
	Beta  float64 // tilt temperature of a tilt-dial hypernetwork (0: its own)
}

// resolved fills in the defaults of r and returns the method's registry entry and environment.
func (p *Pipeline) resolve(r Request) (Request, hypernoise.MethodInfo, hypernoise.MethodEnv, error) {
	info, err := hypernoise.LookupMethod(r.Method)
	if err != nil {
		return r, info, hypernoise.MethodEnv{}, err
	}
	env := hypernoise.MethodEnv{Backend: p.backend, Context: p.model.Context, Lock: &p.lock,
		Generator: p.model.Generator, Chunk: p.Chunk(info.Needs.Has(hypernoise.NeedsSteps))}
	var hn *Hypernet
	if info.Needs.Has(hypernoise.NeedsModulator) || r.Hypernet != "" {
		if hn, err = p.Hypernet(r.Hypernet); err != nil {
			return r, info, env, fmt.Errorf("method %s: %w", r.Method, err)
		}
		r.Hypernet = hn.Name
	}
	if !info.Needs.Has(hypernoise.NeedsModulator) && !info.Needs.Has(hypernoise.NeedsReward) {
		r.Hypernet = ""
	}
	if info.Needs.Has(hypernoise.NeedsModulator) {
		if env.Modulator, err = hn.ModulatorAt(r.Beta); err != nil {
			return r, info, env, fmt.Errorf("hypernetwork %s: %w", hn.Name, err)
		}
	} else {
		r.Beta = 0
	}
	if info.Needs.Has(hypernoise.NeedsReward) {
		if r.Reward == "" && hn != nil {
			r.Reward = hn.Config.RewardSpec
		}
		if r.Reward == "" {
			r.Reward = p.model.DefaultReward
		}
		if env.Reward, err = p.Reward(r.Reward); err != nil {
			return r, info, env, err
		}
	} else {
		r.Reward = ""
	}
	if info.Needs.Has(hypernoise.NeedsFinetuned) {
		p.mu.Lock()
		env.Finetuned = p.finetuned
		p.mu.Unlock()
		if env.Finetuned == nil {
			return r, info, env, fmt.Errorf("method %s: no fine-tuned generator in this pipeline", r.Method)
		}
	}
	k, err := info.Settle(p.model.MethodDefaults[r.Method], hypernoise.Knobs{N: r.N, Steps: r.Steps})
	if err != nil {
		return r, info, env, err
	}
	r.N, r.Steps, env.N, env.Steps = k.N, k.Steps, k.N, k.Steps
	if err := info.CheckEnv(env); err != nil {
		return r, info, env, err
	}
	return r, info, env, nil
}

// Method returns the method a request describes, built on first use and kept (with its compiled
// graphs) until Close.
func (p *Pipeline) Method(r Request) (hypernoise.Method, error) {
	e, err := p.acquire(r)
	if e == nil {
		return nil, err
	}
	p.mu.Lock()
	e.pinned = true
	e.users--
	p.mu.Unlock()
	return e.m, err
}

// acquire returns the built method entry of a request with its user count raised (release it).
// Entries beyond MaxCachedMethods that nobody uses are closed, least recently used first, so a
// stream of distinct requests (e.g. many betas of a tilt dial) does not grow memory.
func (p *Pipeline) acquire(r Request) (*methodEntry, error) {
	r, info, env, err := p.resolve(r)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%s|%s|%d|%d|%g", r.Method, r.Hypernet, r.Reward, r.N, r.Steps, r.Beta)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("pipeline is closed")
	}
	e, ok := p.methods[key]
	if !ok {
		e = &methodEntry{}
		p.methods[key] = e
	}
	p.uses++
	e.users++
	e.last = p.uses
	for len(p.methods) > MaxCachedMethods {
		var oldKey string
		var old *methodEntry
		for k, c := range p.methods {
			if c.users == 0 && !c.pinned && (old == nil || c.last < old.last) {
				oldKey, old = k, c
			}
		}
		if old == nil {
			break
		}
		delete(p.methods, oldKey)
		if old.m != nil {
			old.m.Close()
		}
	}
	p.mu.Unlock()
	e.once.Do(func() { e.m, e.err = info.New(env) })
	if e.err != nil {
		p.release(e)
		return nil, e.err
	}
	return e, nil
}

// Cached is the number of methods the pipeline keeps built.
func (p *Pipeline) Cached() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.methods)
}

func (p *Pipeline) release(e *methodEntry) {
	p.mu.Lock()
	e.users--
	p.mu.Unlock()
}

// Score computes the reward of a spec ("" = the model's default) for samples x [B, ...] and
// prompt ids [B], in chunks.
func (p *Pipeline) Score(spec string, x, prompts *tensors.Tensor) ([]float32, error) {
	if spec == "" {
		spec = p.model.DefaultReward
	}
	reward, err := p.Reward(spec)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	exec, ok := p.scorers[spec]
	if !ok {
		exec, err = hypernet.NewSharedExec(p.backend, p.model.Context, &p.lock, func(ctx *context.Context, x, prompts *Node) *Node {
			return ConvertDType(reward.Score(ctx, x, prompts), dtypes.Float32)
		})
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.scorers[spec] = exec
	}
	p.mu.Unlock()
	b := x.Shape().Dim(0)
	flat := tensors.MustCopyFlatData[float32](x)
	ids := tensors.MustCopyFlatData[int32](prompts)
	d := len(flat) / max(b, 1)
	chunk := p.Chunk(false)
	var out []float32
	err = hypernet.Chunks(b, chunk, func(lo, hi int) error {
		pr := hypernet.PaddedRows(hi-lo, chunk)
		outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(hypernet.PadRows(flat, d, lo, hi, pr), append([]int{pr}, x.Shape().Dimensions[1:]...)...),
			tensors.FromFlatDataAndDimensions(hypernet.PadRows(ids, 1, lo, hi, pr), pr))
		if err != nil {
			return err
		}
		out = append(out, tensors.MustCopyFlatData[float32](outs[0])[:hi-lo]...)
		return nil
	})
	return out, err
}

// Output is what Generate returns.
type Output struct {
	Method  string          // the method's label, e.g. "best-of-16"
	X       *tensors.Tensor // samples [B, ...]
	Rewards []float32       // the reward of each sample (the request's reward spec, see RewardSpec)
	Cost    hypernoise.Cost // per sample
	// RewardSpec is the spec the rewards were scored with.
	RewardSpec string
}

// Generate runs the request's method on noise eps [B, NoiseShape...] and prompt ids [B] and scores
// the samples with the request's reward (for methods that use none: the hypernetwork's when the
// request names one, else the model's default), so methods compared on the same noises are scored
// alike.
func (p *Pipeline) Generate(r Request, eps, prompts *tensors.Tensor) (*Output, error) {
	e, err := p.acquire(r)
	if err != nil {
		return nil, err
	}
	defer p.release(e)
	m := e.m
	x, cost, err := m.Generate(eps, prompts)
	if err != nil {
		return nil, err
	}
	spec := r.Reward
	if spec == "" && r.Hypernet != "" || spec == "" && len(p.Hypernets()) == 1 {
		if hn, err := p.Hypernet(r.Hypernet); err == nil {
			spec = hn.Config.RewardSpec
		}
	}
	if spec == "" {
		spec = p.model.DefaultReward
	}
	rs, err := p.Score(spec, x, prompts)
	if err != nil {
		return nil, err
	}
	return &Output{Method: m.Name(), X: x, Rewards: rs, Cost: cost, RewardSpec: spec}, nil
}

// Close releases every method's and scorer's compiled graphs.
func (p *Pipeline) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, e := range p.methods {
		if e.m != nil {
			e.m.Close()
		}
	}
	for _, s := range p.scorers {
		s.Finalize()
	}
	p.methods, p.scorers = map[string]*methodEntry{}, map[string]*hypernet.SharedExec{}
}

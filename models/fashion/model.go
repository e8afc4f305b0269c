package fashion

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/internal/safeio"
)

//go:embed weights
var embedded embed.FS

// WeightsDir is the folder of the shipped weights inside the repository (and of the embedded copy).
const WeightsDir = "weights"

// FiguresFile is the name of the JSON file, next to the weights, holding each part's figures.
const FiguresFile = "figures.json"

// Parts lists the trainable parts in training order (later parts need earlier ones).
var Parts = []string{"classifier", "heldout", "autoencoder", "teacher", "student", "discriminator"}

// partScope maps a part name to its variable scope.
var partScope = map[string]string{
	"autoencoder": ScopeAutoencoder, "teacher": ScopeTeacher, "student": ScopeStudent,
	"classifier": ScopeClassifier, "heldout": ScopeHeldOut, "discriminator": ScopeDiscriminator,
}

// WeightsFile is the file name of a part's weights.
func WeightsFile(part string) string { return part + ".safetensors" }

// Prompts are the class names, in Fashion-MNIST label order: prompt id i is class i.
var Prompts = fashionmnist.ClassNames

// promptAliases are other accepted spellings of some prompts.
var promptAliases = map[string]int{"t-shirt/top": 0, "tshirt": 0, "top": 0, "trousers": 1,
	"sandals": 5, "sneakers": 7, "ankle-boot": 9, "boot": 9}

// UnknownPromptError is returned for a prompt that is not one of the class names.
type UnknownPromptError struct{ Prompt string }

func (e *UnknownPromptError) Error() string {
	return fmt.Sprintf("unknown prompt %s; the prompts are: %s", safeio.Shorten(e.Prompt, 80), strings.Join(Prompts, ", "))
}

// PromptID returns the class id of a prompt, matched case-insensitively (surrounding blanks ignored).
func PromptID(prompt string) (int, error) {
	p := strings.ToLower(strings.Join(strings.Fields(prompt), " "))
	for i, name := range Prompts {
		if p == name {
			return i, nil
		}
	}
	if i, ok := promptAliases[p]; ok {
		return i, nil
	}
	return 0, &UnknownPromptError{Prompt: prompt}
}

// Model is the Fashion-MNIST pipeline: the weights of all parts in one context (scopes
// /autoencoder, /teacher, /student, /classifier, /heldout, /discriminator), all frozen. It
// implements hypernoise.Generator and hypernoise.Backbone with the one-step student.
type Model struct {
	ctx      *context.Context
	parts    map[string]bool
	digests  map[string]string // SHA-256 (hex) of each part's weights file as loaded
	figures  Figures
	Guidance float64 // classifier-free guidance scale of the teacher sampler (TeacherSample)
}

var _ hypernoise.Backbone = (*Model)(nil)

// Default loads the weights embedded in the binary. Each call returns a new, independent Model.
func Default() (*Model, error) {
	sub, err := fs.Sub(embedded, WeightsDir)
	if err != nil {
		return nil, err
	}
	return LoadFS(sub)
}

// Load loads the weights from a folder written by Train (e.g. "models/fashion/weights").
func Load(dir string) (*Model, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("fashion weights folder: %w", err)
	}
	return LoadFS(os.DirFS(dir))
}

// LoadFS loads every part whose weights file is present in fsys (parts may be missing; Has says
// which are there, and methods that need a missing part report it). All variables are frozen.
func LoadFS(fsys fs.FS) (m *Model, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("loading the fashion weights: %v", r)
		}
	}()
	m = &Model{ctx: context.New(), parts: map[string]bool{}, digests: map[string]string{}, Guidance: DefaultGuidance}
	for _, part := range Parts {
		data, err := fs.ReadFile(fsys, WeightsFile(part))
		if err != nil {
			continue
		}
		meta, err := ckpt.Decode(m.ctx, data)
		if err != nil {
			return nil, fmt.Errorf("fashion %s weights: %w", part, err)
		}
		if versioned[part] {
			arch := meta["arch"]
			if arch == "" {
				arch = ArchV1
			}
			if err := SetArch(m.ctx, part, arch); err != nil {
				return nil, fmt.Errorf("fashion %s weights: %w", part, err)
			}
		}
		m.parts[part] = true
		m.digests[part] = ckpt.FileSHA256(data)
	}
	if len(m.parts) == 0 {
		return nil, fmt.Errorf("no fashion weights found (expected files like %s); train them with: hypernoise zoo train all",
			WeightsFile("student"))
	}
	for v := range m.ctx.IterVariables() {
		v.SetTrainable(false)
	}
	if err := m.checkComplete(); err != nil {
		return nil, err
	}
	if data, err := fs.ReadFile(fsys, FiguresFile); err == nil {
		m.figures, err = parseFigures(data)
		if err != nil {
			return nil, fmt.Errorf("fashion %s: %w", FiguresFile, err)
		}
	}
	return m, nil
}

// Context is the root context holding the (frozen) weights; build graphs with it or a child.
func (m *Model) Context() *context.Context { return m.ctx }

// WeightsSHA256 is the SHA-256 (hex) of the weights file a part was loaded from ("" if not loaded):
// what was computed from those weights (the test set's held-out statistics) can name them.
func (m *Model) WeightsSHA256(part string) string { return m.digests[part] }

// Arch is the architecture version (ArchV1, ArchV2) of a part's loaded weights; "" for a part
// that has a single architecture or is not loaded.
func (m *Model) Arch(part string) string {
	if !versioned[part] || !m.parts[part] {
		return ""
	}
	return archOf(m.ctx, part)
}

// Has reports whether a part's weights were loaded.
func (m *Model) Has(part string) bool { return m.parts[part] }

// Need returns an error naming the missing parts among those given.
func (m *Model) Need(parts ...string) error {
	var missing []string
	for _, p := range parts {
		if !m.parts[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the fashion weights lack part(s) %s; train them with: hypernoise zoo train <part>",
			strings.Join(missing, ", "))
	}
	return nil
}

// Figures returns the figures recorded by training (nil if the figures file is absent).
func (m *Model) Figures() Figures { return m.figures }

// Name implements hypernoise.Generator.
func (m *Model) Name() string { return "fashion" }

// NoiseShape implements hypernoise.Generator: one noise sample is [7,7,4].
func (m *Model) NoiseShape() []int { return []int{LatentSide, LatentSide, LatentCh} }

// Prompts implements hypernoise.Generator: the ten class names.
func (m *Model) Prompts() []string { return append([]string(nil), Prompts...) }

// Backbone implements hypernoise.Backbone: the student network s(eps, c), a standardized latent
// of eps's shape [B,7,7,4]. ctx is the model's root context or a LoRA context derived from it.
func (m *Model) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	return Student(ctx, eps, prompts)
}

// Generate implements hypernoise.Generator: x = decoder(s(eps, c)), images [B,28,28,1] in [0,1].
func (m *Model) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return Decode(ctx, Student(ctx, eps, prompts))
}

// DefaultGuidance is the classifier-free guidance scale w of the teacher: v = v_u + w (v_c - v_u).
const DefaultGuidance = 2.0

// studentTime is the (constant) time input of the student network: t = 1 is pure noise.
const studentTime = 1.0

// Student is the one-step student s(eps, c): noise eps [B,7,7,4] and prompt ids c [B] to a
// standardized latent [B,7,7,4] (its last layer is nn.OutputDense, so LoRA OutputOnly works).
func Student(ctx *context.Context, eps, prompts *Node) *Node {
	b := eps.Shape().Dim(0)
	t := Ones(eps.Graph(), shapes.Make(dtypes.Float32, b))
	return flow(ctx.In(ScopeStudent), "student", eps, MulScalar(t, studentTime), prompts)
}

// latentStats returns the per-channel mean and standard deviation [4] of the raw latents.
func latentStats(ctx *context.Context, g *Graph) (mu, sd *Node) {
	a := ctx.InAbsPath(context.ScopeSeparator + ScopeAutoencoder)
	mv, sv := a.GetVariable("latent_mean"), a.GetVariable("latent_std")
	if mv == nil || sv == nil {
		panic(fmt.Errorf("fashion: the autoencoder's latent statistics are missing (weights not loaded?)"))
	}
	return ExpandLeftToRank(mv.ValueGraph(g), 4), ExpandLeftToRank(sv.ValueGraph(g), 4)
}

// Encode maps images x [B,28,28,1] in [0,1] to standardized latents (z_raw - mu) / sd, [B,7,7,4].
func Encode(ctx *context.Context, x *Node) *Node {
	mu, sd := latentStats(ctx, x.Graph())
	return Div(Sub(encoder(ctx.In(ScopeAutoencoder), x), mu), sd)
}

// Decode maps standardized latents z [B,7,7,4] to images sigmoid(decoder(z sd + mu)) [B,28,28,1].
func Decode(ctx *context.Context, z *Node) *Node {
	mu, sd := latentStats(ctx, z.Graph())
	return Sigmoid(decoder(ctx.In(ScopeAutoencoder), Add(Mul(z, sd), mu)))
}

// TeacherVelocity is the teacher's velocity field v(x_t, t, c) for the straight path
// x_t = (1-t) z + t eps (so v ≈ eps - z); c = NullClass gives the unconditional field.
func TeacherVelocity(ctx *context.Context, x, t, c *Node) *Node {
	return flow(ctx.In(ScopeTeacher), "teacher", x, t, c)
}

// TeacherSample integrates the teacher's guided ODE dx/dt = v_u + w (v_c - v_u) from t = 1 (x = eps)
// to t = 0 with `steps` Euler steps and returns the standardized latent [B,7,7,4].
func TeacherSample(ctx *context.Context, eps, prompts *Node, steps int, guidance float64) *Node {
	if steps < 1 {
		panic(fmt.Errorf("fashion: teacher steps must be >= 1, got %d", steps))
	}
	g := eps.Graph()
	b := eps.Shape().Dim(0)
	null := MulScalar(OnesLike(ConvertDType(prompts, dtypes.Int32)), NullClass)
	cc := Concatenate([]*Node{ConvertDType(prompts, dtypes.Int32), null}, 0)
	x := eps
	dt := 1.0 / float64(steps)
	if guidance == 1 {
		// v_u + 1 (v_c - v_u) = v_c: the unconditional field is not needed.
		c := ConvertDType(prompts, dtypes.Int32)
		for k := steps; k >= 1; k-- {
			tt := BroadcastToDims(Scalar(g, dtypes.Float32, float64(k)*dt), b)
			x = Sub(x, MulScalar(TeacherVelocity(ctx, x, tt, c), dt))
		}
		return x
	}
	for k := steps; k >= 1; k-- {
		t := Scalar(g, dtypes.Float32, float64(k)*dt)
		tt := BroadcastToDims(t, 2*b)
		v := TeacherVelocity(ctx, Concatenate([]*Node{x, x}, 0), tt, cc)
		vc := Slice(v, AxisRange(0, b))
		vu := Slice(v, AxisRange(b, 2*b))
		vg := Add(vu, MulScalar(Sub(vc, vu), guidance))
		x = Sub(x, MulScalar(vg, dt))
	}
	return x
}

// ClassifierLogits is the reward classifier: images [B,28,28,1] -> class logits [B,10].
func ClassifierLogits(ctx *context.Context, x *Node) *Node {
	return classifierNet(ctx.In(ScopeClassifier), x)
}

// HeldOut is the held-out evaluator (never a training signal for any method): images
// [B,28,28,1] -> class logits [B,10] and penultimate features [B,128] for the Fréchet distance.
func HeldOut(ctx *context.Context, x *Node) (logits, features *Node) {
	return heldOutNet(ctx.In(ScopeHeldOut), x)
}

// DiscriminatorLogits is the realism critic: images [B,28,28,1] -> logit [B] that x is a real
// Fashion-MNIST image rather than a student sample.
func DiscriminatorLogits(ctx *context.Context, x *Node) *Node {
	return discriminatorNet(ctx.In(ScopeDiscriminator), x)
}

// weightsPath is a part's weights file under dir.
func weightsPath(dir, part string) string { return filepath.Join(dir, WeightsFile(part)) }

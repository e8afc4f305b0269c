package fashion

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/progress"
)

// TrainConfig are the hyper-parameters of one part's training run.
type TrainConfig struct {
	Steps int
	Batch int
	LR    float64
	Seed  int64
	// EMA, when > 0, is the decay of the exponential moving average of the weights that is
	// shipped instead of the last step's weights (0: the last step's).
	EMA float64
}

// DefaultConfigs are the training configurations of the parts; for the versioned parts
// (autoencoder, teacher, student) they are v2's, and v1Configs holds v1's (see ConfigFor).
var DefaultConfigs = map[string]TrainConfig{
	"classifier":    {Steps: 2500, Batch: 64, LR: 2e-3, Seed: 101},
	"heldout":       {Steps: 2500, Batch: 64, LR: 2e-3, Seed: 202},
	"autoencoder":   {Steps: 800, Batch: 32, LR: 2e-3, Seed: 313},
	"teacher":       {Steps: 3000, Batch: 256, LR: 1e-3, Seed: 414, EMA: 0.999},
	"student":       {Steps: 2000, Batch: 256, LR: 3e-4, Seed: 515, EMA: 0.999},
	"discriminator": {Steps: 400, Batch: 64, LR: 1e-3, Seed: 606},
}

// v1Configs are the configurations of the ArchV1 parts (the shipped default).
var v1Configs = map[string]TrainConfig{
	"autoencoder": {Steps: 700, Batch: 32, LR: 2e-3, Seed: 303},
	"teacher":     {Steps: 2000, Batch: 256, LR: 1e-3, Seed: 404},
	"student":     {Steps: 1000, Batch: 256, LR: 3e-4, Seed: 505},
}

// Distillation and evaluation settings.
const (
	DistillPairs        = 16384 // (eps, teacher endpoint) pairs the student regresses on
	DistillTeacherSteps = 16    // Euler steps of the teacher when making the pairs
	// DistillGuidance is the v2 teacher's guidance scale for the pairs (v1's: distillGuidanceV1).
	// Slightly under 1 (the plain conditional teacher) so that the student's held-out alignment
	// stays at most 0.85 and leaves room for a reward to improve it: the v2 teacher (16 Euler
	// steps, 1000 samples) reads FD 9.2 / alignment 0.849 at w = 1, 9.8 / 0.830 at w = 0.95,
	// 10.6 / 0.812 at w = 0.9 and 16.5 / 0.973 at w = 2.
	DistillGuidance = 0.95
	// distillGuidanceV1 is the v1 teacher's: 1, where it reached 78% held-out alignment against
	// 92% at w = 2 for the same FD.
	distillGuidanceV1 = 1.0
	EvalSamples       = 1000  // generated images per model for alignment and FD (100 per class)
	EvalSeed          = 20250 // noise seed of the evaluation samples
	labelDropout      = 0.1   // probability of training the teacher on the null class
	aeLatentNoise     = 0.05  // std of the noise added to raw latents while training the autoencoder
	aeLatentPenalty   = 1e-3  // weight of mean(z^2) in the autoencoder loss
	// aePerceptual is the weight of the perceptual loss (reward-classifier features) in the v2
	// autoencoder's loss.
	aePerceptual = 0.25
	// studentAdversarial is the weight of the non-saturating GAN loss (a latent critic) in the v2
	// student's loss, next to the regression on the teacher's pairs.
	studentAdversarial = 0.02
	// criticLatents is the number of training-image latents the student's critic sees as real.
	criticLatents = 5000
)

// ConfigFor is the default configuration of a part at an architecture version.
func ConfigFor(part, arch string) TrainConfig {
	if c, ok := v1Configs[part]; ok && arch == ArchV1 {
		return c
	}
	return DefaultConfigs[part]
}

// TrainOptions say where a training run reads and writes.
type TrainOptions struct {
	Out      string        // weights folder: earlier parts are read from it, the result written to it
	State    string        // folder for resumable training state; default: the user cache folder
	DataDir  string        // Fashion-MNIST folder; default fashionmnist.DefaultDir
	Config   *TrainConfig  // nil: DefaultConfigs[part]
	Pairs    int           // student only: distillation pairs (0: DistillPairs)
	Samples  int           // generated images per evaluation (0: EvalSamples)
	Arch     string        // architecture version of autoencoder, teacher, student ("": CurrentArch)
	Command  string        // the command line recorded in the figures
	Progress progress.Func // may be nil
	Log      io.Writer     // summary lines; may be nil
}

// DefaultStateDir is where resumable training state goes unless TrainOptions.State is set.
func DefaultStateDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "hypernoise", "zoo-train")
	}
	return filepath.Join(os.TempDir(), "hypernoise-zoo-train")
}

// Train trains one part (one of Parts), evaluates it, writes its weights and updates figures.json
// in o.Out. An interrupted run resumes from its last checkpoint in o.State.
func Train(backend backends.Backend, part string, o TrainOptions) (fig *PartFigures, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("training %s: %v", part, r)
		}
	}()
	cfg, ok := DefaultConfigs[part]
	if !ok {
		return nil, fmt.Errorf("unknown part %q; parts: %v", part, Parts)
	}
	if o.Arch == "" {
		o.Arch = CurrentArch
	}
	cfg = ConfigFor(part, o.Arch)
	if o.Config != nil {
		cfg = *o.Config
	}
	if cfg.Steps < 1 || cfg.Batch < 1 || cfg.LR <= 0 {
		return nil, fmt.Errorf("bad training config %+v", cfg)
	}
	if o.State == "" {
		o.State = DefaultStateDir()
	}
	if err := os.MkdirAll(o.State, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	ctx := context.New()
	seedContext(ctx, cfg.Seed)
	meta := map[string]string{"part": part}
	if versioned[part] {
		if err := SetArch(ctx, part, o.Arch); err != nil {
			return nil, err
		}
		meta["arch"] = o.Arch
	}
	t := &trainer{backend: backend, cfg: cfg, o: o, part: part, ctx: ctx,
		statePath: filepath.Join(o.State, part+".state.safetensors")}
	var metrics map[string]float64
	switch part {
	case "classifier", "heldout":
		metrics, err = t.classifier()
	case "autoencoder":
		metrics, err = t.autoencoder()
	case "teacher":
		metrics, err = t.teacher()
	case "student":
		metrics, err = t.student()
	case "discriminator":
		metrics, err = t.discriminator()
	}
	if err != nil {
		return nil, err
	}
	scope := "/" + partScope[part]
	path := weightsPath(o.Out, part)
	if err := ckpt.Save(ctx, scope, path, meta); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	fig = &PartFigures{Params: countParams(ctx, scope), Bytes: st.Size(), Command: o.Command,
		Steps: cfg.Steps, Batch: cfg.Batch, Seed: cfg.Seed, WallSeconds: math.Round(time.Since(start).Seconds()),
		Metrics: metrics, Notes: t.notes}
	figs := Figures{}
	fpath := filepath.Join(o.Out, FiguresFile)
	if _, err := os.Stat(fpath); err == nil {
		if err := ckpt.ReadJSON(fpath, &figs); err != nil {
			return nil, err
		}
	}
	figs[part] = fig
	if err := ckpt.WriteJSON(fpath, figs); err != nil {
		return nil, err
	}
	// The part is done: drop its resumable state and its caches (they depend on the upstream weights).
	if cached, err := filepath.Glob(filepath.Join(o.State, part+".*")); err == nil {
		for _, f := range cached {
			_ = os.Remove(f)
		}
	}
	return fig, nil
}

func countParams(ctx *context.Context, scope string) int {
	n := 0
	for v := range ctx.IterVariables() {
		if inScope(v.Scope(), scope) {
			n += v.Shape().Size()
		}
	}
	return n
}

func inScope(s, scope string) bool {
	return s == scope || len(s) > len(scope) && s[:len(scope)] == scope && s[len(scope)] == '/'
}

type trainer struct {
	backend   backends.Backend
	cfg       TrainConfig
	o         TrainOptions
	part      string
	ctx       *context.Context
	statePath string
	notes     map[string]string
}

func (t *trainer) evalSamples() int {
	if t.o.Samples > 0 {
		return t.o.Samples
	}
	return EvalSamples
}

func (t *trainer) logf(format string, args ...any) {
	if t.o.Log != nil {
		fmt.Fprintf(t.o.Log, format+"\n", args...)
	}
}

func (t *trainer) loop() *loop {
	return &loop{name: t.part, scopes: []string{partScope[t.part]}, steps: t.cfg.Steps, lr: t.cfg.LR,
		warmup: min(100, t.cfg.Steps/10+1), ema: t.cfg.EMA, emaScopes: []string{partScope[t.part]}, statePath: t.statePath, every: 100, progress: t.o.Progress, log: t.logf}
}

// rng is the host random stream of a training step (a pure function of the seed and the step).
func (t *trainer) rng(step int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(t.cfg.Seed), uint64(step)))
}

func (t *trainer) load(split fashionmnist.Split) (*fashionmnist.Set, error) {
	return fashionmnist.Load(t.o.DataDir, split)
}

// loadSplits loads the training and the test split.
func (t *trainer) loadSplits() (train, test *fashionmnist.Set, err error) {
	if train, err = t.load(fashionmnist.Train); err != nil {
		return nil, nil, err
	}
	if test, err = t.load(fashionmnist.Test); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// imageBatch draws b random images (with replacement) and their labels.
func imageBatch(set *fashionmnist.Set, r *rand.Rand, b int) (*tensors.Tensor, *tensors.Tensor) {
	idx := make([]int, b)
	for i := range idx {
		idx[i] = r.IntN(set.N)
	}
	return imagesTensor(set, idx), tensors.FromFlatDataAndDimensions(gatherRows(set.Labels, 1, idx), b)
}

// augmentedBatch is imageBatch with each image mirrored left-right with probability 1/2 (and
// shifted by up to maxShift pixels in each direction, zero fill): the reward classifier's augmentation.
func augmentedBatch(set *fashionmnist.Set, r *rand.Rand, b int) (*tensors.Tensor, *tensors.Tensor) {
	const maxShift = 0
	out := make([]float32, b*Side*Side)
	labels := make([]int32, b)
	for i := range b {
		k := r.IntN(set.N)
		labels[i] = set.Labels[k]
		src := set.Image(k)
		flip := r.IntN(2) == 1
		dx, dy := 0, 0
		if maxShift > 0 {
			dx, dy = r.IntN(2*maxShift+1)-maxShift, r.IntN(2*maxShift+1)-maxShift
		}
		dst := out[i*Side*Side : (i+1)*Side*Side]
		for y := range Side {
			sy := y - dy
			if sy < 0 || sy >= Side {
				continue
			}
			for x := range Side {
				sx := x - dx
				if sx < 0 || sx >= Side {
					continue
				}
				if flip {
					sx = Side - 1 - sx
				}
				dst[y*Side+x] = src[sy*Side+sx]
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(out, b, Side, Side, 1), tensors.FromFlatDataAndDimensions(labels, b)
}

func imagesTensor(set *fashionmnist.Set, idx []int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(gatherRows(set.Images, Side*Side, idx), len(idx), Side, Side, 1)
}

func normals(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// classifier trains the reward classifier or the held-out classifier with cross-entropy.
func (t *trainer) classifier() (map[string]float64, error) {
	train, test, err := t.loadSplits()
	if err != nil {
		return nil, err
	}
	logitsFn := func(ctx *context.Context, x *Node) *Node {
		if t.part == "heldout" {
			l, _ := HeldOut(ctx, x)
			return l
		}
		return ClassifierLogits(ctx, x)
	}
	loss, wall, err := t.loop().run(t.backend, t.ctx, func(ctx *context.Context, in []*Node) *Node {
		return crossEntropy(logitsFn(ctx, in[0]), in[1])
	}, func(step int) []any {
		r := t.rng(step)
		if t.part == "classifier" {
			x, y := augmentedBatch(train, r, t.cfg.Batch)
			return []any{x, y}
		}
		x, y := imageBatch(train, r, t.cfg.Batch)
		return []any{x, y}
	})
	if err != nil {
		return nil, err
	}
	exec, err := context.NewExec(t.backend, t.ctx, logitsFn)
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	acc, err := accuracy(exec, test)
	if err != nil {
		return nil, err
	}
	t.logf("%s: final loss %.4f, test accuracy %.2f%% (%d test images), training %.0fs", t.part, loss, 100*acc, test.N, wall.Seconds())
	return map[string]float64{"train_loss": loss, "test_accuracy": acc, "test_images": float64(test.N)}, nil
}

// accuracy is the fraction of set's images whose argmax logit (from exec) is the label.
func accuracy(exec *context.Exec, set *fashionmnist.Set) (float64, error) {
	outs, err := forward(exec, set.N, 500, func(idx []int) []any { return []any{imagesTensor(set, idx)} })
	if err != nil {
		return 0, err
	}
	return argmaxAccuracy(outs[0], set.Labels), nil
}

func argmaxAccuracy(logits []float32, labels []int32) float64 {
	correct := 0
	for i, y := range labels {
		row := logits[i*NumClasses : (i+1)*NumClasses]
		best := 0
		for k := range row {
			if row[k] > row[best] {
				best = k
			}
		}
		if best == int(y) {
			correct++
		}
	}
	return float64(correct) / float64(len(labels))
}

// autoencoder trains encoder and decoder with a pixel cross-entropy, noise on the latents and a
// small latent penalty (v2: plus a perceptual loss on the reward classifier's features), then records the latents' per-channel mean and standard deviation.
func (t *trainer) autoencoder() (map[string]float64, error) {
	train, test, err := t.loadSplits()
	if err != nil {
		return nil, err
	}
	v2 := t.o.Arch == ArchV2
	if v2 {
		// The perceptual loss reads the reward classifier's features.
		m, err := t.upstream("classifier")
		if err != nil {
			return nil, err
		}
		if err := copyScope(m.ctx, t.ctx, ScopeClassifier, ScopeClassifier); err != nil {
			return nil, err
		}
	}
	b := t.cfg.Batch
	loss, wall, err := t.loop().run(t.backend, t.ctx, func(ctx *context.Context, in []*Node) *Node {
		x, n := in[0], in[1]
		a := ctx.In(ScopeAutoencoder)
		z := encoder(a, x)
		logits := decoder(a, Add(z, MulScalar(n, aeLatentNoise)))
		bce := ReduceAllMean(Sub(Softplus(logits), Mul(x, logits)))
		loss := Add(bce, MulScalar(ReduceAllMean(Square(z)), aeLatentPenalty))
		if v2 {
			loss = Add(loss, MulScalar(perceptualLoss(ctx.InAbsPath(context.ScopeSeparator), Sigmoid(logits), x), aePerceptual))
		}
		return loss
	}, func(step int) []any {
		r := t.rng(step)
		x, _ := imageBatch(train, r, b)
		return []any{x, tensors.FromFlatDataAndDimensions(normals(r, b*LatentDim), b, LatentSide, LatentSide, LatentCh)}
	})
	if err != nil {
		return nil, err
	}
	// Latent statistics over the first 10000 training images.
	enc, err := context.NewExec(t.backend, t.ctx, func(ctx *context.Context, x *Node) *Node {
		return encoder(ctx.In(ScopeAutoencoder), x)
	})
	if err != nil {
		return nil, err
	}
	defer enc.Finalize()
	n := min(10000, train.N)
	outs, err := forward(enc, n, 500, func(idx []int) []any { return []any{imagesTensor(train, idx)} })
	if err != nil {
		return nil, err
	}
	mu, sd := channelStats(outs[0], LatentCh)
	a := t.ctx.InAbsPath("/" + ScopeAutoencoder).Checked(false)
	a.VariableWithValue("latent_mean", tensors.FromFlatDataAndDimensions(mu, LatentCh)).SetTrainable(false)
	a.VariableWithValue("latent_std", tensors.FromFlatDataAndDimensions(sd, LatentCh)).SetTrainable(false)
	// Test reconstruction error through the standardized round trip.
	rec, err := context.NewExec(t.backend, t.ctx, func(ctx *context.Context, x *Node) *Node {
		return ReduceMean(Square(Sub(Decode(ctx, Encode(ctx, x)), x)), 1, 2, 3)
	})
	if err != nil {
		return nil, err
	}
	defer rec.Finalize()
	outs, err = forward(rec, test.N, 500, func(idx []int) []any { return []any{imagesTensor(test, idx)} })
	if err != nil {
		return nil, err
	}
	mse := 0.0
	for _, v := range outs[0] {
		mse += float64(v)
	}
	mse /= float64(test.N)
	t.logf("autoencoder: final loss %.4f, test reconstruction MSE %.5f (pixels in [0,1], %d test images), latent std %v, training %.0fs",
		loss, mse, test.N, sd, wall.Seconds())
	metrics := map[string]float64{"train_loss": loss, "test_mse": mse, "test_images": float64(test.N)}
	if err := t.reconstructionFD(test, metrics); err != nil {
		return nil, err
	}
	return metrics, nil
}

// reconstructionFD adds to metrics the Fréchet distance, in the held-out feature space, between the
// reconstructions of the first n test images and the whole test set (n = the evaluation sample
// count): the floor that any generator decoding through this autoencoder starts from. It needs the
// held-out classifier in the output folder and does nothing without it.
func (t *trainer) reconstructionFD(test *fashionmnist.Set, metrics map[string]float64) error {
	m, err := Load(t.o.Out)
	if err != nil || !m.Has("heldout") {
		return nil
	}
	if err := copyScope(t.ctx, m.ctx, ScopeAutoencoder, ScopeAutoencoder); err != nil {
		return err
	}
	if err := SetArch(m.ctx, "autoencoder", t.o.Arch); err != nil {
		return err
	}
	m.parts["autoencoder"] = true
	ev, err := NewEvaluator(t.backend, m, t.o.DataDir)
	if err != nil {
		return err
	}
	n := min(t.evalSamples(), test.N)
	rec, err := context.NewExec(t.backend, m.ctx, func(ctx *context.Context, x *Node) *Node { return Decode(ctx, Encode(ctx, x)) })
	if err != nil {
		return err
	}
	defer rec.Finalize()
	outs, err := forward(rec, n, 500, func(idx []int) []any { return []any{imagesTensor(test, idx)} })
	if err != nil {
		return err
	}
	res, err := ev.Score(outs[0], test.Labels[:n])
	if err != nil {
		return err
	}
	metrics["fd_heldout_reconstruction"] = res.FD
	metrics["fd_real_reference"] = ev.RealFD
	metrics["eval_samples"] = float64(n)
	t.logf("autoencoder: reconstructions of %d test images: FD %.2f in the held-out feature space (real-vs-real %.2f)", n, res.FD, ev.RealFD)
	return nil
}

// channelStats returns the mean and standard deviation of each of c interleaved channels.
func channelStats(x []float32, c int) (mu, sd []float32) {
	s, s2 := make([]float64, c), make([]float64, c)
	n := len(x) / c
	for i, v := range x {
		s[i%c] += float64(v)
		s2[i%c] += float64(v) * float64(v)
	}
	mu, sd = make([]float32, c), make([]float32, c)
	for k := range c {
		m := s[k] / float64(n)
		mu[k] = float32(m)
		sd[k] = float32(math.Sqrt(math.Max(s2[k]/float64(n)-m*m, 1e-12)))
	}
	return mu, sd
}

// upstream loads the parts this part needs from the output folder.
func (t *trainer) upstream(parts ...string) (*Model, error) {
	m, err := Load(t.o.Out)
	if err != nil {
		return nil, err
	}
	if err := m.Need(parts...); err != nil {
		return nil, err
	}
	return m, nil
}

// evaluatorWith copies this run's weights of part (under scope) into the loaded model m, marks
// the part present with this run's architecture, and returns an Evaluator of m.
func (t *trainer) evaluatorWith(m *Model, part, scope string) (*Evaluator, error) {
	if err := copyScope(t.ctx, m.ctx, scope, scope); err != nil {
		return nil, err
	}
	if err := SetArch(m.ctx, part, t.o.Arch); err != nil {
		return nil, err
	}
	m.parts[part] = true
	return NewEvaluator(t.backend, m, t.o.DataDir)
}

// cachedFloats returns the float32 array cached in the state folder under name, or computes it
// with make and caches it (so a resumed run does not recompute it).
func (t *trainer) cachedFloats(name string, n int, make func() ([]float32, error)) ([]float32, error) {
	path := filepath.Join(t.o.State, t.part+"."+name+".f32")
	if data, err := os.ReadFile(path); err == nil && len(data) == 4*n {
		out := make32(n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		return out, nil
	}
	out, err := make()
	if err != nil {
		return nil, err
	}
	data := make8(4 * len(out))
	for i, v := range out {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return out, ckpt.WriteFileAtomic(path, data)
}

// cachedLatents returns the latents (LatentDim floats each) that m's encoder gives the first n
// images of set, cached in the state folder under "latents" like cachedFloats; logFormat (with
// one %d for n) is logged when they are computed.
func (t *trainer) cachedLatents(m *Model, set *fashionmnist.Set, n int, logFormat string) ([]float32, error) {
	return t.cachedFloats("latents", n*LatentDim, func() ([]float32, error) {
		enc, err := context.NewExec(t.backend, m.ctx, Encode)
		if err != nil {
			return nil, err
		}
		defer enc.Finalize()
		t.logf(logFormat, n)
		outs, err := forward(enc, n, 500, func(idx []int) []any { return []any{imagesTensor(set, idx)} })
		if err != nil {
			return nil, err
		}
		return outs[0], nil
	})
}

func make32(n int) []float32 { return make([]float32, n) }
func make8(n int) []byte     { return make([]byte, n) }

// teacher trains the class-conditional flow-matching teacher on standardized latents of the
// training images: x_t = (1-t) z + t eps, target velocity eps - z, t ~ U(0,1), labels replaced
// by the null class with probability labelDropout (for classifier-free guidance).
func (t *trainer) teacher() (map[string]float64, error) {
	m, err := t.upstream("autoencoder")
	if err != nil {
		return nil, err
	}
	train, err := t.load(fashionmnist.Train)
	if err != nil {
		return nil, err
	}
	nImg := train.N
	latents, err := t.cachedLatents(m, train, nImg, "teacher: encoding %d training images")
	if err != nil {
		return nil, err
	}
	b := t.cfg.Batch
	loss, wall, err := t.loop().run(t.backend, t.ctx, func(ctx *context.Context, in []*Node) *Node {
		z, eps, tt, c := in[0], in[1], in[2], in[3]
		t4 := Reshape(tt, b, 1, 1, 1)
		xt := Add(Mul(OneMinus(t4), z), Mul(t4, eps))
		v := TeacherVelocity(ctx, xt, tt, c)
		return ReduceAllMean(Square(Sub(v, Sub(eps, z))))
	}, func(step int) []any {
		r := t.rng(step)
		idx := make([]int, b)
		ts := make([]float32, b)
		cs := make([]int32, b)
		for i := range idx {
			idx[i] = r.IntN(nImg)
			ts[i] = r.Float32()
			cs[i] = train.Labels[idx[i]]
			if r.Float64() < labelDropout {
				cs[i] = NullClass
			}
		}
		dims := []int{b, LatentSide, LatentSide, LatentCh}
		return []any{tensors.FromFlatDataAndDimensions(gatherRows(latents, LatentDim, idx), dims...),
			tensors.FromFlatDataAndDimensions(normals(r, b*LatentDim), dims...),
			tensors.FromFlatDataAndDimensions(ts, b), tensors.FromFlatDataAndDimensions(cs, b)}
	})
	if err != nil {
		return nil, err
	}
	metrics := map[string]float64{"train_loss": loss}
	t.logf("teacher: final loss %.4f, training %.0fs", loss, wall.Seconds())
	if m.Has("heldout") {
		// Evaluate with this run's teacher weights alongside the loaded decoder and held-out net.
		ev, err := t.evaluatorWith(m, "teacher", ScopeTeacher)
		if err != nil {
			return nil, err
		}
		// The teacher the student learns from (the distillation guidance), and the guided one.
		res, err := ev.Teacher(t.evalSamples(), EvalSeed, DistillTeacherSteps, t.distillW())
		if err != nil {
			return nil, err
		}
		guided, err := ev.Teacher(t.evalSamples(), EvalSeed, DistillTeacherSteps, DefaultGuidance)
		if err != nil {
			return nil, err
		}
		metrics["teacher_steps"] = DistillTeacherSteps
		metrics["eval_samples"] = float64(t.evalSamples())
		metrics["guidance"] = t.distillW()
		metrics["heldout_alignment"] = res.Alignment
		metrics["fd_heldout"] = res.FD
		metrics["guided_guidance"] = DefaultGuidance
		metrics["guided_heldout_alignment"] = guided.Alignment
		metrics["guided_fd_heldout"] = guided.FD
		metrics["fd_real_reference"] = ev.RealFD
		t.logf("teacher (%d Euler steps): guidance %.2f: held-out alignment %.1f%%, FD %.2f; guidance %.1f: %.1f%%, FD %.2f (real-vs-real reference %.2f; %d samples)",
			DistillTeacherSteps, t.distillW(), 100*res.Alignment, res.FD, DefaultGuidance, 100*guided.Alignment, guided.FD, ev.RealFD, t.evalSamples())
	}
	return metrics, nil
}

// distillW is the teacher's guidance scale for the student's pairs at this run's architecture.
func (t *trainer) distillW() float64 {
	if t.o.Arch == ArchV1 {
		return distillGuidanceV1
	}
	return DistillGuidance
}

// copyScope copies the variables under /from in src to /to in dst (created or overwritten).
func copyScope(src, dst *context.Context, from, to string) error {
	prefix := "/" + from
	for v := range src.IterVariables() {
		if !inScope(v.Scope(), prefix) {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return err
		}
		cp, err := val.LocalClone()
		if err != nil {
			return err
		}
		scope := "/" + to + v.Scope()[len(prefix):]
		if old := dst.InspectVariable(scope, v.Name()); old != nil {
			if err := old.SetValue(cp); err != nil {
				return err
			}
			continue
		}
		dst.InAbsPath(scope).Checked(false).VariableWithValue(v.Name(), cp)
	}
	return nil
}

// student distils the guided teacher into one step: it regresses s(eps, c) on the endpoints of the
// teacher's ODE started at eps, starting from the teacher's weights (with t fixed to 1). The v2
// student adds an adversarial term: a latent critic, trained at the same time, tells the latents
// of real training images from the student's (see adversarialLoss).
func (t *trainer) student() (map[string]float64, error) {
	m, err := t.upstream("autoencoder", "teacher")
	if err != nil {
		return nil, err
	}
	if a := m.Arch("teacher"); a != t.o.Arch {
		return nil, fmt.Errorf("the teacher in %s has architecture %s but the student is %s: train the teacher first (hypernoise zoo train teacher)",
			t.o.Out, a, t.o.Arch)
	}
	n := DistillPairs
	if t.o.Pairs > 0 {
		n = t.o.Pairs
	}
	noiseRng := rand.New(rand.NewPCG(uint64(t.cfg.Seed), 1<<40))
	eps := normals(noiseRng, n*LatentDim)
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % NumClasses)
	}
	rows := func(x []float32, idx []int) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(gatherRows(x, LatentDim, idx), len(idx), LatentSide, LatentSide, LatentCh)
	}
	ends, err := t.teacherPairs(m, eps, labels)
	if err != nil {
		return nil, err
	}
	// Start from the teacher's weights (unless resuming, which loads the student's own state).
	if _, err := os.Stat(t.statePath); err != nil {
		if err := copyScope(m.ctx, t.ctx, ScopeTeacher, ScopeStudent); err != nil {
			return nil, err
		}
	}
	b := t.cfg.Batch
	adversarial := t.o.Arch == ArchV2
	var realLatents []float32
	nReal := 0
	if adversarial {
		train, err := t.load(fashionmnist.Train)
		if err != nil {
			return nil, err
		}
		nReal = min(criticLatents, train.N)
		realLatents, err = t.cachedLatents(m, train, nReal, "student: encoding %d training images for the critic")
		if err != nil {
			return nil, err
		}
	}
	lp := t.loop()
	if adversarial {
		lp.scopes = append(lp.scopes, scopeCritic)
	}
	loss, wall, err := lp.run(t.backend, t.ctx, func(ctx *context.Context, in []*Node) *Node {
		fake := Student(ctx, in[0], in[1])
		loss := ReduceAllMean(Square(Sub(fake, in[2])))
		if adversarial {
			loss = Add(loss, adversarialLoss(ctx, fake, in[3], studentAdversarial))
		}
		return loss
	}, func(step int) []any {
		r := t.rng(step)
		idx := make([]int, b)
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		in := []any{rows(eps, idx), tensors.FromFlatDataAndDimensions(gatherRows(labels, 1, idx), b), rows(ends, idx)}
		if adversarial {
			ridx := make([]int, b)
			for i := range ridx {
				ridx[i] = r.IntN(nReal)
			}
			in = append(in, rows(realLatents, ridx))
		}
		return in
	})
	if err != nil {
		return nil, err
	}
	metrics := map[string]float64{"train_loss": loss, "distill_pairs": float64(n),
		"teacher_steps": DistillTeacherSteps, "guidance": t.distillW()}
	t.logf("student: final regression loss %.4f, training %.0fs", loss, wall.Seconds())
	if m.Has("heldout") {
		if err := t.evalStudent(m, metrics); err != nil {
			return nil, err
		}
	}
	return metrics, nil
}

// teacherPairs are the end points of the guided teacher's ODE (DistillTeacherSteps Euler steps)
// started at each noise row of eps with its label, cached in the run folder.
func (t *trainer) teacherPairs(m *Model, eps []float32, labels []int32) ([]float32, error) {
	n := len(labels)
	rows := func(x []float32, idx []int) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(gatherRows(x, LatentDim, idx), len(idx), LatentSide, LatentSide, LatentCh)
	}
	return t.cachedFloats("pairs", n*LatentDim, func() ([]float32, error) {
		exec, err := context.NewExec(t.backend, m.ctx, func(ctx *context.Context, e, c *Node) *Node {
			return TeacherSample(ctx, e, c, DistillTeacherSteps, t.distillW())
		})
		if err != nil {
			return nil, err
		}
		defer exec.Finalize()
		t.logf("student: generating %d teacher pairs (%d Euler steps, guidance %.2f)", n, DistillTeacherSteps, t.distillW())
		done := 0
		outs, err := forward(exec, n, 256, func(idx []int) []any {
			done += len(idx)
			t.o.Progress.Report(done, n, "teacher pairs")
			return []any{rows(eps, idx), tensors.FromFlatDataAndDimensions(gatherRows(labels, 1, idx), len(idx))}
		})
		if err != nil {
			return nil, err
		}
		return outs[0], nil
	})
}

// evalStudent adds the held-out figures of the student (one step) and of the teacher it was
// distilled from to metrics.
func (t *trainer) evalStudent(m *Model, metrics map[string]float64) error {
	ev, err := t.evaluatorWith(m, "student", ScopeStudent)
	if err != nil {
		return err
	}
	st, err := ev.Student(t.evalSamples(), EvalSeed)
	if err != nil {
		return err
	}
	te, err := ev.Teacher(t.evalSamples(), EvalSeed, DistillTeacherSteps, t.distillW())
	if err != nil {
		return err
	}
	metrics["eval_samples"] = float64(t.evalSamples())
	metrics["heldout_alignment"] = st.Alignment
	metrics["fd_heldout"] = st.FD
	metrics["teacher_heldout_alignment"] = te.Alignment
	metrics["teacher_fd_heldout"] = te.FD
	metrics["fd_real_reference"] = ev.RealFD
	t.logf("student (1 step): held-out alignment %.1f%%, FD %.2f | teacher (%d steps, guidance %.2f): %.1f%%, FD %.2f | real-vs-real FD %.2f (%d samples each)",
		100*st.Alignment, st.FD, DistillTeacherSteps, t.distillW(), 100*te.Alignment, te.FD, ev.RealFD, t.evalSamples())
	return nil
}

// scopeCritic is the scope of the student's latent critic (trained with the student, not shipped).
const scopeCritic = "student_critic"

// adversarialLoss is the critic's and the generator's non-saturating GAN losses in one scalar, for
// one optimizer over both: with D the critic, fake the student's latents and sg the stop-gradient,
//
//	L = mean softplus(-D(real)) + mean softplus(D(sg fake))           (the critic's loss)
//	  + w [mean softplus(-D(fake)) - mean softplus(-D(sg fake))]       (the generator's)
//
// The bracket is zero in value; its gradient reaches the student through fake, and its gradients
// for the critic's weights cancel exactly (the two terms are the same function of them), so the
// critic only minimizes its own loss.
func adversarialLoss(ctx *context.Context, fake, real *Node, w float64) *Node {
	c := ctx.InAbsPath(context.ScopeSeparator + scopeCritic)
	dReal := criticNet(c, real)
	dFakeSG := criticNet(c, StopGradient(fake))
	dFake := criticNet(c, fake)
	critic := Add(ReduceAllMean(Softplus(Neg(dReal))), ReduceAllMean(Softplus(dFakeSG)))
	gen := Sub(ReduceAllMean(Softplus(Neg(dFake))), ReduceAllMean(Softplus(Neg(dFakeSG))))
	return Add(critic, MulScalar(gen, w))
}

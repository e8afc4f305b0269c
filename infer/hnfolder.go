package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hypernoise/hypernoise/family"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/safeio"
)

// Folder is an opened hypernetwork folder: hypernet.json read and validated once (Config), the
// weights read, checked against it and decoded once, on first use (Weights).
type Folder struct {
	Dir    string
	Config Config
	js     []byte // hypernet.json as read

	once sync.Once
	vars []*context.Variable
	err  error
}

// OpenFolder reads and validates the config of the hypernetwork folder dir (ranges, finite
// values, a well-formed weights hash; see Config.Validate); the weights are read by Weights.
func OpenFolder(dir string) (*Folder, error) {
	path := filepath.Join(dir, ConfigFile)
	js, err := safeio.ReadFile(path, safeio.JSON)
	if err != nil {
		return nil, fmt.Errorf("hypernetwork folder %s: %w", dir, err)
	}
	cfg, _, err := ParseConfig(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Folder{Dir: dir, Config: cfg, js: js}, nil
}

// OpenFolders opens each folder (OpenFolder).
func OpenFolders(dirs ...string) ([]*Folder, error) {
	var out []*Folder
	for _, d := range dirs {
		f, err := OpenFolder(d)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Name is the folder's base name, the hypernetwork's name in a pipeline.
func (f *Folder) Name() string { return filepath.Base(filepath.Clean(f.Dir)) }

// CheckModel returns an error unless the folder was trained for m's generator: the same generator
// name and the same weights (family.Model.Hash).
func (f *Folder) CheckModel(m *family.Model) error {
	gen := m.Generator
	if f.Config.Generator != gen.Name() {
		return fmt.Errorf("hypernetwork %s was trained for generator %q, not %q", f.Dir, f.Config.Generator, gen.Name())
	}
	if f.Config.BaseHash != m.Hash {
		return fmt.Errorf("hypernetwork %s was trained for other %s weights (sha256 %.12s, these are %.12s)", f.Dir, gen.Name(), f.Config.BaseHash, m.Hash)
	}
	return nil
}

// Weights returns the hypernetwork's tensors (under /SavedScope), read and decoded on the first
// call after the integrity checks (the SHA-256 that hypernet.json records, the file's content
// digest, the config stored in the weights equal to hypernet.json, finite values): a tensor
// outside the saved scope, or none at all, is refused.
func (f *Folder) Weights() ([]*context.Variable, error) {
	f.once.Do(func() { f.vars, f.err = f.decode() })
	return f.vars, f.err
}

func (f *Folder) decode() ([]*context.Variable, error) {
	wpath := filepath.Join(f.Dir, WeightsFile)
	data, err := ckpt.ReadSafetensors(wpath)
	if err != nil {
		return nil, err
	}
	saved := context.ScopeSeparator + SavedScope
	tmp, _, err := ckpt.DecodeVerified(data, f.js, wpath, filepath.Join(f.Dir, ConfigFile), ckpt.LoadOptions{Scopes: []string{saved}})
	if err != nil {
		return nil, err
	}
	var vars []*context.Variable
	for v := range tmp.IterVariables() {
		if !inScope(v.Scope(), saved) {
			return nil, fmt.Errorf("%s: tensor %s is outside the hypernetwork's scope %s", wpath, v.ScopeAndName(), saved)
		}
		vars = append(vars, v)
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("%s holds no weights", wpath)
	}
	return vars, nil
}

// LoadInto copies the hypernetwork's weights into ctx, under scope (an absolute scope) instead of
// /SavedScope, frozen (each a copy of its own, so one opened folder loads into any number of
// contexts and backends), and returns the absolute names of the variables it set.
func (f *Folder) LoadInto(ctx *context.Context, scope string) (map[string]bool, error) {
	vars, err := f.Weights()
	if err != nil {
		return nil, err
	}
	saved := context.ScopeSeparator + SavedScope
	set := map[string]bool{}
	for _, v := range vars {
		sc := scope + strings.TrimPrefix(v.Scope(), saved)
		val, err := v.Value()
		if err != nil {
			return nil, err
		}
		if val, err = val.LocalClone(); err != nil {
			return nil, err
		}
		ctx.InAbsPath(sc).Checked(false).VariableWithValue(v.Name(), val).SetTrainable(false)
		set[sc+context.ScopeSeparator+v.Name()] = true
	}
	return set, nil
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// SaveFolder writes a trained hypernetwork into dir: the variables under scope (saved as
// /SavedScope) with cfg to hypernet.safetensors and hypernet.json (with the weights' SHA-256),
// and, when curve is not nil, the training curve (PNG) to curve.png.
func SaveFolder(ctx *context.Context, scope, dir string, cfg Config, curve []byte) error {
	if err := hypernet.SaveWeights(ctx, scope, filepath.Join(dir, WeightsFile), cfg); err != nil {
		return err
	}
	if curve == nil {
		return nil
	}
	return ckpt.WriteFileAtomic(filepath.Join(dir, CurveFile), curve)
}

// ErrRunFolder marks a refusal of CheckRunFolder: the folder's state does not allow what was
// asked (a usage mistake: the caller must pass resume or force, or pick another folder).
var ErrRunFolder = errors.New("run folder")

// RunFolderError is a refusal of the training folder's rules; it matches ErrRunFolder.
type RunFolderError struct{ Msg string }

func (e *RunFolderError) Error() string        { return e.Msg }
func (e *RunFolderError) Is(target error) bool { return target == ErrRunFolder }

// CheckRunFolder applies the training folder rules before anything runs: resume needs a
// checkpoint in dir; a fresh run into a folder that holds a checkpoint or a trained hypernetwork
// needs force (a run is never silently discarded); resume and force exclude each other. Its
// errors match ErrRunFolder.
func CheckRunFolder(dir string, resume, force bool) error {
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch {
	case resume && force:
		return &RunFolderError{"--resume and --force exclude each other"}
	case resume && !has(hypernet.CheckpointWeights):
		return &RunFolderError{fmt.Sprintf("cannot resume: %s holds no checkpoint (%s)", dir, hypernet.CheckpointWeights)}
	case !resume && !force && (has(hypernet.CheckpointWeights) || has(ConfigFile) || has(WeightsFile)):
		return &RunFolderError{fmt.Sprintf("%s already holds a training run; pass --resume to continue it or --force to discard it and start over", dir)}
	}
	return nil
}

// ClearRunFolder deletes the files of a previous run in dir (for a forced fresh start).
func ClearRunFolder(dir string) error {
	for _, f := range []string{hypernet.CheckpointWeights, hypernet.CheckpointJSON, WeightsFile, ConfigFile, CurveFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// FinishedRun returns dir opened when it holds the finished run that want describes (its
// hypernetwork passes every integrity check, was trained for all of want's steps, with the same
// definition and settings), else nil: resuming a finished run then changes nothing on disk.
func FinishedRun(dir string, want Config) *Folder {
	f, err := OpenFolder(dir)
	if err != nil || f.Config.Result == nil || f.Config.Result.Steps != want.Train.Steps {
		return nil
	}
	a, b := f.Config, want
	a.Result, b.Result = nil, nil
	a.TiltMatchSkipped, b.TiltMatchSkipped = "", "" // decided during the run
	if !sameJSON(a, b) {
		return nil
	}
	if _, err := f.Weights(); err != nil {
		return nil
	}
	return f
}

// Files of the fine-tune baseline cached in a hypernetwork folder (by `hypernoise eval`).
const (
	FinetuneFile       = "finetune.safetensors"
	FinetuneConfigFile = "finetune.json"
)

// FinetuneConfig records how the cached fine-tune baseline was trained.
type FinetuneConfig struct {
	RewardSpec string               `json:"reward_spec"`
	Rank       int                  `json:"rank"`
	BaseHash   string               `json:"base_model_sha256"`
	Train      hypernet.TrainConfig `json:"train"`
	Result     *TrainSummary        `json:"result,omitempty"`
}

// ReadFinetune reads the fine-tune cache's config in dir (the weights are loaded with
// LoadFinetuneWeights).
func ReadFinetune(dir string) (FinetuneConfig, error) {
	var cfg FinetuneConfig
	err := ckpt.ReadJSON(filepath.Join(dir, FinetuneConfigFile), &cfg)
	return cfg, err
}

// LoadFinetuneWeights loads the cached fine-tune adapters in dir (those under scope) into ctx,
// after the integrity checks of hypernet.LoadWeightsWith.
func LoadFinetuneWeights(ctx *context.Context, dir, scope string) error {
	return hypernet.LoadWeightsWith(ctx, filepath.Join(dir, FinetuneFile), nil, ckpt.LoadOptions{Scopes: []string{scope}})
}

// SaveFinetune writes the fine-tune adapters under scope and their config into dir.
func SaveFinetune(ctx *context.Context, scope, dir string, cfg FinetuneConfig) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return hypernet.SaveWeights(ctx, scope, filepath.Join(dir, FinetuneFile), cfg)
}

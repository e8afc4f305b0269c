package hypernet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
)

// Names of files in a checkpoint directory.
const (
	CheckpointWeights = "train.safetensors"
	CheckpointJSON    = "train.json"
)

// checkpointState is the training state stored in the checkpoint weights' metadata (written in the
// same atomic write as the tensors) and, for people, in train.json beside it.
type checkpointState struct {
	Problem    string            `json:"problem"`
	Scope      string            `json:"scope"`
	NoiseShape []int             `json:"noise_shape"`
	Step       int               `json:"step"`
	Skipped    int               `json:"skipped"`
	Seconds    float64           `json:"seconds"` // wall time of the run so far, across resumes
	Config     TrainConfig       `json:"config"`
	Defines    map[string]string `json:"defines,omitempty"`
	History    *History          `json:"history,omitempty"`
}

// History is the per-step record of a run from step 0: batch loss, gradient norm and metrics. Its
// JSON form writes non-finite values as null (read back as NaN).
type History struct {
	Loss     []float64            `json:"loss"`
	GradNorm []float64            `json:"grad_norm"`
	Metrics  map[string][]float64 `json:"metrics"`
}

func newHistory() *History { return &History{Metrics: map[string][]float64{}} }

// historyJSON is History with NaN-safe series.
type historyJSON struct {
	Loss     []*float64            `json:"loss"`
	GradNorm []*float64            `json:"grad_norm"`
	Metrics  map[string][]*float64 `json:"metrics"`
}

func toNullable(xs []float64) []*float64 {
	out := make([]*float64, len(xs))
	for i, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v := x
			out[i] = &v
		}
	}
	return out
}

func fromNullable(xs []*float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.NaN()
		if x != nil {
			out[i] = *x
		}
	}
	return out
}

// MarshalJSON writes non-finite values as null.
func (h *History) MarshalJSON() ([]byte, error) {
	j := historyJSON{Loss: toNullable(h.Loss), GradNorm: toNullable(h.GradNorm), Metrics: map[string][]*float64{}}
	for k, v := range h.Metrics {
		j.Metrics[k] = toNullable(v)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null as NaN.
func (h *History) UnmarshalJSON(data []byte) error {
	var j historyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	h.Loss, h.GradNorm, h.Metrics = fromNullable(j.Loss), fromNullable(j.GradNorm), map[string][]float64{}
	for k, v := range j.Metrics {
		h.Metrics[k] = fromNullable(v)
	}
	return nil
}

// CheckpointExists reports whether dir holds a training checkpoint (train.safetensors).
func CheckpointExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, CheckpointWeights))
	return err == nil
}

// prepareCheckpointDir applies the folder rules before training starts: resuming needs a
// checkpoint; a fresh start in a folder holding one needs Force (and then deletes it).
func prepareCheckpointDir(cfg TrainConfig) error {
	dir := cfg.CheckpointDir
	exists := CheckpointExists(dir)
	switch {
	case cfg.Resume && !exists:
		return fmt.Errorf("cannot resume: %s holds no checkpoint (%s)", dir, CheckpointWeights)
	case !cfg.Resume && exists && !cfg.Force:
		return fmt.Errorf("%s already holds a training checkpoint (%s); resume it, or force a fresh start that discards it",
			dir, CheckpointWeights)
	case cfg.Force && exists:
		for _, f := range []string{CheckpointWeights, CheckpointJSON} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// saveCheckpoint writes the trainable variables and optimizer state (one safetensors file, with
// the whole training state, history included, in its metadata), then train.json; both
// atomically. ckpt refuses non-finite values, so no non-finite weights are ever written.
func saveCheckpoint(ctx *context.Context, p *Problem, cfg TrainConfig, step, skipped int, hist *History, seconds float64) error {
	state := checkpointState{Problem: p.Name, Scope: p.Scope, NoiseShape: p.NoiseShape, Step: step, Skipped: skipped,
		Seconds: seconds, Config: cfg, Defines: cfg.Defines, History: hist}
	js, err := json.Marshal(state)
	if err != nil {
		return err
	}
	meta := map[string]string{"step": strconv.Itoa(step), "skipped": strconv.Itoa(skipped), "state": string(js)}
	if err := ckpt.SaveScopes(ctx, []string{p.Scope, optimRoot + p.Scope}, filepath.Join(cfg.CheckpointDir, CheckpointWeights), meta); err != nil {
		return fmt.Errorf("saving checkpoint at step %d: %w", step, err)
	}
	state.History = nil // the weights file holds it; train.json is a summary
	return ckpt.WriteJSON(filepath.Join(cfg.CheckpointDir, CheckpointJSON), state)
}

// loadCheckpoint loads the checkpoint in cfg.CheckpointDir into ctx. The state is taken from the
// weights file's own metadata (written in the same atomic write as the tensors, covered by its
// digest). Only tensors of the problem's scope and its optimizer state are accepted, and a
// checkpoint of another problem, configuration or model definition is refused, naming the
// difference; ctx is unchanged on any refusal.
func loadCheckpoint(ctx *context.Context, p *Problem, cfg TrainConfig) (*checkpointState, error) {
	path := filepath.Join(cfg.CheckpointDir, CheckpointWeights)
	data, err := ckpt.ReadSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("cannot resume: %w", err)
	}
	state, err := checkpointStateOf(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := state.compatible(path, p, cfg); err != nil {
		return nil, err
	}
	if _, err := ckpt.DecodeWith(ctx, data, ckpt.LoadOptions{Scopes: []string{p.Scope, optimRoot + p.Scope}, RequireDigest: true}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return state, nil
}

// CheckResume reports whether the checkpoint in cfg.CheckpointDir can be resumed by problem p
// with cfg (same scope, noise shape, configuration and Defines, at most cfg.Steps done), without
// loading anything; the error names each difference.
func CheckResume(p *Problem, cfg TrainConfig) error {
	path := filepath.Join(cfg.CheckpointDir, CheckpointWeights)
	data, err := ckpt.ReadSafetensors(path)
	if err != nil {
		return fmt.Errorf("cannot resume: %w", err)
	}
	state, err := checkpointStateOf(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return state.compatible(path, p, cfg)
}

// compatible is the resume check of loadCheckpoint and CheckResume.
func (state *checkpointState) compatible(path string, p *Problem, cfg TrainConfig) error {
	if state.Scope != p.Scope || fmt.Sprint(state.NoiseShape) != fmt.Sprint(p.NoiseShape) {
		return fmt.Errorf("%s: checkpoint is for %s (scope %s, noise %v), not %s (scope %s, noise %v)",
			path, state.Problem, state.Scope, state.NoiseShape, p.Name, p.Scope, p.NoiseShape)
	}
	if diff := configDiff(state.Config, cfg, state.Defines, cfg.Defines); diff != "" {
		return fmt.Errorf("%s: cannot resume with a different configuration (%s); start a new run in another folder, or force a fresh start here", path, diff)
	}
	if state.Step > cfg.Steps {
		return fmt.Errorf("%s: checkpoint is at step %d, beyond the %d steps asked for", path, state.Step, cfg.Steps)
	}
	return nil
}

// checkpointStateOf reads and validates the training state in a checkpoint file's metadata
// without loading its tensors.
func checkpointStateOf(data []byte) (*checkpointState, error) {
	meta, err := ckpt.DecodeWith(context.New(), data, ckpt.LoadOptions{RequireDigest: true})
	if err != nil {
		return nil, err
	}
	var state checkpointState
	if err := json.Unmarshal([]byte(meta["state"]), &state); err != nil {
		return nil, fmt.Errorf("no valid training state in the checkpoint's metadata: %w", err)
	}
	h := state.History
	switch {
	case state.Step < 0 || state.Skipped < 0 || state.Skipped > state.Step:
		return nil, fmt.Errorf("checkpoint state has step %d and %d skipped steps", state.Step, state.Skipped)
	case h != nil && (len(h.Loss) != state.Step || len(h.GradNorm) != state.Step):
		return nil, fmt.Errorf("checkpoint history has %d steps, the checkpoint %d", len(h.Loss), state.Step)
	case math.IsNaN(state.Seconds) || state.Seconds < 0:
		return nil, fmt.Errorf("checkpoint state has %g seconds", state.Seconds)
	}
	if err := state.Config.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint configuration: %w", err)
	}
	return &state, nil
}

// configDiff lists the fields (other than Steps) that differ between a checkpoint's config and
// the resumed run's, and the model-defining entries (Defines) that differ.
func configDiff(a, b TrainConfig, da, db map[string]string) string {
	a.Steps, b.Steps = 0, 0
	if a.NoiseSetSize == 0 {
		a.NoiseSetSize = a.BatchSize
	}
	if b.NoiseSetSize == 0 {
		b.NoiseSetSize = b.BatchSize
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]any
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	var diffs []string
	for k, va := range ma {
		if fmt.Sprint(va) != fmt.Sprint(mb[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: %v -> %v", k, va, mb[k]))
		}
	}
	keys := map[string]bool{}
	for k := range da {
		keys[k] = true
	}
	for k := range db {
		keys[k] = true
	}
	for k := range keys {
		va, oka := da[k]
		vb, okb := db[k]
		if !oka {
			va = "(unset)"
		}
		if !okb {
			vb = "(unset)"
		}
		if va != vb {
			diffs = append(diffs, fmt.Sprintf("%s: %s -> %s", k, va, vb))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

// ReadHistory reads the per-step history (batch loss, gradient norm, metrics such as "reward")
// and the wall seconds of the training run checkpointed in dir, without loading its tensors.
func ReadHistory(dir string) (*History, float64, error) {
	path := filepath.Join(dir, CheckpointWeights)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	state, err := checkpointStateOf(data)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if state.History == nil {
		return nil, 0, fmt.Errorf("%s: the checkpoint holds no history", path)
	}
	return state.History, state.Seconds, nil
}

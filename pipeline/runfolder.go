package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// ErrRunFolder marks a refusal of CheckRunFolder: the folder's state does not allow what was
// asked (a usage mistake: the caller must pass resume or force, or pick another folder).
var ErrRunFolder = errors.New("run folder")

type runFolderError struct{ msg string }

func (e *runFolderError) Error() string        { return e.msg }
func (e *runFolderError) Is(target error) bool { return target == ErrRunFolder }

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
		return &runFolderError{"--resume and --force exclude each other"}
	case resume && !has(hypernet.CheckpointWeights):
		return &runFolderError{fmt.Sprintf("cannot resume: %s holds no checkpoint (%s)", dir, hypernet.CheckpointWeights)}
	case !resume && !force && (has(hypernet.CheckpointWeights) || has(ConfigFile) || has(WeightsFile)):
		return &runFolderError{fmt.Sprintf("%s already holds a training run; pass --resume to continue it or --force to discard it and start over", dir)}
	}
	return nil
}

// clearRunFolder deletes the files of a previous run in dir (for a forced fresh start).
func clearRunFolder(dir string) error {
	for _, f := range []string{hypernet.CheckpointWeights, hypernet.CheckpointJSON, WeightsFile, ConfigFile, CurveFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Defines lists what defines the model and its objective (beside the training configuration,
// compared separately): a resume with any other value is refused, naming the entry.
func (c Config) Defines() map[string]string {
	mod, _ := json.Marshal(c.Modulator)
	logdet, _ := json.Marshal(c.LogDet)
	return map[string]string{
		"logdet":      string(logdet),
		"generator":   c.Generator,
		"base_model":  c.BaseHash,
		"reward_spec": c.RewardSpec,
		"modulator":   string(mod),
		"regularizer": string(c.Reg),
		"reg_weight":  fmt.Sprint(c.RegWeight),
		"beta":        fmt.Sprint(c.Beta),
	}
}

// finishedRun reports whether dir holds the finished run that want describes (its hypernetwork
// loads, was trained for all of want's steps, with the same definition and settings): resuming it
// then changes nothing.
func finishedRun(backend backends.Backend, dir string, m *fashion.Model, want Config) (*Hypernet, int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, 0, false
	}
	have, _, err := ParseConfig(data)
	if err != nil || have.Result == nil || have.Result.Steps != want.Train.Steps {
		return nil, 0, false
	}
	a, b := have, want
	a.Result, b.Result = nil, nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return nil, 0, false
	}
	hn, err := LoadHypernet(backend, dir, m)
	if err != nil {
		return nil, 0, false
	}
	return hn, have.Result.Steps, true
}

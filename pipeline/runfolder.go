package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
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
	case !resume && !force && (has(hypernet.CheckpointWeights) || has(infer.ConfigFile) || has(infer.WeightsFile)):
		return &runFolderError{fmt.Sprintf("%s already holds a training run; pass --resume to continue it or --force to discard it and start over", dir)}
	}
	return nil
}

// clearRunFolder deletes the files of a previous run in dir (for a forced fresh start).
func clearRunFolder(dir string) error {
	for _, f := range []string{hypernet.CheckpointWeights, hypernet.CheckpointJSON, infer.WeightsFile, infer.ConfigFile, infer.CurveFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// finishedRun reports whether dir holds the finished run that want describes (its hypernetwork
// passes every integrity check, was trained for all of want's steps, with the same definition and
// settings); it then loads its weights into ctx under mod's scope. Resuming a finished
// run thus changes nothing on disk.
func finishedRun(dir string, ctx *context.Context, mod hypernoise.Modulator, reward hypernoise.Reward, want infer.Config) (*infer.Hypernet, bool) {
	data, err := os.ReadFile(filepath.Join(dir, infer.ConfigFile))
	if err != nil {
		return nil, false
	}
	have, _, err := infer.ParseConfig(data)
	if err != nil || have.Result == nil || have.Result.Steps != want.Train.Steps {
		return nil, false
	}
	a, b := have, want
	a.Result, b.Result = nil, nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return nil, false
	}
	scope := context.ScopeSeparator + infer.SavedScope
	if err := hypernet.LoadWeightsWith(ctx, filepath.Join(dir, infer.WeightsFile), nil,
		ckpt.LoadOptions{Scopes: []string{scope}}); err != nil {
		return nil, false
	}
	hn, err := infer.NewHypernet(filepath.Base(filepath.Clean(dir)), dir, scope, mod, reward, have)
	if err != nil {
		return nil, false
	}
	return hn, true
}

package main

import (
	"flag"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	_ "github.com/hypernoise/hypernoise/models" // registers the model families
)

// modelFlag adds --model to a command: which model family (and its argument) to run on.
func modelFlag(fs *flag.FlagSet) *string {
	return fs.String("model", "", "model: a family name ("+strings.Join(family.Names(), ", ")+
		"), family:argument, or a model spec (JSON) naming your own generator and rewards as ONNX files "+
		"(docs/bring-your-model.md); default: the model a --hypernet folder was trained on, else "+family.Names()[0])
}

// loadModel is the one place a command resolves --model: ref as given, or, when it is empty,
// the model recorded in the opened hypernetwork folder hf (if any), else the default family. A
// mistake in the value or the spec is a usage error (exit code 2); a missing, broken or
// unsupported file a run-time error (exit code 1).
func loadModel(ref string, hf *infer.Folder, backend backends.Backend) (*family.Model, error) {
	if ref == "" && hf != nil {
		ref = hf.Config.Model
	}
	if err := checkWeightsFit(ref); err != nil {
		return nil, err
	}
	m, err := family.Load(ref, backend)
	if err != nil {
		if family.IsArgError(err) {
			return nil, cli.Usagef("--model: %v", err)
		}
		return nil, err
	}
	return m, nil
}

// backendAndModel starts the named backend (cli.Backend) and loads the model on it (loadModel);
// the caller finalizes the backend.
func backendAndModel(backendName, ref string, hf *infer.Folder) (backends.Backend, *family.Model, error) {
	backend, err := cli.Backend(backendName)
	if err != nil {
		return nil, nil, err
	}
	m, err := loadModel(ref, hf, backend)
	if err != nil {
		backend.Finalize()
		return nil, nil, err
	}
	return backend, m, nil
}

// openHypernets opens the hypernetwork folders given on the command line, each read once
// (infer.OpenFolder): their configs serve the flag checks, the model lookup and the pipeline.
func openHypernets(dirs ...string) ([]*infer.Folder, error) {
	return infer.OpenFolders(dirs...)
}

// flagSet reports whether a flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// checkReward checks a --reward spec against the model's own rewards (a usage error naming them).
func checkReward(cmd string, m *family.Model, spec string) error {
	if err := m.Rewards.Check(spec); err != nil {
		return cli.Usagef("%s: --reward: %v", cmd, err)
	}
	return nil
}

// checkWeightsFit refuses (exit 2) a model whose weights alone, as its family reads them from the
// files without loading them (family.Family.WeightBytes), exceed the memory budget
// ($HYPERNOISE_MEM_BUDGET): before anything is allocated, rather than after the load.
func checkWeightsFit(ref string) error {
	f, arg, err := family.Resolve(ref)
	if err != nil || f.WeightBytes == nil {
		return nil // family.Load reports a bad reference
	}
	budget, err := cli.MemBudget()
	if err != nil {
		return err
	}
	bytes, err := f.WeightBytes(arg)
	if err != nil || bytes <= budget {
		return nil // family.Load reports a broken file, with its own message
	}
	return cli.Usagef("--model %s: its weights alone need about %s of memory once loaded (half precision counted as float32), more than the budget of %s (set $%s to change it); nothing was loaded",
		ref, cli.FormatBytes(bytes), cli.FormatBytes(budget), cli.EnvMemBudget)
}

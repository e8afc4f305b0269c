package main

import (
	"flag"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
)

// The documented ranges of every numeric flag (issue 21): within them every command's results
// stay finite and its work bounded; a value outside is a usage error stating the range (exit 2),
// and --help shows each range. TestEveryNumericFlagHasARange keeps the list complete.

// Ranges shared by several commands.
const (
	maxSeed     = 1<<53 - 1 // seeds: the largest integer a JSON/JavaScript number holds exactly
	maxUint64   = 1<<64 - 1
	maxTerms    = 32 // log-det series terms: more add time and memory for no accuracy
	maxProbes   = 64
	maxGuidance = 100 // classifier-free guidance beyond this saturates every pixel
)

// ranges registers each listed flag's range on fs; flags fs lacks, or has as strings, are skipped.
func ranges(env *cli.Env, fs *flag.FlagSet, rs map[string][2]float64) {
	for name, r := range rs {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if g, ok := f.Value.(flag.Getter); ok {
			if _, isString := g.Get().(string); isString {
				continue // e.g. tilt's --beta list
			}
		}
		env.Range(fs, name, r[0], r[1])
	}
}

// knobMax is a registered method's largest N or steps.
func knobMax(method string, steps bool) float64 {
	info, err := hypernoise.LookupMethod(method)
	if err != nil {
		return 1000
	}
	if steps {
		return float64(info.Max.Steps)
	}
	return float64(info.Max.N)
}

func sampleRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{
		"n": {1, 4096}, "cols": {0, 4096 * 1024}, "scale": {1, 16}, "teacher-steps": {0, 1000},
		"guidance": {0, maxGuidance}, "seed": {0, maxSeed},
		"best-of":    {0, knobMax(bestofn.Name, false)},
		"reno-steps": {0, knobMax(reno.Name, true)},
		"beta":       {hypernet.MinBeta, hypernet.MaxBeta},
	})
}

func trainRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{
		"rank": {1, infer.MaxRank}, "alpha": {0, infer.MaxRank * infer.MaxAlphaPerRank},
		"hidden": {1, infer.MaxHidden}, "layers": {1, infer.MaxLayers}, "couplings": {1, infer.MaxCouplings},
		"reg-weight": {0, hypernet.MaxRegWeight}, "beta": {hypernet.MinBeta, hypernet.MaxBeta},
		"probes": {1, maxProbes}, "terms": {1, maxTerms},
		"steps": {1, hypernet.MaxSteps}, "batch": {1, hypernet.MaxBatchSize},
		"lr": {1e-12, hypernet.MaxLR}, "warmup": {0, hypernet.MaxSteps}, "clip": {0, hypernet.MaxClipNorm},
		"seed": {0, maxSeed}, "checkpoint-every": {0, hypernet.MaxSteps}, "prompts-per-step": {0, hypernet.MaxBatchSize},
		"tilt-match": {0, hypernet.MaxMatchWeight}, "tilt-match-pool": {2, hypernet.MaxMatchPool}, "tilt-match-size": {2, hypernet.MaxMatchPool},
	})
}

func evalRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{
		"seeds": {2, 1000}, "seed": {0, maxUint64}, "reno-steps": {1, 1000}, "warm-steps": {0, 1000},
		"small-n": {1, 1000}, "finetune-steps": {-1, hypernet.MaxSteps},
		"beta":      {hypernet.MinBeta, hypernet.MaxBeta},
		"tilt-pool": {0, pipeline.MaxTiltPool}, "train-seeds": {1, pipeline.MaxTrainSeeds}, "tilt-moves": {0, pipeline.MaxTiltMoves},
		// tilt's
		"pool": {1, 1 << 16}, "moves": {1, pipeline.MaxTiltMoves},
	})
}

func seedRange(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{"seed": {0, maxSeed}, "train-seeds": {1, pipeline.MaxTrainSeeds}})
}

func toyRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{
		"beta": {1e-3, 1e3}, "seed": {0, maxSeed}, "steps": {0, hypernet.MaxSteps}, "batch": {1, hypernet.MaxBatchSize},
		"rank": {1, 64}, "best-of": {1, knobMax(bestofn.Name, false)}, "reno-steps": {1, 1000},
		"samples": {0, 1 << 20}, "probes": {1, maxProbes}, "terms": {1, maxTerms},
	})
}

func zooRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{"steps": {0, 1 << 20}, "pairs": {0, 1 << 24}, "eval-samples": {0, 1 << 20}})
}

func serveRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{
		"max-n": {1, 1024}, "max-body": {64, 1 << 20}, "timeout": {0.001, 3600}, "concurrency": {1, 256},
		"queue": {0, 10000}, "best-of": {1, 1000}, "reno-steps": {1, 1000}, "warm-steps": {1, 1000},
		"batch-window": {0, 1}, "max-batch": {1, 4096}, // seconds; images
	})
}

func benchRanges(env *cli.Env, fs *flag.FlagSet) {
	ranges(env, fs, map[string][2]float64{"steps": {1, 1000}, "matmul-size": {1, 8192},
		"batch": {1, 4096}, "rank": {0, 1024}, "rounds": {1, 20}, "warmup": {0, 1000}}) // bench --model: as gpu_flags.go checks (rank 0: --scale without the step)
}

package pipeline

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// Generation methods of `hypernoise sample --method`.
const (
	SampleBase       = "base"
	SampleHyperNoise = "hypernoise"
	SampleReno       = "reno"
	SampleBestOfN    = "best-of-n"
)

// SampleMethods lists the names SampleOptions.Method accepts.
var SampleMethods = []string{SampleBase, SampleHyperNoise, SampleReno, SampleBestOfN}

// SampleOptions selects how Sample generates.
type SampleOptions struct {
	Method      string  // one of SampleMethods
	HypernetDir string  // hypernetwork folder (needed by hypernoise; gives reno/best-of-n its reward)
	RewardSpec  string  // reward for reno/best-of-n without a hypernetwork (default align=1)
	N           int     // best-of-n candidates
	RenoSteps   int     // ReNO iterations
	Beta        float64 // tilt temperature of a tilt dial (0: its default); see Config.CheckBeta
}

// Validate checks the options; errors name what is allowed.
func (o SampleOptions) Validate() error {
	switch o.Method {
	case SampleBase, SampleReno, SampleBestOfN:
	case SampleHyperNoise:
		if o.HypernetDir == "" {
			return fmt.Errorf("method hypernoise needs --hypernet DIR")
		}
	default:
		return fmt.Errorf("unknown method %q; methods: %s", o.Method, strings.Join(SampleMethods, ", "))
	}
	if o.RewardSpec != "" {
		if err := CheckRewardSpec(o.RewardSpec); err != nil {
			return err
		}
	}
	if o.Method == SampleBestOfN && (o.N < 1 || o.N > 10000) {
		return fmt.Errorf("best-of-n needs N in [1, 10000], got %d", o.N)
	}
	if o.Method == SampleReno && (o.RenoSteps < 1 || o.RenoSteps > 1000) {
		return fmt.Errorf("reno needs steps in [1, 1000], got %d", o.RenoSteps)
	}
	return nil
}

// Sample generates images [n*784] for noise eps (n*196 floats, e.g. fashion.Noise) and prompt ids
// with the chosen method, and returns them with the method's cost per image.
func Sample(backend backends.Backend, m *fashion.Model, eps []float32, prompts []int32, o SampleOptions) ([]float32, hypernet.Cost, error) {
	if err := o.Validate(); err != nil {
		return nil, hypernet.Cost{}, err
	}
	var hn *Hypernet
	if o.HypernetDir != "" {
		var err error
		if hn, err = LoadHypernet(backend, o.HypernetDir, m); err != nil {
			return nil, hypernet.Cost{}, err
		}
		if o.Beta != 0 {
			if err := hn.SetBeta(o.Beta); err != nil {
				return nil, hypernet.Cost{}, err
			}
		}
	}
	spec := o.RewardSpec
	if spec == "" && hn != nil {
		spec = hn.Config.RewardSpec
	}
	if spec == "" {
		spec = "align=1"
	}
	var r *Runner
	var err error
	switch o.Method {
	case SampleBase:
		r, err = BaseMethod(backend, m)
	case SampleHyperNoise:
		r, err = HyperNoiseMethod(backend, hn, SampleHyperNoise)
	case SampleReno, SampleBestOfN:
		reward, perr := ParseReward(m, spec)
		if perr != nil {
			return nil, hypernet.Cost{}, perr
		}
		if o.Method == SampleReno {
			cfg := reno.DefaultConfig()
			cfg.Steps = o.RenoSteps
			r, err = RenoMethod(backend, m, reward, cfg, nil, SampleReno)
		} else {
			r, err = BestOfNMethod(backend, m, reward, o.N, 1, SampleBestOfN)
		}
	}
	if err != nil {
		return nil, hypernet.Cost{}, err
	}
	defer r.Close()
	n := len(prompts)
	x, cost, err := r.Run(tensors.FromFlatDataAndDimensions(eps, append([]int{n}, m.NoiseShape()...)...),
		tensors.FromValue(prompts))
	if err != nil {
		return nil, cost, err
	}
	return tensors.MustCopyFlatData[float32](x), cost, nil
}

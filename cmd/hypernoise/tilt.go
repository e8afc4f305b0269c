package main

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"math"
	"strconv"
	"strings"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/eval/tilt"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "tilt",
		Summary: "reference figures of the exact reward-tilted distribution on images, by importance resampling or SMC",
		Run:     runTilt,
	})
}

// tiltRow is one line of `hypernoise tilt --json`.
type tiltRow struct {
	Beta    float64 `json:"beta,omitempty"`
	ESSMin  float64 `json:"ess_min,omitempty"`
	ESSMean float64 `json:"ess_mean,omitempty"`
	*imageeval.Result
}

func runTilt(env *cli.Env, args []string) error {
	fs := env.FlagSet("tilt", `Usage: hypernoise tilt --reward SPEC --beta B1,B2,... [--pool 2048] [--seeds 32] [--json]

Scores a sampler of the exact tilted distribution p*(x|c) ∝ p(x|c) exp(r(x,c)/beta) of the model's
generator (the embedded one by default), with no learning: for each prompt, --pool base samples are drawn and resampled with
weights exp(r/beta) (sampling-importance-resampling). Each beta's reference set is scored like
hypernoise eval's methods (same evaluation seeds): reward, held-out alignment, FD, diversity, and
the effective sample size of the weights (min and mean over prompts). Compare a hypernetwork's
eval row with the reference at its beta to see how close it lands to the tilt.
Where the ESS collapses (a small beta, a reward with a wide spread), --sampler smc moves --pool
particles per prompt from the base to each beta's tilt instead (tempered sequential Monte Carlo
with Langevin moves, --moves per stage; eval/tilt's SMC): its particles are the tilt's samples,
at the cost of the reward's gradient through the generator: 1 + stages x moves passes per
particle (on the project's fixtures 2-54 stages, so 21-541 passes at the default 10 moves).
Rewards (default: the model's default reward; the embedded model's):
`+family.DefaultRewardHelp())
	spec := fs.String("reward", "", "reward spec (default: the model's default reward)")
	betas := fs.String("beta", "0.05,0.2,1", "comma-separated tilt temperatures")
	pool := fs.Int("pool", 2048, "base samples (sir) or particles (smc) per prompt")
	sampler := fs.String("sampler", pipeline.TiltSIR, "sir (importance resampling of base samples) or smc (tempered sequential Monte Carlo with Langevin moves)")
	moves := fs.Int("moves", 10, "with --sampler smc: Langevin moves per tempering stage")
	seeds := fs.Int("seeds", 32, "evaluation images per prompt")
	seed := fs.Uint64("seed", pipeline.DefaultEvalOptions().Seed, "seed of the evaluation set (and of the pool)")
	asJSON := fs.Bool("json", false, "print JSON to stdout (progress still goes to stderr; --quiet silences it)")
	modelRef := modelFlag(fs)
	quiet := fs.Bool("quiet", false, "no progress output")
	backendName := cli.BackendFlag(fs)
	evalRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	bs, err := parseBetas(*betas)
	if err != nil {
		return err
	}
	if *pool < 2 || *pool > 100000 {
		return cli.Usagef("tilt: --pool must be in [2, 100000], got %d", *pool)
	}
	if *seeds < 2 || *seeds > 1000 {
		return cli.Usagef("tilt: --seeds must be in [2, 1000], got %d", *seeds)
	}
	if *sampler != pipeline.TiltSIR && *sampler != pipeline.TiltSMC {
		return cli.Usagef("tilt: unknown --sampler %q (want %s or %s)", *sampler, pipeline.TiltSIR, pipeline.TiltSMC)
	}
	backend, m, err := backendAndModel(*backendName, *modelRef, nil)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	if *spec == "" {
		*spec = m.DefaultReward
	}
	reward, err := m.Rewards.Parse(*spec)
	if err != nil {
		return cli.Usagef("tilt: %v", err)
	}
	prog := progress.New(env.Stderr, "tilt", *quiet)
	pools, err := tiltPools(backend, m, reward, bs, *sampler, *pool, *moves, *seed, prog)
	if err != nil {
		return err
	}
	ev, err := imageeval.NewEvaluator(backend, m, reward)
	if err != nil {
		return err
	}
	defer ev.Finalize()
	p, err := pipeline.NewPipeline(backend, m)
	if err != nil {
		return err
	}
	defer p.Close()
	base, err := p.Method(infer.Request{Method: "base"})
	if err != nil {
		return err
	}
	methods := []hypernoise.Method{base}
	names := []string{"base"}
	for i, b := range bs {
		name := "tilt beta=" + strconv.FormatFloat(b, 'g', -1, 64)
		meth, err := pools[i].Method(name, b)
		if err != nil {
			return cli.Usagef("tilt: %v", err)
		}
		methods = append(methods, meth)
		names = append(names, name)
	}
	res, err := ev.Evaluate(methods, imageeval.Options{SeedsPerPrompt: *seeds, Seed: *seed, Batch: 160}, prog)
	if err != nil {
		return err
	}
	return writeTilt(env, tiltRows(pools, res, names, bs), names, *spec, *sampler, *pool, *seeds*m.NumPrompts(), *asJSON)
}

// writeTilt prints the rows as JSON or as a table with a line saying what the references were
// drawn from.
func writeTilt(env *cli.Env, rows []tiltRow, names []string, spec, sampler string, pool, images int, asJSON bool) error {
	if asJSON {
		return env.WriteJSON(map[string]any{"reward_spec": spec, "sampler": sampler, "pool_per_prompt": pool,
			"images_per_method": images, "rows": rows})
	}
	printTilt(env, rows, names)
	what := "base samples"
	if sampler == pipeline.TiltSMC {
		what = "SMC particles"
	}
	fmt.Fprintf(env.Stdout, "reward %q, %d %s per prompt, %d images per row\n", spec, pool, what, images)
	return nil
}

// tiltPools returns each beta's reference pool: one SIR pool of n base samples per prompt for
// every beta, or with smc one SMC run of n particles per prompt per beta.
func tiltPools(backend backends.Backend, m *family.Model, reward hypernoise.Reward, bs []float64, sampler string, n, moves int, seed uint64, prog progress.Func) ([]*tilt.Resampler, error) {
	pools := make([]*tilt.Resampler, len(bs))
	if sampler != pipeline.TiltSMC {
		prog.Report(0, 1, fmt.Sprintf("drawing %d base samples per prompt", n))
		rs, err := tilt.NewResampler(backend, m, reward, n, seed)
		for i := range pools {
			pools[i] = rs
		}
		return pools, err
	}
	for i, b := range bs {
		rs, _, err := tilt.NewSMC(backend, m, reward, nil, b, n, moves, seed, func(stage int, t, accept float64) {
			prog.Report(int(1000*t), 1000, fmt.Sprintf("SMC at beta %g: stage %d, t = %.4f of 1, MALA acceptance %.2f", b, stage, t, accept))
		})
		if err != nil {
			return nil, err
		}
		pools[i] = rs
	}
	return pools, nil
}

// parseBetas parses --beta: positive numbers separated by commas.
func parseBetas(betas string) ([]float64, error) {
	var bs []float64
	for _, s := range strings.Split(betas, ",") {
		b, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, cli.Usagef("tilt: --beta must be numbers separated by commas, got %q", betas)
		}
		if err := hypernet.CheckRange("--beta", b, hypernet.MinBeta, hypernet.MaxBeta); err != nil {
			return nil, cli.Usagef("tilt: %v", err)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// tiltRows are the base row and one row per beta with the ESS of its weights (min and mean over
// prompts).
func tiltRows(pools []*tilt.Resampler, res map[string]*imageeval.Result, names []string, bs []float64) []tiltRow {
	rows := []tiltRow{{Result: res["base"]}}
	for i, b := range bs {
		ess := pools[i].ESS(b)
		row := tiltRow{Beta: b, ESSMin: math.Inf(1), Result: res[names[i+1]]}
		for _, e := range ess {
			row.ESSMin = math.Min(row.ESSMin, e)
			row.ESSMean += e / float64(len(ess))
		}
		rows = append(rows, row)
	}
	return rows
}

// printTilt writes the rows as a table.
func printTilt(env *cli.Env, rows []tiltRow, names []string) {
	fmt.Fprintf(env.Stdout, "%-18s %9s %9s %8s %9s %9s %9s\n", "reference", "reward", "held-out", "FD", "diversity", "ESS min", "ESS mean")
	for i, r := range rows {
		a, b := "", ""
		if i > 0 {
			a, b = fmt.Sprintf("%.0f", r.ESSMin), fmt.Sprintf("%.0f", r.ESSMean)
		}
		fmt.Fprintf(env.Stdout, "%-18s %9.4f %9s %8s %9.2f %9s %9s\n", names[i], r.Reward, cell("%.3f", float64(r.HeldoutAlignment)),
			cell("%.1f", float64(r.FD)), r.Diversity, a, b)
	}
}

// cell formats v, or "-" for a figure the model cannot give (NaN: no held-out classifier).
func cell(verb string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(verb, v)
}

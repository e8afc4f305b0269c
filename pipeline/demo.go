package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/compositional"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// DemoOptions configures Demo.
type DemoOptions struct {
	OutDir     string
	Quick      bool
	Seed       int64
	Brightness bool // also train and show a brightness hypernetwork (base vs HyperNoise)
	// Compositional also runs the compositional benchmark (eval/compositional).
	Compositional bool
	// Force discards the hypernetworks a previous demo left in OutDir and trains them afresh.
	// Without it a previous demo's runs are continued: a finished one is reused as it is (its
	// training is bit-reproducible, so the figures are those of a fresh run), an interrupted one
	// resumes from its checkpoint, and one with other settings is refused, naming --force.
	Force bool
	// TrainSeeds > 1 also trains the align hypernetwork and reruns the compositional benchmark
	// with the TrainSeeds-1 seeds after Seed, and reports mean and std (demoSeeds).
	TrainSeeds int
}

// DemoResult is the demo's metrics.json.
type DemoResult struct {
	Quick      bool        `json:"quick"`
	Seconds    float64     `json:"seconds"`
	Align      *EvalReport `json:"align"`
	Brightness *EvalReport `json:"brightness,omitempty"`
	// Compositional is the compositional benchmark (class + attribute prompts, held-out checks).
	Compositional *compositional.Result `json:"compositional,omitempty"`
	// TrainSeconds of each hypernetwork.
	TrainSeconds map[string]float64 `json:"train_seconds"`
	// AlignSeeds and CompositionalSeeds: the trained methods' figures over training seeds
	// (DemoOptions.TrainSeeds > 1).
	AlignSeeds         *SeedSummary `json:"align_train_seeds,omitempty"`
	CompositionalSeeds *SeedSummary `json:"compositional_train_seeds,omitempty"`
}

// Demo is the main job: on the embedded default, train a hypernetwork for prompt alignment,
// evaluate every method, optionally do the same for brightness, and write a report folder:
// metrics.json, one grid per method, a reward-vs-seconds plot and index.html. Its progress and
// stage lines go to log, none of them when quiet; a notice that a previous demo's run is continued
// goes to log even then (the figures come from that run).
func Demo(backend backends.Backend, opts DemoOptions, log io.Writer, quiet bool) (*DemoResult, error) {
	start := time.Now()
	notice := log
	if quiet {
		log = io.Discard
	}
	to, eo := demoSettings(opts.Quick, opts.Seed)
	res := &DemoResult{Quick: opts.Quick, TrainSeconds: map[string]float64{}}
	run := func(name, spec string, eo EvalOptions) (*EvalReport, error) {
		m, err := fashion.Default()
		if err != nil {
			return nil, err
		}
		o := to
		o.RewardSpec = spec
		o.OutDir = filepath.Join(opts.OutDir, "hypernet-"+name)
		o.Force = opts.Force
		if _, err := os.Stat(filepath.Join(o.OutDir, hypernet.CheckpointWeights)); err == nil && !opts.Force {
			if err := sameDemoRun(o); err != nil {
				return nil, err
			}
			o.Resume = true // a previous demo's run: reuse it if finished, else continue it
			fmt.Fprintf(notice, "[%s] continuing the run a previous demo left in %s (--force starts afresh)\n", name, o.OutDir)
		}
		fmt.Fprintf(log, "[%s] training the %s hypernetwork (%d steps, batch %d) ...\n", name, o.Modulator.Kind, o.Train.Steps, o.Train.BatchSize)
		_, tr, err := Train(backend, fashion.ModelOf(m), o, progress.New(log, "train "+name, quiet))
		if errors.Is(err, infer.ErrRunFolder) {
			return nil, &infer.RunFolderError{Msg: fmt.Sprintf("%s holds a previous demo's run that this demo cannot continue (%v); pass --force to train it afresh", o.OutDir, err)}
		}
		if err != nil {
			return nil, err
		}
		res.TrainSeconds[name] = tr.Seconds
		// Evaluate on a fresh copy of the generator: the training state is left behind.
		em, err := fashion.Default()
		if err != nil {
			return nil, err
		}
		f, err := infer.OpenFolder(o.OutDir)
		if err != nil {
			return nil, err
		}
		p, err := NewPipeline(backend, fashion.ModelOf(em), f)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		fmt.Fprintf(log, "[%s] evaluating %d images per method ...\n", name, eo.SeedsPerPrompt*len(m.Prompts()))
		return Evaluate(p, p.Hypernets()[0], o.OutDir, eo, progress.New(log, "eval "+name, quiet))
	}
	var err error
	if res.Align, err = run("align", "align=1", eo); err != nil {
		return nil, err
	}
	if opts.Brightness {
		beo := eo
		beo.Methods = []string{MethodHyperNoise}
		if res.Brightness, err = run("brightness", BrightnessSpec, beo); err != nil {
			return nil, err
		}
	}
	if opts.Compositional {
		m, err := fashion.Default()
		if err != nil {
			return nil, err
		}
		co := CompositionalOptions(opts.Quick, opts.Seed)
		if res.Compositional, err = compositional.Run(backend, m, co, log, progress.New(log, "compositional", quiet)); err != nil {
			return nil, err
		}
	}
	if err := demoSeeds(backend, opts, eo, res, log, quiet); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	if err := WriteDemoReport(opts.OutDir, res); err != nil {
		return nil, err
	}
	return res, nil
}

// WriteDemoReport writes metrics.json, the grids, the plot and index.html into dir.
func WriteDemoReport(dir string, res *DemoResult) error {
	if err := ckpt.WriteJSON(filepath.Join(dir, "metrics.json"), res); err != nil {
		return err
	}
	page := report.Page{
		Title: "HyperNoise on the embedded Fashion-MNIST generator",
		Intro: fmt.Sprintf("A noise hypernetwork (LoRA copy of the one-step student) was trained for prompt alignment and "+
			"compared with base sampling, best-of-N, ReNO test-time noise optimization, direct LoRA fine-tuning and "+
			"HyperNoise warm-starting a few ReNO steps, on %d images per method (%d prompts x %d seeds). "+
			"Held-out alignment and FD use a classifier no method trains against. Total time %.0f s.",
			res.Align.Images, len(res.Align.Prompts), res.Align.Options.SeedsPerPrompt, res.Seconds),
		JSONRef: "metrics.json",
		Footer:  "Generated by hypernoise demo.",
	}
	page.Tables = append(page.Tables, report.NamedTable{Heading: "Prompt alignment (reward align=1)", Table: res.Align.Table()})
	plot, err := report.ScatterPNG("reward vs cost (align)", "seconds per image (log)", "mean reward log p(c|x)", res.Align.Points())
	if err != nil {
		return err
	}
	if err := ckpt.WriteFileAtomic(filepath.Join(dir, "reward_vs_seconds.png"), plot); err != nil {
		return err
	}
	page.Images = append(page.Images, report.Image{File: "reward_vs_seconds.png", Caption: "mean alignment reward against seconds per image"})
	grids, err := res.Align.WriteGrids(dir, "align_")
	if err != nil {
		return err
	}
	page.Images = append(page.Images, grids...)
	if res.Brightness != nil {
		page.Tables = append(page.Tables, report.NamedTable{Heading: "Brightness (reward " + BrightnessSpec + ")", Table: res.Brightness.Table()})
		g, err := res.Brightness.WriteGrids(dir, "brightness_")
		if err != nil {
			return err
		}
		page.Images = append(page.Images, g...)
	}
	if res.Compositional != nil {
		tables, imgs, err := res.Compositional.WriteReport(dir, "compositional_")
		if err != nil {
			return err
		}
		page.Tables = append(page.Tables, tables...)
		page.Images = append(page.Images, imgs...)
	}
	html, err := report.HTML(page)
	if err != nil {
		return err
	}
	return ckpt.WriteFileAtomic(filepath.Join(dir, "index.html"), html)
}

// sameDemoRun refuses to continue a previous demo's run planned for another number of steps or
// batch size (a --quick demo's, say): continuing it would give neither run's figures.
func sameDemoRun(o TrainOptions) error {
	var st struct {
		Config struct {
			Steps     int `json:"steps"`
			BatchSize int `json:"batch_size"`
		} `json:"config"`
	}
	if err := ckpt.ReadJSON(filepath.Join(o.OutDir, hypernet.CheckpointJSON), &st); err != nil {
		return &infer.RunFolderError{Msg: fmt.Sprintf("%s holds a previous demo's run whose state cannot be read (%v); pass --force to train it afresh", o.OutDir, err)}
	}
	if c := st.Config; c.Steps != o.Train.Steps || c.BatchSize != o.Train.BatchSize {
		return &infer.RunFolderError{Msg: fmt.Sprintf("%s holds a previous demo's run of %d steps of batch %d; this demo trains %d steps of batch %d "+
			"(--quick or not); it cannot continue it: pass --force to train it afresh, or another --out", o.OutDir, c.Steps, c.BatchSize, o.Train.Steps, o.Train.BatchSize)}
	}
	return nil
}

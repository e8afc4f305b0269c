package pipeline_test

import (
	"fmt"
	"log"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

// Train a hypernetwork for a reward spec on the embedded generator, then sample with it.
func Example() {
	backend, err := compute.NewBackend("") // pure Go by default; "xla:cuda" on a GPU machine
	if err != nil {
		log.Fatal(err)
	}
	m, err := fashion.Default() // the embedded one-step generator, rewards and evaluators
	if err != nil {
		log.Fatal(err)
	}
	opts := pipeline.DefaultTrainOptions()
	opts.RewardSpec = "align=1,brightness=0.5"
	opts.OutDir = "my-hypernet"
	if _, _, err := pipeline.TrainHypernet(backend, m, opts, nil); err != nil { // writes my-hypernet/
		log.Fatal(err)
	}
	// Inference: load the folder into a pipeline and run any registered method on it.
	p, err := pipeline.NewPipeline(backend, m, "my-hypernet")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	eps := hypernoise.Noise(7, 4, m.NoiseShape()) // the toolkit's noise: noise k of seed 7, k < 4
	prompt, _ := fashion.PromptID("ankle boot")
	ids := tensors.FromValue([]int32{int32(prompt), int32(prompt), int32(prompt), int32(prompt)})
	// x = g(eps + f(eps, c), c): one hypernetwork forward, then the frozen generator.
	out, err := p.Generate(infer.Request{Method: "hypernoise"}, eps, ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.X.Shape(), out.Rewards, out.Cost.NFE())
}

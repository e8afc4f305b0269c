package pipeline_test

import (
	"fmt"
	"log"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models"
	"github.com/hypernoise/hypernoise/pipeline"
)

// Train a hypernetwork for a reward spec on a model (the embedded default family's), then sample
// with it.
func Example() {
	backend, err := compute.NewBackend("") // pure Go by default; "xla:cuda" on a GPU machine
	if err != nil {
		log.Fatal(err)
	}
	m, err := models.Load("", backend) // "": the default family (the embedded generator, its rewards and evaluators)
	if err != nil {
		log.Fatal(err)
	}
	opts := pipeline.DefaultTrainOptions()
	opts.RewardSpec = "align=1,brightness=0.5"
	opts.OutDir = "my-hypernet"
	if _, _, err := pipeline.Train(backend, m, opts, nil); err != nil { // writes my-hypernet/
		log.Fatal(err)
	}
	// Inference: load the folder into a pipeline and run any registered method on it.
	folder, err := infer.OpenFolder("my-hypernet") // hypernet.json read and checked once
	if err != nil {
		log.Fatal(err)
	}
	p, err := pipeline.NewPipeline(backend, m, folder)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	eps := hypernoise.Noise(7, 4, m.Generator.NoiseShape()) // the toolkit's noise: noise k of seed 7, k < 4
	prompt, _ := m.Prompt("ankle boot")
	ids := tensors.FromValue([]int32{int32(prompt[0]), int32(prompt[0]), int32(prompt[0]), int32(prompt[0])})
	// x = g(eps + f(eps, c), c): one hypernetwork forward, then the frozen generator.
	out, err := p.Generate(infer.Request{Method: "hypernoise"}, eps, ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.X.Shape(), out.Rewards, out.Cost.NFE())
}

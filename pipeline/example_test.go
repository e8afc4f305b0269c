package pipeline_test

import (
	"fmt"
	"log"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/hypernet"
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
	hn, _, err := pipeline.TrainHypernet(backend, m, opts, nil)
	if err != nil {
		log.Fatal(err)
	}
	// x = g(eps + f(eps, c), c): one hypernetwork forward, then the frozen generator.
	s, err := hypernet.NewSampler(backend, m.Context(), m, hn.Modulator)
	if err != nil {
		log.Fatal(err)
	}
	eps := hypernoise.Noise(7, 4, m.NoiseShape()) // the toolkit's noise: noise k of seed 7, k < 4
	prompt, _ := fashion.PromptID("ankle boot")
	x, _, cost, err := s.Sample(eps, tensors.FromValue([]int32{int32(prompt), int32(prompt), int32(prompt), int32(prompt)}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(x.Shape(), cost.NFE())
}

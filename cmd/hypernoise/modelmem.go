package main

import (
	"strconv"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// checkModelMemory refuses (usage error, exit 2) a run on an imported model whose up-front
// estimate (onnx.Model.EstimateBytes / EstimateTrainBytes) exceeds the memory budget, naming the
// estimate and the value of flag that would fit. units is how many samples one unit of the flag
// runs at once (e.g. the number of prompts for sample's --n); rank > 0 adds LoRA adapters.
func checkModelMemory(m *onnx.Model, what string, batch int, training bool, rank int, flag string, units int) error {
	budget, err := cli.MemBudget()
	if err != nil {
		return err
	}
	need := m.EstimateBytes(batch, training)
	if training {
		need = m.EstimateTrainBytes(batch, rank)
	}
	if need <= budget {
		return nil
	}
	fit := m.LargestBatch(budget, batch, training, rank) / max(units, 1)
	hint := "no " + flag + " fits: even one sample exceeds it (use a machine with more memory, or a smaller model)"
	if fit >= 1 {
		hint = flag + " " + strconv.Itoa(fit) + " would fit"
	}
	return cli.Usagef("%s on %s needs about %s of memory (weights %s), more than the budget of %s ($%s); %s",
		what, m.Name(), cli.FormatBytes(need), cli.FormatBytes(m.WeightBytes()), cli.FormatBytes(budget), cli.EnvMemBudget, hint)
}

// loraRank is the LoRA rank a modulator trains (0 for the MLP modulators).
func loraRank(c infer.ModulatorSpec) int {
	if c.Kind == infer.KindLoRA {
		return c.Rank
	}
	return 0
}

package main

import (
	"fmt"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/export"
	"github.com/hypernoise/hypernoise/internal/safeio"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "export",
		Summary: "write a trained hypernetwork's noise modulation as an ONNX graph, for PyTorch or onnxruntime users",
		Run:     runExport,
	})
}

func runExport(env *cli.Env, args []string) error {
	fs := env.FlagSet("export", `Usage: hypernoise export --hypernet DIR [--format onnx] --out FILE.onnx

Writes the hypernetwork of DIR as a standalone ONNX graph of its noise modulation,
modulated_noise = noise + f_phi(noise, prompt): inputs "noise" (float32 [N, noise shape...]) and,
on a prompt-conditioned model, "prompt" (int64 [N], the index of the prompt in the model's prompt
list); output "modulated_noise". Feed it to the generator in place of the noise. The metadata
records the model, reward, beta, noise shape and prompt list (docs/serve.md, "Export").
A LoRA hypernetwork (the default) exports on an imported ONNX model: the generator's layers up to
its backbone output are copied with the adapters folded into their weights. An MLP hypernetwork
(--modulator mlp) or tilt dial (at its default beta) exports on any model.`)
	dir := fs.String("hypernet", "", "hypernetwork folder (required)")
	format := fs.String("format", "onnx", "output format: onnx")
	out := fs.String("out", "", "file to write (- for standard output; required); an existing path must be a regular file")
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return cli.Usagef("export: --hypernet DIR is required")
	case *format != "onnx":
		return cli.Usagef("export: unknown --format %s; available: onnx", safeio.Shorten(*format, 40))
	case *out == "":
		return cli.Usagef("export: --out FILE is required")
	}
	if err := safeio.CheckOutput(*out); err != nil {
		return cli.Usagef("export: --out: %v", err)
	}
	folders, err := openHypernets(*dir)
	if err != nil {
		return err
	}
	backend, m, err := backendAndModel(*backendName, *modelRef, folders[0])
	if err != nil {
		return err
	}
	defer backend.Finalize()
	model, err := export.ONNX(folders[0], m)
	if err != nil {
		return err
	}
	data, err := model.Marshal()
	if err != nil {
		return err
	}
	if err := safeio.WriteOutput(*out, data, env.Stdout); err != nil {
		return err
	}
	log := env.Stdout
	if *out == safeio.Stdout {
		log = env.Stderr
	}
	dims := "N"
	for _, d := range m.Generator.NoiseShape() {
		dims += fmt.Sprintf(", %d", d)
	}
	inputs := fmt.Sprintf("%s float32 [%s]", export.InputNoise, dims)
	if len(m.Generator.Prompts()) > 0 {
		inputs += fmt.Sprintf(", %s int64 [N] (index into the %d prompts)", export.InputPrompt, len(m.Generator.Prompts()))
	}
	fmt.Fprintf(log, "wrote %s (%s hypernetwork, %d bytes): inputs %s -> output %s\n", *out, folders[0].Config.Modulator.Kind, len(data), inputs, export.Output)
	return nil
}

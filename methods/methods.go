// Package methods registers every generation method of the toolkit in the hypernoise method
// registry, in report order. Import it (for its side effect) wherever methods are looked up by name.
//
// Adding a method: write its package (a hypernoise.MethodInfo whose New builds a hypernoise.Method
// from a hypernoise.MethodEnv) and add one line to the list below.
package methods

import (
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/hypernet"
)

// All lists the toolkit's methods, in report order.
var All = []hypernoise.MethodInfo{
	hypernet.BaseMethod,
	bestofn.Method,
	reno.Method,
	finetune.Method,
	hypernet.HyperNoiseMethod,
	reno.WarmMethod,
}

func init() {
	for _, m := range All {
		hypernoise.RegisterMethod(m)
	}
}

// Names lists the registered methods (the toolkit's and any others), in registration order.
func Names() []string { return hypernoise.MethodNames() }

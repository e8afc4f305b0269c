// Package models registers every model family of the toolkit in the family registry (package
// family), the default first. Import it (for its side effect) wherever --model is resolved.
//
// Adding a family: write its package (a family.Family whose Load returns a *family.Model: the
// generator, its context and rewards, the default reward, the weights hash, and any optional
// capabilities) and add one line to the list below.
package models

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/models/toy"
)

// All lists the toolkit's model families; the first is the default.
var All = []family.Family{
	fashion.Family,
	onnx.Family,
	toy.Family,
}

func init() {
	for _, f := range All {
		family.Register(f)
	}
}

// Load resolves a --model value ("" = the default family) and loads its model (family.Load).
func Load(ref string, backend backends.Backend) (*family.Model, error) {
	return family.Load(ref, backend)
}

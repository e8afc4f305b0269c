package fashion

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/hypernoise/hypernoise/compute"
)

// checkComplete builds (without running) the graph of every loaded part and fails if building it
// needed a variable that the weights files did not hold: that happens when a weights file was
// written by another version of the architecture, and would otherwise silently run the part with
// freshly initialized random weights.
func (m *Model) checkComplete() (err error) {
	backend, err := compute.NewBackend(compute.PatchedName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	g := NewGraph(backend, "fashion_check")
	defer g.Finalize()
	before := map[string]bool{}
	for v := range m.ctx.IterVariables() {
		before[v.ScopeAndName()] = true
	}
	defer func() {
		if r := recover(); r != nil && err == nil {
			err = fmt.Errorf("building the fashion models: %v", r)
		}
	}()
	img := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, Side, Side, 1))
	eps := Parameter(g, "eps", shapes.Make(dtypes.Float32, 1, LatentSide, LatentSide, LatentCh))
	c := Parameter(g, "c", shapes.Make(dtypes.Int32, 1))
	t := Parameter(g, "t", shapes.Make(dtypes.Float32, 1))
	ctx := m.ctx.Reuse()
	build := map[string]func(){
		ScopeAutoencoder:   func() { Encode(ctx, img); Decode(ctx, eps) },
		ScopeTeacher:       func() { TeacherVelocity(ctx, eps, t, c) },
		ScopeStudent:       func() { Student(ctx, eps, c) },
		ScopeClassifier:    func() { ClassifierLogits(ctx, img) },
		ScopeHeldOut:       func() { HeldOut(ctx, img) },
		ScopeDiscriminator: func() { DiscriminatorLogits(ctx, img) },
	}
	var created []string
	for _, part := range Parts {
		if !m.parts[part] {
			continue
		}
		build[part]()
		for v := range m.ctx.IterVariables() {
			if !before[v.ScopeAndName()] {
				created = append(created, v.ScopeAndName())
				before[v.ScopeAndName()] = true
			}
		}
		if len(created) > 0 {
			sort.Strings(created)
			return fmt.Errorf("the %s weights do not match its architecture: %d variable(s) missing (%s); retrain with: hypernoise zoo train %s",
				part, len(created), strings.Join(created[:min(3, len(created))], ", "), part)
		}
	}
	return nil
}

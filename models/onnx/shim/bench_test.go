package shim

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// BenchmarkBuild measures building (not compiling or running) the fixture graphs in GoMLX:
// go test ./models/onnx/shim/ -run XXX -bench Build
func BenchmarkBuild(b *testing.B) {
	be := testutil.Backend(b)
	for _, c := range []struct {
		file   string
		inputs map[string]shapes.Shape
		output string
	}{
		{"gen.onnx", map[string]shapes.Shape{"noise": shapes.Make(dtypes.Float32, 8, 4, 8, 8), "prompt": shapes.Make(dtypes.Int64, 8)}, "image"},
		{"reward.onnx", map[string]shapes.Shape{"image": shapes.Make(dtypes.Float32, 8, 3, 32, 32), "prompt": shapes.Make(dtypes.Int64, 8)}, "score"},
	} {
		m, err := Load(filepath.Join(testdata, c.file))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.New()
		m.CreateVariables(ctx)
		b.Run(c.file, func(b *testing.B) {
			for range b.N {
				g := NewGraph(be, "bench")
				in := map[string]*Node{}
				for name, s := range c.inputs {
					in[name] = Parameter(g, name, s)
				}
				m.Call(ctx, g, in, c.output)
				g.Finalize()
			}
		})
	}
}

package hypernet

import (
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// BenchmarkEnergyMatch times the matching term and its gradient at the embedded model's training
// sizes (batch 32 of 784 values, 10 prompts x 512 reference samples), with the reference's norms
// computed once on the host as training does ("host") or in the graph every call ("graph").
func BenchmarkEnergyMatch(b *testing.B) {
	const B, M, D, NP = 32, 512, 784, 10
	for _, host := range []bool{true, false} {
		name := map[bool]string{true: "host", false: "graph"}[host]
		b.Run(name, func(b *testing.B) {
			be := testutil.Backend(b)
			z := tensors.FromFlatDataAndDimensions(make([]float32, B*D), B, D)
			mt := &Match{Ref: tensors.FromFlatDataAndDimensions(make([]float32, NP*M*D), NP, M, D)}
			p := make([]int32, B)
			for i := range p {
				p[i] = int32(i % 2)
			}
			exec := MustNewExec(be, func(z, pr *Node) *Node {
				var sq *Node
				if host {
					sq = ConstCachedTensor(z.Graph(), mt.refSq())
				}
				l := ReduceAllSum(EnergyMatch(z, pr, ConstCachedTensor(z.Graph(), mt.Ref), sq))
				return Gradient(l, z)[0]
			})
			pt := tensors.FromValue(p)
			exec.MustExec(z, pt)
			b.ResetTimer()
			for range b.N {
				exec.MustExec(z, pt)
			}
		})
	}
}

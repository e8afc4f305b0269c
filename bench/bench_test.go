package bench

import (
	"testing"

	"github.com/hypernoise/hypernoise/compute"
)

// BenchmarkHypernetStep times the HyperNoise training step (go test -bench HypernetStep -cpuprofile).
func BenchmarkHypernetStep(b *testing.B) {
	backend, err := compute.NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Finalize()
	hn, err := hypernetStep(backend, max(b.N, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(hn.stepMS, "ms/step")
}

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

// BenchmarkHypernetStepOps prints the time per op kind of the HyperNoise step (go test -bench StepOps -v).
func BenchmarkHypernetStepOps(b *testing.B) {
	compute.EnableOpTimes()
	backend, err := compute.NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Finalize()
	compute.OpTimes()
	hn, err := hypernetStep(backend, max(b.N, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(hn.stepMS, "ms/step")
	for _, o := range compute.OpTimes()[:15] {
		b.Logf("%-22s %8.1f ms %6d  %5.1f%%", o.Op, float64(o.Time)/1e6, o.Count, o.Percent)
	}
}

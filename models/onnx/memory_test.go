package onnx

import (
	"path/filepath"
	"testing"

	"github.com/hypernoise/hypernoise/compute/dnnl"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestEstimateBytes: the estimate counts the weights once, grows with the batch by at least the
// images the generator writes, costs more for training (and more per LoRA rank), and its MemoryFit
// is what the commands' memory checks read.
func TestEstimateBytes(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "spec.json"), testutil.Backend(t))
	if err != nil {
		t.Fatal(err)
	}
	var params int64
	for _, g := range append([]interface{ WeightBytes() int64 }{m.gen}, rewardsOf(m)...) {
		params += g.WeightBytes()
	}
	if w := m.WeightBytes(); w != params || w <= 0 {
		t.Fatalf("WeightBytes %d, want the sum over the graphs %d > 0", w, params)
	}
	per := m.EstimateBytes(2, false) - m.EstimateBytes(1, false)
	image := int64(4)
	for _, d := range m.nativeDims {
		image *= int64(d)
	}
	if per < image || m.EstimateBytes(5, false)-m.EstimateBytes(1, false) != 4*per {
		t.Fatalf("forward estimate grows by %d bytes per sample, want linear and >= one image (%d)", per, image)
	}
	if m.EstimateBytes(4, true) <= m.EstimateBytes(4, false) || m.EstimateTrainBytes(4, 16) <= m.EstimateTrainBytes(4, 8) {
		t.Fatal("training must cost more than a forward pass, and a higher LoRA rank more")
	}
	f := m.MemoryFit()
	if f.SampleBase+3*f.PerImage != m.EstimateBytes(3, false) || f.TrainBase+3*f.TrainPerSample+8*f.PerLoRARank != m.EstimateTrainBytes(3, 8) {
		t.Fatal("the family's memory fit must give the same estimates as EstimateBytes and EstimateTrainBytes")
	}
	// The reordered kernel copies: twice the weights at most, within dnnl.PackedBudget.
	old := dnnl.PackedBudget.Load()
	defer dnnl.PackedBudget.Store(old)
	dnnl.PackedBudget.Store(0)
	none := m.EstimateBytes(1, false)
	dnnl.PackedBudget.Store(1 << 40)
	if got := m.EstimateBytes(1, false) - none; got != 2*m.WeightBytes() {
		t.Fatalf("kernel copies add %d bytes with an unbounded budget, want twice the weights (%d)", got, 2*m.WeightBytes())
	}
	dnnl.PackedBudget.Store(100)
	if got := m.EstimateBytes(1, false) - none; got != min(100, 2*m.WeightBytes()) {
		t.Fatalf("kernel copies add %d bytes with a 100-byte budget", got)
	}
}

func rewardsOf(m *Model) []interface{ WeightBytes() int64 } {
	var out []interface{ WeightBytes() int64 }
	for _, r := range m.rewards {
		out = append(out, r)
	}
	return out
}

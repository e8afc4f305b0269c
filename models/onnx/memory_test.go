package onnx

import (
	"path/filepath"
	"testing"
)

// TestEstimateBytes: the estimate counts the weights once, grows with the batch by at least the
// images the generator writes, costs more for training (and more per LoRA rank), and LargestBatch
// is the boundary of the budget.
func TestEstimateBytes(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "spec.json"), testBackend(t))
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
	budget := m.EstimateTrainBytes(7, 8) + 1
	if b := m.LargestBatch(budget, 100, true, 8); b != 7 {
		t.Fatalf("LargestBatch = %d, want 7", b)
	}
	if b := m.LargestBatch(m.WeightBytes(), 100, false, 0); b != 0 {
		t.Fatalf("LargestBatch under the weights' size = %d, want 0", b)
	}
}

func rewardsOf(m *Model) []interface{ WeightBytes() int64 } {
	var out []interface{ WeightBytes() int64 }
	for _, r := range m.rewards {
		out = append(out, r)
	}
	return out
}

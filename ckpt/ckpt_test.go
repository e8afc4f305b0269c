package ckpt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

func newCtx() *context.Context {
	ctx := context.New()
	ctx.In("model").In("dense").VariableWithValue("weights", [][]float32{{1, 2, 3}, {4, 5, 6}})
	ctx.In("model").VariableWithValue("count", int64(7)) // a scalar
	ctx.In("model").VariableWithValue("bias", []float64{0.5, -0.25})
	ctx.In("other").VariableWithValue("w", []float32{9})
	return ctx
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(newCtx(), "/model", path, map[string]string{"arch": "test"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	meta, err := Load(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["arch"] != "test" {
		t.Errorf("metadata arch = %q, want test", meta["arch"])
	}
	w := ctx.InspectVariable("/model/dense", "weights")
	if w == nil {
		t.Fatal("weights not loaded")
	}
	got := tensors.MustCopyFlatData[float32](w.MustValue())
	if !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) || !slices.Equal(w.Shape().Dimensions, []int{2, 3}) {
		t.Errorf("weights = %v %v", got, w.Shape())
	}
	c := ctx.InspectVariable("/model", "count")
	if c == nil || c.Shape().Rank() != 0 || c.MustValue().Value().(int64) != 7 {
		t.Errorf("scalar count did not round-trip: %v", c)
	}
	b := ctx.InspectVariable("/model", "bias")
	if b == nil || !slices.Equal(tensors.MustCopyFlatData[float64](b.MustValue()), []float64{0.5, -0.25}) {
		t.Errorf("float64 bias did not round-trip")
	}
	if ctx.InspectVariable("/other", "w") != nil {
		t.Errorf("variable outside the saved scope was saved")
	}
}

func TestEncodeScopes(t *testing.T) {
	data, err := EncodeScopes(newCtx(), []string{"/model/dense", "/other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if _, err := Decode(ctx, data); err != nil {
		t.Fatal(err)
	}
	var names []string
	for v := range ctx.IterVariables() {
		names = append(names, v.ScopeAndName())
	}
	slices.Sort(names)
	want := []string{"/model/dense/weights", "/other/w"}
	if !slices.Equal(names, want) {
		t.Errorf("loaded %v, want %v", names, want)
	}
	if _, err := EncodeScopes(newCtx(), []string{"/nothing"}, nil); err == nil {
		t.Errorf("empty selection should be an error")
	}
}

func TestShapeMismatch(t *testing.T) {
	data, err := Encode(newCtx(), "/model", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	ctx.In("model").In("dense").VariableWithValue("weights", [][]float32{{1, 2}, {3, 4}})
	_, err = Decode(ctx, data)
	if err == nil {
		t.Fatal("loading [2,3] weights into a [2,2] variable succeeded")
	}
	if !strings.Contains(err.Error(), "/model/dense/weights") || !strings.Contains(err.Error(), "[2 3]") {
		t.Errorf("error should name the variable and both shapes: %v", err)
	}
}

func TestCheckShapes(t *testing.T) {
	data, err := Encode(newCtx(), "/model", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newCtx()
	ctx.In("model").VariableWithValue("extra", []float32{1})
	if err := CheckShapes(ctx, "/model", data); err == nil || !strings.Contains(err.Error(), "/model/extra") {
		t.Errorf("CheckShapes should report the missing /model/extra, got %v", err)
	}
	if err := CheckShapes(newCtx(), "/model", data); err != nil {
		t.Errorf("CheckShapes on the same model: %v", err)
	}
}

func TestBadFile(t *testing.T) {
	if _, err := Decode(context.New(), []byte("not a safetensors file")); err == nil {
		t.Error("decoding garbage succeeded")
	}
	if _, err := Load(context.New(), filepath.Join(t.TempDir(), "missing.safetensors")); err == nil {
		t.Error("loading a missing file succeeded")
	}
}

func TestAtomicWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "cfg.json")
	if err := WriteJSON(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(path, map[string]int{"a": 2}); err != nil { // overwrite
		t.Fatal(err)
	}
	var got map[string]int
	if err := ReadJSON(path, &got); err != nil || got["a"] != 2 {
		t.Fatalf("ReadJSON = %v, %v", got, err)
	}
	if err := Save(newCtx(), "/", filepath.Join(dir, "sub", "all.safetensors"), nil); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"all.safetensors", "cfg.json"}) {
		t.Errorf("directory holds %v: temporary files left behind?", names)
	}
	// A failed write (target is a directory) leaves no temporary file either.
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x")); err == nil {
		t.Error("writing over a directory succeeded")
	}
	entries, _ = os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left after a failed write", e.Name())
		}
	}
	if err := ReadJSON(filepath.Join(dir, "sub", "all.safetensors"), &got); err == nil || !strings.Contains(err.Error(), "all.safetensors") {
		t.Errorf("ReadJSON of a non-JSON file should fail naming it, got %v", err)
	}
}

package ckpt

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nlpodyssey/safetensors"
)

func encoded(t testing.TB) []byte {
	t.Helper()
	data, err := Encode(newCtx(), "/", map[string]string{"arch": "test"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDigestDetectsFlippedBytes is issue 12's case 1: flipped bytes inside the tensor data loaded
// silently. Every single-byte change of the data section must now be refused.
func TestDigestDetectsFlippedBytes(t *testing.T) {
	data := encoded(t)
	for i := len(data) - 40; i < len(data); i++ {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		ctx := context.New()
		if _, err := Decode(ctx, bad); err == nil {
			t.Fatalf("byte %d of %d flipped: loaded without error", i, len(data))
		}
		if n := len(collectVars(ctx)); n != 0 {
			t.Fatalf("refused file still created %d variables", n)
		}
	}
}

func collectVars(ctx *context.Context) []string {
	var out []string
	for v := range ctx.IterVariables() {
		out = append(out, v.ScopeAndName())
	}
	return out
}

// TestEncodeRefusesNonFinite: weights with NaN or Inf are never written.
func TestEncodeRefusesNonFinite(t *testing.T) {
	ctx := context.New()
	ctx.In("m").VariableWithValue("w", []float32{1, float32(math.NaN())})
	if _, err := Encode(ctx, "/m", nil); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Fatalf("Encode with NaN: err = %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	if err := Save(ctx, "/m", path, nil); err == nil {
		t.Fatal("Save with NaN succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a NaN file was written")
	}
}

// foreignFile is a safetensors file written by another tool (no digest) with one float32 tensor.
func foreignFile(t *testing.T, name string, values []float32) []byte {
	t.Helper()
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	view, err := safetensors.NewTensorView(safetensors.F32, []uint64{uint64(len(values))}, raw)
	if err != nil {
		t.Fatal(err)
	}
	data, err := safetensors.Serialize(map[string]safetensors.TensorView{name: view}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDecodeRefusesNonFinite is issue 12's case 1, NaN bytes: a file holding NaN (here one written
// by another tool, so without a digest) loaded and gave black images.
func TestDecodeRefusesNonFinite(t *testing.T) {
	bad := foreignFile(t, "/m/w", []float32{1, float32(math.NaN())})
	if _, err := Decode(context.New(), bad); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Fatalf("NaN data: err = %v", err)
	}
	inf := foreignFile(t, "/m/w", []float32{float32(math.Inf(-1))})
	if _, err := Decode(context.New(), inf); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Fatalf("Inf data: err = %v", err)
	}
	good := foreignFile(t, "/m/w", []float32{1, 2})
	if _, err := Decode(context.New(), good); err != nil {
		t.Fatalf("finite foreign file refused: %v", err)
	}
	if _, err := DecodeWith(context.New(), good, LoadOptions{RequireDigest: true}); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("file without digest accepted when required: %v", err)
	}
}

// TestDecodeScopeAndShapes is issue 12's case 1, foreign tensors: a hypernetwork file holding a
// base-model tensor overwrote the generator. With Scopes set, anything outside is refused and
// nothing is changed.
func TestDecodeScopeAndShapes(t *testing.T) {
	src := context.New()
	src.In("hypernet").VariableWithValue("a", []float32{1, 2})
	src.In("student").VariableWithValue("w", []float32{9, 9})
	data, err := Encode(src, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := context.New()
	dst.In("student").VariableWithValue("w", []float32{3, 4})
	dst.In("hypernet").VariableWithValue("a", []float32{0, 0})
	_, err = DecodeWith(dst, data, LoadOptions{Scopes: []string{"/hypernet"}, Existing: true})
	if err == nil || !strings.Contains(err.Error(), "/student/w") {
		t.Fatalf("err = %v, want a refusal naming /student/w", err)
	}
	if got := tensors.MustCopyFlatData[float32](dst.InspectVariable("/student", "w").MustValue()); got[0] != 3 {
		t.Fatalf("student weight overwritten: %v", got)
	}
	if got := tensors.MustCopyFlatData[float32](dst.InspectVariable("/hypernet", "a").MustValue()); got[0] != 0 {
		t.Fatalf("refused file partly loaded: %v", got)
	}
	// Wrong shape, unknown variable, missing variable.
	other := context.New()
	other.In("hypernet").VariableWithValue("a", []float32{1, 2, 3})
	data3, _ := Encode(other, "/hypernet", nil)
	if _, err := DecodeWith(dst, data3, LoadOptions{Scopes: []string{"/hypernet"}, Existing: true}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: err = %v", err)
	}
	unk := context.New()
	unk.In("hypernet").VariableWithValue("zzz", []float32{1, 2})
	unk.In("hypernet").VariableWithValue("a", []float32{1, 2})
	data4, _ := Encode(unk, "/hypernet", nil)
	if _, err := DecodeWith(dst, data4, LoadOptions{Scopes: []string{"/hypernet"}, Existing: true}); err == nil || !strings.Contains(err.Error(), "zzz") {
		t.Errorf("unknown variable: err = %v", err)
	}
	dst.In("hypernet").VariableWithValue("b", []float32{0})
	data5, _ := Encode(src, "/hypernet", nil)
	if _, err := DecodeWith(dst, data5, LoadOptions{Scopes: []string{"/hypernet"}, Existing: true, Complete: true}); err == nil || !strings.Contains(err.Error(), "/hypernet/b") {
		t.Errorf("incomplete file: err = %v", err)
	}
}

// TestRequireDigest: a file without the digest is refused when the digest is required.
func TestRequireDigest(t *testing.T) {
	data := encoded(t)
	if _, err := DecodeWith(context.New(), data, LoadOptions{RequireDigest: true}); err != nil {
		t.Fatalf("own file refused: %v", err)
	}
}

// TestStaleTempsRemoved is issue 12's case 2: interrupted writes left .tmp files forever. The next
// write of the same path removes them.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.json")
	stale := filepath.Join(dir, ".w.json.tmp12345")
	other := filepath.Join(dir, ".x.json.tmp1")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFileAtomic(path, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temp file of the same path survived the next write")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("temp file of another path was removed")
	}
}

// FuzzDecode feeds arbitrary bytes to the checkpoint decoder: it must return an error or load only
// finite tensors, never panic, and leave the context untouched when it refuses.
func FuzzDecode(f *testing.F) {
	f.Add(encoded(f))
	ctx := context.New()
	ctx.In("s").VariableWithValue("x", float32(1))
	one, _ := Encode(ctx, "/", nil)
	f.Add(one)
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Add([]byte(`{"__metadata__":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.New()
		_, err := Decode(ctx, data)
		if err != nil {
			if n := len(collectVars(ctx)); n != 0 {
				t.Fatalf("refused (%v) but created %d variables", err, n)
			}
			return
		}
		for v := range ctx.IterVariables() {
			val := v.MustValue()
			if val.Shape().Memory() > uintptr(len(data)) {
				t.Fatalf("variable %s (%s) larger than the input", v.ScopeAndName(), val.Shape())
			}
		}
		// An accepted file re-encodes and decodes again.
		again, err := Encode(ctx, "/", nil)
		if err != nil {
			if strings.Contains(err.Error(), "no variables") {
				return
			}
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		if _, err := Decode(context.New(), again); err != nil {
			t.Fatalf("re-encoded file refused: %v", err)
		}
	})
}

// TestLockDir: a second lock on the same folder fails at once, naming it; after unlock it works.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); err == nil || !strings.Contains(err.Error(), "another process is writing") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	u2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	u2()
}

// TestRemoveEmptyRun: a run folder holding only its lock file is removed; one holding anything
// else is kept whole.
func TestRemoveEmptyRun(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "run")
	unlock, err := LockDir(empty)
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveEmptyRun(empty); err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("the empty run folder is still there (stat: %v)", err)
	}
	kept := filepath.Join(t.TempDir(), "run")
	unlock, err = LockDir(kept)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := os.WriteFile(filepath.Join(kept, "checkpoint.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEmptyRun(kept); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(kept, "checkpoint.json")); err != nil {
		t.Errorf("a folder with a checkpoint was touched: %v", err)
	}
}

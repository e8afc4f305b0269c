package shim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds mutated ONNX files to the loader: it must return a model or a *FileError or
// *UnsupportedError, never panic (a corrupt shape is an error, not a huge allocation).
func FuzzLoad(f *testing.F) {
	seedONNX(f, "gen.onnx", "reward_odd.onnx")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parse("fuzz.onnx", data)
		if err == nil {
			return
		}
		var fe *FileError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}

// FuzzWeightBytesOf feeds mutated ONNX files to the header scan: it returns a size or a *FileError,
// never panics, and on a file the loader accepts it gives the loaded model's WeightBytes.
func FuzzWeightBytesOf(f *testing.F) {
	seedONNX(f, "gen.onnx", "gen_fp16.onnx", "reward_odd.onnx")
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "fuzz.onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := WeightBytesOf(p)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if m, lerr := parse(p, data); lerr == nil && n != m.WeightBytes() {
			t.Fatalf("scan %d, loaded model's weights %d", n, m.WeightBytes())
		}
	})
}

// seedONNX adds each named fixture, its first third, and a non-ONNX file to f's corpus.
func seedONNX(f *testing.F, names ...string) {
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/3])
	}
	f.Add([]byte("not an onnx file"))
}

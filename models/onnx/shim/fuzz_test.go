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
	for _, name := range []string{"gen.onnx", "reward_odd.onnx"} {
		data, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/3])
	}
	f.Add([]byte("not an onnx file"))
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

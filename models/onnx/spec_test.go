package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseSpec feeds arbitrary bytes to the spec parser: it must return a spec that passes its own
// checks or a *SpecError, never panic. The seed corpus (testdata/fuzz/FuzzParseSpec) holds the
// fixture spec and broken variants.
func FuzzParseSpec(f *testing.F) {
	data, err := os.ReadFile(fixtureSpec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec("fuzz.json", b)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("not a SpecError: %T %v", err, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if err := s.check("again"); err != nil {
			t.Fatalf("accepted spec fails its own check: %v", err)
		}
	})
}

// TestParseSpecErrors checks messages for spec mistakes the fuzzer cannot judge.
func TestParseSpecErrors(t *testing.T) {
	cases := map[string]string{
		``:                 "empty or truncated JSON",
		`{"name": "x"`:     "truncated",
		`[1, 2]`:           "must be an object",
		`{"name": 3}`:      `field "name": must be a string`,
		`{"name": "a b"}`:  `field "name": "a b" must have no`,
		`{"name": "m"} {}`: "trailing data",
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o"}}`:                                                                                                                     `"generator.noise_shape": missing`,
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4, 0]}}`:                                                                                              "each dimension must be in [1, 1048576]",
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4], "layout": "CHW"}}`:                                                                                `"generator.layout"`,
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4], "range": [1, 0]}}`:                                                                                `"generator.range"`,
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4]}}`:                                                                                                 `"rewards": missing`,
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4]}, "rewards": {"r=1": {"onnx": "r.onnx", "image_input": "i", "output": "s"}}}`:                      `reward name "r=1"`,
		`{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4]}, "rewards": {"r": {"onnx": "r.onnx", "image_input": "i"}}}`:                                       `"rewards.r.output": missing`,
		`{"name": "m", "prompts": ["a", "a"], "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4]}, "rewards": {"r": {"onnx": "r.onnx", "image_input": "i", "output": "s"}}}`: `same prompt as prompts[0]`,
	}
	for in, want := range cases {
		_, err := ParseSpec("s.json", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", in, err, want)
		}
	}
}

func TestSeedCorpusExists(t *testing.T) {
	files, _ := filepath.Glob("testdata/fuzz/FuzzParseSpec/*")
	if len(files) == 0 {
		t.Fatal("no committed seed corpus in testdata/fuzz/FuzzParseSpec")
	}
}

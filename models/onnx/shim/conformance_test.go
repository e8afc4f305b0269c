package shim

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// conformanceDir is where Debian's libonnx-testdata installs the ONNX node conformance tests.
const conformanceDir = "/usr/share/libonnx-testdata/data/node"

// conformanceCase runs one ONNX node test folder (model.onnx + test_data_set_*/{input,output}_N.pb):
// float inputs are graph parameters, integer and boolean inputs constants (as in a traced model,
// where shapes and axes are static). It returns errUnsupported when Load refuses the model.
func conformanceCase(be backends.Backend, dir string) (ops []string, err error) {
	m, err := Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return nil, err
	}
	ops = m.Ops()
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return ops, fmt.Errorf("no test data")
	}
	for _, set := range sets {
		var inputs, outputs []*tensors.Tensor
		for i := range m.Inputs {
			t, err := readPB(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				return ops, err
			}
			inputs = append(inputs, t)
		}
		for i := range m.Outputs {
			t, err := readPB(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				return ops, err
			}
			outputs = append(outputs, t)
		}
		var got []*tensors.Tensor
		err := tryCatch(func() {
			ctx := context.New()
			m.CreateVariables(ctx)
			var params []*tensors.Tensor
			var paramIdx []int
			for i, t := range inputs {
				if isData(t) {
					params = append(params, t)
					paramIdx = append(paramIdx, i)
				}
			}
			var outNames []string
			for _, o := range m.Outputs {
				outNames = append(outNames, o.Name)
			}
			// Probe: when every output folds to a constant there is nothing to execute.
			probe := NewGraph(be, "probe")
			feed := map[string]*Node{}
			for i, t := range inputs {
				if isData(t) {
					feed[m.Inputs[i].Name] = Parameter(probe, fmt.Sprint("p", i), t.Shape())
				} else {
					feed[m.Inputs[i].Name] = Const(probe, t)
				}
			}
			allConst := true
			var folded []*tensors.Tensor
			for _, o := range m.Call(ctx, probe, feed, outNames...) {
				if o.Type() != NodeTypeConstant || o.ConstantValue() == nil { // GoMLX keeps only small values
					allConst = false
					break
				}
				folded = append(folded, o.ConstantValue())
			}
			if allConst {
				got = folded
				return
			}
			constVals := map[int]*tensors.Tensor{}
			e, err := context.NewExec(be, ctx, func(ctx *context.Context, ps []*Node) []*Node {
				feed := map[string]*Node{}
				g := ps[0].Graph()
				for i, t := range inputs {
					if !isData(t) {
						feed[m.Inputs[i].Name] = Const(g, t)
					}
				}
				for k, i := range paramIdx {
					feed[m.Inputs[i].Name] = ps[k+1] // ps[0] is a dummy, so that the graph always has a parameter
				}
				outs := m.Call(ctx, g, feed, outNames...)
				// Constant outputs are read directly; every parameter feeds an extra "anchor"
				// output, so that none is unused (the pure-Go backend refuses unused parameters).
				anchor := ps[0]
				for _, p := range ps[1:] {
					anchor = Add(anchor, ReduceAllSum(ConvertDType(p, anchor.DType())))
				}
				var ret []*Node
				for i, o := range outs {
					if o.Type() == NodeTypeConstant && o.ConstantValue() != nil {
						constVals[i] = o.ConstantValue()
						continue
					}
					if o.Type() == NodeTypeParameter {
						o = Identity(o)
					}
					ret = append(ret, o)
				}
				return append(ret, Neg(anchor)) // (a bare parameter as an output fails in the pure-Go backend)
			})
			if err != nil {
				panic(err)
			}
			args := []any{float32(0)}
			for _, p := range params {
				args = append(args, p)
			}
			res, err := e.Exec(args...)
			if err != nil {
				panic(err)
			}
			got = make([]*tensors.Tensor, len(outputs))
			k := 0
			for i := range got {
				if v, ok := constVals[i]; ok {
					got[i] = v
				} else {
					got[i] = res[k]
					k++
				}
			}
		})
		if err != nil {
			return ops, err
		}
		for i, want := range outputs {
			var err error
			if e := tryCatch(func() { err = closeTo(got[i], want) }); e != nil {
				err = e
			}
			if err != nil {
				return ops, fmt.Errorf("%s output %d: %w", filepath.Base(set), i, err)
			}
		}
	}
	return ops, nil
}

// isData reports whether a test input is fed as a graph parameter: floating-point tensors other
// than short vectors (scales, ranges), which are constants in a traced model, like integer inputs.
func isData(t *tensors.Tensor) bool {
	return t.DType().IsFloat() && (t.Rank() >= 2 || t.Size() > 8)
}

func tryCatch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
			if os.Getenv("SHIM_DEBUG") != "" {
				debug.PrintStack()
			}
		}
	}()
	fn()
	return nil
}

func readPB(path string) (*tensors.Tensor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, _, err := decodeTensor(data, filepath.Dir(path))
	return t, err
}

// closeTo compares with ONNX's backend-test tolerance: |got - want| <= 1e-7 + 1e-3 |want|
// (float32 and float64), exact for other types; shapes must match.
func closeTo(got, want *tensors.Tensor) error {
	if !got.Shape().Equal(want.Shape()) {
		return fmt.Errorf("shape %s, want %s", got.Shape(), want.Shape())
	}
	g, w := flat64(got), flat64(want)
	exact := !want.DType().IsFloat()
	for i := range w {
		if math.IsNaN(w[i]) && math.IsNaN(g[i]) || g[i] == w[i] {
			continue
		}
		if exact || math.Abs(g[i]-w[i]) > 1e-5+1e-3*math.Abs(w[i]) {
			return fmt.Errorf("element %d is %g, want %g", i, g[i], w[i])
		}
	}
	return nil
}

func flat64(t *tensors.Tensor) []float64 {
	var out []float64
	t.MustConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []float32:
			out = conv64(v)
		case []float64:
			out = v
		case []int64:
			out = conv64(v)
		case []int32:
			out = conv64(v)
		case []int16:
			out = conv64(v)
		case []int8:
			out = conv64(v)
		case []uint64:
			out = conv64(v)
		case []uint32:
			out = conv64(v)
		case []uint16:
			out = conv64(v)
		case []uint8:
			out = conv64(v)
		case []bool:
			for _, x := range v {
				out = append(out, map[bool]float64{false: 0, true: 1}[x])
			}
		default:
			panic(fmt.Errorf("unexpected dtype %s", t.DType()))
		}
	})
	return out
}

func conv64[T float32 | int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestConformance runs every ONNX node test whose operations we all claim to support, and checks
// that each op we claim is exercised by at least one passing test.
func TestConformance(t *testing.T) {
	if _, err := os.Stat(conformanceDir); err != nil {
		t.Skipf("ONNX conformance tests not installed (%v): apt-get install libonnx-testdata", err)
	}
	be := testutil.Backend(t)
	dirs, _ := filepath.Glob(filepath.Join(conformanceDir, "test_*"))
	passed := map[string]int{}
	cases, refused, known := 0, 0, 0
	var failures []string
	for _, dir := range dirs {
		name := filepath.Base(dir)
		ops, err := conformanceCase(be, dir)
		var ue *UnsupportedError
		var fe *FileError
		switch {
		case errors.As(err, &ue) || errors.As(err, &fe):
			refused++
			continue // refused at load, with a clear error: not a claim we make
		case err != nil:
			if why, ok := knownFailures[name]; ok {
				known++
				t.Logf("%s: known limitation (%s): %v", name, why, firstLine(err))
				continue
			}
			failures = append(failures, fmt.Sprintf("%s %v: %v", name, ops, firstLine(err)))
		default:
			cases++
			for _, op := range ops {
				passed[op]++
			}
			if _, ok := knownFailures[name]; ok {
				t.Errorf("%s passes now: remove it from knownFailures", name)
			}
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	var missing []string
	for op := range ours {
		if passed[op] == 0 && !noConformanceTest[op] {
			missing = append(missing, op)
		}
	}
	for op := range delegated {
		if passed[op] == 0 && !noConformanceTest[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("ops we support with no passing conformance test: %v", missing)
	}
	t.Logf("%d node tests pass, exercising %d ops; %d refused at load (unsupported ops or configurations); %d known limitations",
		cases, len(passed), refused, known)
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// knownFailures are conformance tests of supported ops that fail for a documented reason.
var knownFailures = map[string]string{
	"test_slice_start_out_of_bounds": "an empty slice: GoMLX cannot slice to zero length",
	"test_split_zero_size_splits":    "zero-size tensors: GoMLX cannot slice to zero length",
}

// noConformanceTest are supported ops with no test in libonnx-testdata 1.12 (GroupNormalization is
// opset 18, Gelu opset 20); ops_test.go checks them.
var noConformanceTest = map[string]bool{"GroupNormalization": true, "Gelu": true}

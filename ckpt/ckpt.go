// Package ckpt saves and loads model weights as safetensors files (one tensor per GoMLX variable,
// named by its full scope path, e.g. "/student/dense_0/weights") with a JSON config beside them.
// Every write is atomic: a temporary file in the same folder, fsync, then rename, so a crash
// never leaves a half-written checkpoint behind.
package ckpt

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nlpodyssey/safetensors"
)

// scalarKey marks, in the safetensors metadata, tensors that are scalars in GoMLX (safetensors
// libraries disagree on shape [], so scalars are stored with shape [1]).
const scalarKey = "hypernoise.scalars"

// WriteFileAtomic writes data to path via a temporary file and a rename.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600 files; checkpoints are ordinary files
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON to path, atomically.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// ReadJSON reads path into v, with the file name in any error.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// inScope reports whether a variable scope is scope itself or below it ("/" matches everything).
func inScope(varScope, scope string) bool {
	if scope == "" || scope == context.ScopeSeparator {
		return true
	}
	return varScope == scope || strings.HasPrefix(varScope, scope+context.ScopeSeparator)
}

// Encode serializes the float32/float64/int32/int64 variables of ctx whose scope is at or below
// scope (e.g. "/hypernet"; "/" for all) into safetensors bytes, with the given metadata.
func Encode(ctx *context.Context, scope string, metadata map[string]string) ([]byte, error) {
	return EncodeScopes(ctx, []string{scope}, metadata)
}

// EncodeScopes is Encode for the variables under any of several scopes (e.g. a model's and its
// optimizer state's), in one file.
func EncodeScopes(ctx *context.Context, scopes []string, metadata map[string]string) ([]byte, error) {
	if len(scopes) == 0 {
		return nil, fmt.Errorf("no scopes to save")
	}
	views := map[string]safetensors.TensorView{}
	var scalars []string
	for v := range ctx.IterVariables() {
		selected := false
		for _, scope := range scopes {
			selected = selected || inScope(v.Scope(), scope)
		}
		if !selected {
			continue
		}
		st, ok := toSTDType(v.DType())
		if !ok {
			continue // e.g. the RNG state: not model weights
		}
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("variable %s has no value: %w", v.ScopeAndName(), err)
		}
		var data []byte
		if err := t.ConstBytes(func(b []byte) { data = append([]byte(nil), b...) }); err != nil {
			return nil, err
		}
		dims := make([]uint64, 0, t.Rank())
		for _, d := range t.Shape().Dimensions {
			dims = append(dims, uint64(d))
		}
		if len(dims) == 0 {
			dims = []uint64{1}
			scalars = append(scalars, v.ScopeAndName())
		}
		view, err := safetensors.NewTensorView(st, dims, data)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		views[v.ScopeAndName()] = view
	}
	if len(views) == 0 {
		return nil, fmt.Errorf("no variables under scope %s to save", strings.Join(scopes, ", "))
	}
	meta := map[string]string{}
	for k, v := range metadata {
		meta[k] = v
	}
	sort.Strings(scalars)
	meta[scalarKey] = strings.Join(scalars, ",")
	return safetensors.Serialize(views, meta)
}

// Save writes the variables under scope to path (a .safetensors file), atomically.
func Save(ctx *context.Context, scope, path string, metadata map[string]string) error {
	data, err := Encode(ctx, scope, metadata)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// SaveScopes writes the variables under any of scopes to path, atomically; see EncodeScopes.
func SaveScopes(ctx *context.Context, scopes []string, path string, metadata map[string]string) error {
	data, err := EncodeScopes(ctx, scopes, metadata)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// Load reads a safetensors file written by Save into ctx; see Decode.
func Load(ctx *context.Context, path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	meta, err := Decode(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return meta, nil
}

// Decode loads safetensors bytes into ctx: each tensor becomes (or overwrites) the variable at its
// scope path. A variable that already exists with another shape or dtype is an error naming both.
// It returns the file's metadata.
func Decode(ctx *context.Context, data []byte) (map[string]string, error) {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid safetensors file: %w", err)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return nil, err
	}
	meta := md.Metadata()
	scalars := map[string]bool{}
	for _, s := range strings.Split(meta[scalarKey], ",") {
		if s != "" {
			scalars[s] = true
		}
	}
	for _, nv := range st.Tensors() {
		scope, name := context.SplitScope(nv.Name)
		if scope == "" || name == "" {
			return nil, fmt.Errorf("tensor name %q is not a variable path like /scope/name", nv.Name)
		}
		dt, ok := fromSTDType(nv.TensorView.DType())
		if !ok {
			return nil, fmt.Errorf("tensor %s has unsupported dtype %s", nv.Name, nv.TensorView.DType())
		}
		var dims []int
		if !scalars[nv.Name] {
			for _, d := range nv.TensorView.Shape() {
				dims = append(dims, int(d))
			}
		}
		shape := shapes.Make(dt, dims...)
		if uint64(shape.Memory()) != nv.TensorView.DataLen() {
			return nil, fmt.Errorf("tensor %s: %d bytes for shape %s", nv.Name, nv.TensorView.DataLen(), shape)
		}
		t := tensors.FromShape(shape)
		if err := t.MutableBytes(func(b []byte) { copy(b, nv.TensorView.Data()) }); err != nil {
			return nil, err
		}
		if v := ctx.InspectVariable(scope, name); v != nil {
			if !v.Shape().Equal(shape) {
				return nil, fmt.Errorf("checkpoint tensor %s has shape %s but the model expects %s",
					nv.Name, shape, v.Shape())
			}
			if err := v.SetValue(t); err != nil {
				return nil, err
			}
			continue
		}
		ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, t)
	}
	return meta, nil
}

// CheckShapes compares the variables of ctx under scope with a checkpoint's tensors (the result of
// building the model after Decode): it reports variables the model created that the checkpoint
// did not have, which means the checkpoint belongs to another architecture.
func CheckShapes(ctx *context.Context, scope string, data []byte) error {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range st.Names() {
		have[n] = true
	}
	var missing []string
	for v := range ctx.IterVariables() {
		if _, ok := toSTDType(v.DType()); ok && inScope(v.Scope(), scope) && !have[v.ScopeAndName()] {
			missing = append(missing, v.ScopeAndName())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("checkpoint lacks %d variable(s) the model needs, e.g. %s", len(missing), missing[0])
	}
	return nil
}

func toSTDType(dt dtypes.DType) (safetensors.DType, bool) {
	switch dt {
	case dtypes.Float32:
		return safetensors.F32, true
	case dtypes.Float64:
		return safetensors.F64, true
	case dtypes.Int32:
		return safetensors.I32, true
	case dtypes.Int64:
		return safetensors.I64, true
	}
	return 0, false
}

func fromSTDType(dt safetensors.DType) (dtypes.DType, bool) {
	switch dt {
	case safetensors.F32:
		return dtypes.Float32, true
	case safetensors.F64:
		return dtypes.Float64, true
	case safetensors.I32:
		return dtypes.Int32, true
	case safetensors.I64:
		return dtypes.Int64, true
	}
	return 0, false
}

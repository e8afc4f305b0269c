// Package ckpt saves and loads model weights as safetensors files (one tensor per GoMLX variable,
// named by its full scope path, e.g. "/student/dense_0/weights") with a JSON config beside them.
// Every write is atomic: a temporary file in the same folder, fsync, then rename, so a crash
// never leaves a half-written checkpoint behind.
package ckpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/finitejson"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"github.com/nlpodyssey/safetensors"
)

// scalarKey marks, in the safetensors metadata, tensors that are scalars in GoMLX (safetensors
// libraries disagree on shape [], so scalars are stored with shape [1]).
const scalarKey = "hypernoise.scalars"

// WriteFileAtomic writes data to path atomically (a temporary file in the same folder, fsync,
// rename); only a new path or a regular file (or a link to one) is replaced, anything else is
// refused. See safeio.WriteFileAtomic.
func WriteFileAtomic(path string, data []byte) error { return safeio.WriteFileAtomic(path, data) }

// RemoveStaleTemps deletes the temporary files an interrupted WriteFileAtomic of path left behind,
// and returns how many it removed.
func RemoveStaleTemps(path string) int { return safeio.RemoveStaleTemps(path) }

// WriteJSON writes v as indented JSON to path, atomically; a non-finite number (NaN, ±Inf) is
// written as null (see finitejson).
func WriteJSON(path string, v any) error {
	data, _, err := finitejson.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// ReadJSON reads path into v, with the file name in any error.
func ReadJSON(path string, v any) error {
	data, err := safeio.ReadFile(path, safeio.JSON)
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
	raw := map[string]TensorData{}
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
		if bad := countNonFinite(t.DType(), data); bad > 0 {
			return nil, fmt.Errorf("variable %s holds %d non-finite value(s) (NaN or Inf); refusing to write it", v.ScopeAndName(), bad)
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
		raw[v.ScopeAndName()] = TensorData{DType: st, Dims: dims, Data: data}
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
	delete(meta, digestKey)
	meta[digestKey] = Digest(meta, raw)
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
	data, err := ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	meta, err := Decode(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return meta, nil
}

// digestKey holds, in the safetensors metadata, the SHA-256 of the file's content (see Digest), so
// a damaged file is detected on load.
const digestKey = "hypernoise.sha256"

// Digest is the SHA-256 (hex) over a checkpoint's content: the metadata entries (except the digest
// itself) and the tensors, each by name in sorted order, with dtype, dimensions and raw bytes.
func Digest(meta map[string]string, tensors map[string]TensorData) string {
	h := sha256.New()
	var b [8]byte
	writeStr := func(s string) {
		binary.LittleEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		if k != digestKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		writeStr(k)
		writeStr(meta[k])
	}
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := tensors[n]
		writeStr(n)
		writeStr(t.DType.String())
		binary.LittleEndian.PutUint64(b[:], uint64(len(t.Dims)))
		h.Write(b[:])
		for _, d := range t.Dims {
			binary.LittleEndian.PutUint64(b[:], d)
			h.Write(b[:])
		}
		binary.LittleEndian.PutUint64(b[:], uint64(len(t.Data)))
		h.Write(b[:])
		h.Write(t.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TensorData is one tensor of a checkpoint as stored: safetensors dtype, dimensions and raw
// little-endian bytes.
type TensorData struct {
	DType safetensors.DType
	Dims  []uint64
	Data  []byte
}

// FileSHA256 is the SHA-256 (hex) of a whole file's bytes.
func FileSHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// LoadOptions restricts what Decode accepts. The zero value accepts any tensor (creating missing
// variables) and checks the digest only when the file has one.
type LoadOptions struct {
	// Scopes, if set, are the only scopes (with everything below them) a tensor may belong to;
	// any other tensor (e.g. a base-model weight inside a hypernetwork file) is an error.
	Scopes []string
	// Existing requires every tensor to match a variable already in ctx, with the same dtype and
	// shape: the model is built first and the file may only fill it in.
	Existing bool
	// Complete requires every float/int variable of ctx under Scopes to be in the file.
	Complete bool
	// RequireDigest refuses a file without the content digest that Encode writes.
	RequireDigest bool
}

// Decode loads safetensors bytes into ctx with the default LoadOptions; see DecodeWith.
func Decode(ctx *context.Context, data []byte) (map[string]string, error) {
	return DecodeWith(ctx, data, LoadOptions{})
}

// DecodeWith loads safetensors bytes into ctx: each tensor becomes (or overwrites) the variable at
// its scope path. Everything is checked before any variable changes, so a refused file leaves ctx
// as it was: the content digest (if present, or if opts require it), finite float values, sizes
// consistent with shapes, a variable that already exists having the same shape and dtype, and
// opts' scope and completeness rules. It returns the file's metadata. It never panics and
// allocates no more than the input's size per tensor.
func DecodeWith(ctx *context.Context, data []byte, opts LoadOptions) (meta map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			meta, err = nil, fmt.Errorf("not a valid safetensors file: %v", r)
		}
	}()
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid safetensors file: %w", err)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid safetensors file: %w", err)
	}
	meta = md.Metadata()
	raw := map[string]TensorData{}
	for _, nv := range st.Tensors() {
		raw[nv.Name] = TensorData{DType: nv.TensorView.DType(), Dims: nv.TensorView.Shape(), Data: nv.TensorView.Data()}
	}
	if want, ok := meta[digestKey]; ok {
		if got := Digest(meta, raw); got != want {
			return nil, fmt.Errorf("content does not match its SHA-256 (file damaged or edited)")
		}
	} else if opts.RequireDigest {
		return nil, fmt.Errorf("file has no content digest (%s); it was not written by this version of hypernoise", digestKey)
	}
	scalars := map[string]bool{}
	for _, s := range strings.Split(meta[scalarKey], ",") {
		if s != "" {
			scalars[s] = true
		}
	}
	type pending struct {
		scope, name string
		t           *tensors.Tensor
		existing    *context.Variable
	}
	var todo []pending
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, fullName := range names {
		td := raw[fullName]
		scope, name := context.SplitScope(fullName)
		if scope == "" || name == "" || !strings.HasPrefix(fullName, context.ScopeSeparator) {
			return nil, fmt.Errorf("tensor name %q is not a variable path like /scope/name", fullName)
		}
		if len(opts.Scopes) > 0 && !inAnyScope(scope, opts.Scopes) {
			return nil, fmt.Errorf("tensor %s is outside the scope this file may hold (%s)", fullName, strings.Join(opts.Scopes, ", "))
		}
		dt, dims, err := checkTensor(fullName, td, scalars[fullName], len(data))
		if err != nil {
			return nil, err
		}
		shape := shapes.Make(dt, dims...)
		v := ctx.InspectVariable(scope, name)
		if v != nil && !v.Shape().Equal(shape) {
			return nil, fmt.Errorf("checkpoint tensor %s has shape %s but the model expects %s", fullName, shape, v.Shape())
		}
		if v == nil && opts.Existing {
			return nil, fmt.Errorf("tensor %s is not a variable of this model (file from another architecture?)", fullName)
		}
		t := tensors.FromShape(shape)
		if err := t.MutableBytes(func(b []byte) { copy(b, td.Data) }); err != nil {
			return nil, err
		}
		todo = append(todo, pending{scope: scope, name: name, t: t, existing: v})
	}
	if opts.Complete {
		if missing := missingVariables(ctx, raw, opts.Scopes); len(missing) > 0 {
			return nil, fmt.Errorf("checkpoint lacks %d variable(s) the model needs, e.g. %s", len(missing), missing[0])
		}
	}
	for _, p := range todo {
		if p.existing != nil {
			if err := p.existing.SetValue(p.t); err != nil {
				return nil, err
			}
			continue
		}
		ctx.InAbsPath(p.scope).Checked(false).VariableWithValue(p.name, p.t)
	}
	return meta, nil
}

// checkTensor checks one stored tensor before it is decoded: a supported dtype, a rank of at most 8,
// every dimension and the element count within the file's size (a corrupt header cannot ask for
// more memory than the file holds), the byte count matching the shape, finite values. A scalar is
// stored with shape [1]. It returns the dtype and dims to decode into.
func checkTensor(fullName string, td TensorData, scalar bool, fileSize int) (dt dtypes.DType, dims []int, err error) {
	dt, ok := fromSTDType(td.DType)
	if !ok {
		return 0, nil, fmt.Errorf("tensor %s has unsupported dtype %s", fullName, td.DType)
	}
	elems := uint64(1)
	if !scalar {
		if len(td.Dims) > 8 {
			return 0, nil, fmt.Errorf("tensor %s has rank %d (at most 8 supported)", fullName, len(td.Dims))
		}
		for _, d := range td.Dims {
			if d > uint64(fileSize) && d > 1 { // a dimension can never exceed the file's size
				return 0, nil, fmt.Errorf("tensor %s: dimension %d is larger than the file", fullName, d)
			}
			elems *= d
			if elems > uint64(fileSize) {
				return 0, nil, fmt.Errorf("tensor %s: shape %v is larger than the file", fullName, td.Dims)
			}
			dims = append(dims, int(d))
		}
	} else if len(td.Dims) != 1 || td.Dims[0] != 1 {
		return 0, nil, fmt.Errorf("scalar tensor %s stored with shape %v, want [1]", fullName, td.Dims)
	}
	if elems*uint64(dt.Size()) != uint64(len(td.Data)) {
		return 0, nil, fmt.Errorf("tensor %s: %d bytes for shape %v of %s", fullName, len(td.Data), dims, dt)
	}
	if bad := countNonFinite(dt, td.Data); bad > 0 {
		return 0, nil, fmt.Errorf("tensor %s holds %d non-finite value(s) (NaN or Inf)", fullName, bad)
	}
	return dt, dims, nil
}

// missingVariables lists, sorted, the variables of ctx (in scopes, if any) of a storable dtype
// that raw lacks.
func missingVariables(ctx *context.Context, raw map[string]TensorData, scopes []string) []string {
	var missing []string
	for v := range ctx.IterVariables() {
		if _, ok := toSTDType(v.DType()); ok && (len(scopes) == 0 || inAnyScope(v.Scope(), scopes)) {
			if _, ok := raw[v.ScopeAndName()]; !ok {
				missing = append(missing, v.ScopeAndName())
			}
		}
	}
	sort.Strings(missing)
	return missing
}

func inAnyScope(varScope string, scopes []string) bool {
	for _, s := range scopes {
		if inScope(varScope, s) {
			return true
		}
	}
	return false
}

// countNonFinite counts NaN and Inf values in little-endian float data (0 for integer dtypes).
func countNonFinite(dt dtypes.DType, data []byte) int {
	n := 0
	switch dt {
	case dtypes.Float32:
		for i := 0; i+4 <= len(data); i += 4 {
			f := float64(math.Float32frombits(binary.LittleEndian.Uint32(data[i:])))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				n++
			}
		}
	case dtypes.Float64:
		for i := 0; i+8 <= len(data); i += 8 {
			f := math.Float64frombits(binary.LittleEndian.Uint64(data[i:]))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				n++
			}
		}
	}
	return n
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

// WeightsSHAKey is the key under which SaveWithConfig records the weights file's SHA-256 in the
// JSON config beside it.
const WeightsSHAKey = "weights_sha256"

// configKey holds, in the weights file's metadata, the config it was saved with.
const configKey = "config"

// SaveWithConfig writes the variables under scope to path (a .safetensors file whose metadata
// holds config and scope) and config as JSON to jsonPath, with the weights file's SHA-256 added
// under WeightsSHAKey; config must encode as a JSON object. Both writes are atomic, the weights
// first: a crash between them leaves a pair that LoadVerified refuses, never a mislabelled model.
func SaveWithConfig(ctx *context.Context, scope, path, jsonPath string, config any) error {
	js, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("encoding the config: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
		return fmt.Errorf("the config must encode as a JSON object")
	}
	data, err := Encode(ctx, scope, map[string]string{configKey: string(js), "scope": scope})
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(path, data); err != nil {
		return err
	}
	obj[WeightsSHAKey] = FileSHA256(data)
	return WriteJSON(jsonPath, obj)
}

// ReadConfig reads a JSON config written by SaveWithConfig into config, strictly: unknown fields,
// trailing data and a missing weights hash are errors. It returns the recorded weights SHA-256.
func ReadConfig(jsonPath string, config any) (string, error) {
	data, err := safeio.ReadFile(jsonPath, safeio.JSON)
	if err != nil {
		return "", err
	}
	sha, err := ParseConfig(data, config)
	if err != nil {
		return "", fmt.Errorf("%s: %w", jsonPath, err)
	}
	return sha, nil
}

// ParseConfig is ReadConfig on the file's bytes.
func ParseConfig(data []byte, config any) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return "", fmt.Errorf("not a valid JSON config: %w", err)
	}
	var sha string
	raw, ok := obj[WeightsSHAKey]
	if !ok {
		return "", fmt.Errorf("config has no %s (the weights' integrity check)", WeightsSHAKey)
	}
	if err := json.Unmarshal(raw, &sha); err != nil || len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return "", fmt.Errorf("config's %s is not a SHA-256 in hex", WeightsSHAKey)
	}
	delete(obj, WeightsSHAKey)
	rest, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(strings.NewReader(string(rest)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(config); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return sha, nil
}

// LoadVerified loads the weights at path into ctx after checking them against the JSON config at
// jsonPath (written by SaveWithConfig): the file's SHA-256 must be the one the config records, its
// content digest must hold, and the config stored inside the weights must equal the JSON's (so an
// edited JSON, e.g. another LoRA alpha, is refused, naming the field). opts restrict what tensors
// are accepted (see LoadOptions; a digest is always required). Nothing is loaded on any refusal.
func LoadVerified(ctx *context.Context, path, jsonPath string, opts LoadOptions) (map[string]string, error) {
	js, err := safeio.ReadFile(jsonPath, safeio.JSON)
	if err != nil {
		return nil, err
	}
	data, err := ReadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if _, _, err := DecodeVerified(data, js, path, jsonPath, LoadOptions{}); err != nil {
		return nil, err
	}
	opts.RequireDigest = true
	meta, err := DecodeWith(ctx, data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return meta, nil
}

// DecodeVerified checks weights already read (data, the file at path) against their JSON config
// as read (js, the file at jsonPath) the way LoadVerified does, decoding them once, into a new
// context restricted by opts (a digest is always required), which it returns with the metadata.
func DecodeVerified(data, js []byte, path, jsonPath string, opts LoadOptions) (*context.Context, map[string]string, error) {
	var cfgObj map[string]any
	if err := json.Unmarshal(js, &cfgObj); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", jsonPath, err)
	}
	sha, _ := cfgObj[WeightsSHAKey].(string)
	delete(cfgObj, WeightsSHAKey)
	if got := FileSHA256(data); got != sha {
		return nil, nil, fmt.Errorf("%s does not match %s (SHA-256 %.12s, the config records %.12s): damaged, or from another run",
			path, jsonPath, got, sha)
	}
	opts.RequireDigest = true
	ctx := context.New()
	meta, err := DecodeWith(ctx, data, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var stored map[string]any
	if err := json.Unmarshal([]byte(meta[configKey]), &stored); err != nil {
		return nil, nil, fmt.Errorf("%s holds no valid config: %w", path, err)
	}
	if diff := jsonDiff("", stored, cfgObj); diff != "" {
		return nil, nil, fmt.Errorf("%s differs from the config saved with its weights (%s): edited or mixed up", jsonPath, diff)
	}
	return ctx, meta, nil
}

// jsonDiff names the first few keys (dotted paths) whose values differ between two decoded JSON
// values, as "key: a -> b".
func jsonDiff(prefix string, a, b any) string {
	ma, oka := a.(map[string]any)
	mb, okb := b.(map[string]any)
	if !oka || !okb {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			return fmt.Sprintf("%s: %s -> %s", strings.TrimPrefix(prefix, "."), ja, jb)
		}
		return ""
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var diffs []string
	for _, k := range sorted {
		if d := jsonDiff(prefix+"."+k, ma[k], mb[k]); d != "" {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], "...")
	}
	return strings.Join(diffs, "; ")
}

// maxHeader is the largest safetensors header (JSON) accepted: the format's own limit is 100 MB.
const maxHeader = 100 << 20

// ReadSafetensors reads a safetensors file, checking its size against its header before reading
// the tensors: only a regular file (see safeio) whose length is exactly 8 + header + the largest
// tensor end the header declares is read, so a file of another kind, a truncated one or one padded
// with junk is refused without reading (or allocating) more than its header.
func ReadSafetensors(path string) ([]byte, error) {
	f, err := safeio.OpenRegular(path, safeio.Weights)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head [8]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file (shorter than its 8-byte header length)", path)
	}
	n := binary.LittleEndian.Uint64(head[:])
	if n > maxHeader || int64(n) > st.Size()-8 {
		return nil, fmt.Errorf("%s: not a valid safetensors file (header length %d for a file of %d bytes)", path, n, st.Size())
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file (truncated header)", path)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(header, &entries); err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file (header: %v)", path, err)
	}
	var end uint64
	for name, raw := range entries {
		if name == "__metadata__" {
			continue
		}
		var t struct {
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &t); err != nil || len(t.Offsets) != 2 {
			return nil, fmt.Errorf("%s: not a valid safetensors file (tensor %.60q has no data_offsets pair)", path, name)
		}
		end = max(end, t.Offsets[1])
	}
	if want := 8 + n + end; uint64(st.Size()) != want {
		return nil, fmt.Errorf("%s: not a valid safetensors file (%d bytes, its header describes %d)", path, st.Size(), want)
	}
	data := make([]byte, st.Size())
	copy(data, head[:])
	copy(data[8:], header)
	if _, err := io.ReadFull(f, data[8+n:]); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

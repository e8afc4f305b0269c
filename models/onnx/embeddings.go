package onnx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
	"github.com/nlpodyssey/safetensors"
	"github.com/x448/float16"
)

// EmbeddingsSpec names a safetensors file of per-prompt embeddings (a text encoder's output, computed
// once in PyTorch) that a graph input receives in place of prompt ids: the input named prompt_input
// then gets, for a batch of prompt ids, the embeddings E[id] [batch, ...], so adding a prompt needs a
// new row in the file, not a new export. The file holds either
//
//   - one tensor per prompt, named by the prompt's text, all of one shape (e.g. [77, 1024]); or
//   - one table [n, ...] (the tensor named Tensor, or the file's only tensor) whose rows follow the
//     JSON list of prompts in the file's metadata entry "prompts".
//
// Every prompt of the spec must be in the file (extra entries are ignored); values must be finite;
// the per-prompt shape must fit the input's (without its batch axis). F32, F64, F16 and BF16 are read,
// as float32.
type EmbeddingsSpec struct {
	File   string `json:"file"`
	Tensor string `json:"tensor,omitempty"`
}

// scopeEmbeddings holds the loaded embedding tables as frozen variables: "generator" and one per
// reward name.
const scopeEmbeddings = "prompt_embeddings"

// checkEmbeddings checks the prompt_embeddings fields of a spec (their presence, not the files).
func (s *Spec) checkEmbeddings(path string) error {
	check := func(field, promptInput string, e *EmbeddingsSpec) error {
		if e == nil {
			return nil
		}
		if e.File == "" {
			return specErr(path, field+".file", "missing (a safetensors file of per-prompt embeddings)")
		}
		if promptInput == "" {
			return specErr(path, field, "needs prompt_input: the name of the input that receives the embeddings")
		}
		if len(s.Prompts) == 0 {
			return specErr(path, "prompts", "missing: %s gives per-prompt embeddings, so the spec must list the prompts", field)
		}
		return nil
	}
	if err := check("generator.prompt_embeddings", s.Generator.PromptInput, s.Generator.PromptEmbeddings); err != nil {
		return err
	}
	for _, name := range s.RewardNames() {
		r := s.Rewards[name]
		if err := check("rewards."+name+".prompt_embeddings", r.PromptInput, r.PromptEmbeddings); err != nil {
			return err
		}
	}
	return nil
}

// readEmbeddings reads an embeddings file into a table [len(prompts), ...] in the spec's prompt
// order. A file that cannot be read is a *FileError (one that is not a regular file, or larger
// than safeio.Weights allows, is refused with safeio.ErrRefused); one that does not hold the
// prompts, holds them with different shapes or holds non-finite values is a *SpecError.
func readEmbeddings(specPath, field string, e *EmbeddingsSpec, prompts []string) (*tensors.Tensor, error) {
	path := resolve(filepath.Dir(specPath), e.File)
	fail := func(format string, args ...any) error {
		return specErr(specPath, field, "%s: %s", e.File, fmt.Sprintf(format, args...))
	}
	data, err := safeio.ReadFile(path, safeio.Weights)
	if errors.Is(err, safeio.ErrRefused) {
		return nil, err
	}
	if err != nil {
		return nil, &FileError{Path: path, Err: errors.Unwrap(err)}
	}
	rows, dims, err := embeddingRows(data, e.Tensor, prompts)
	if err != nil {
		return nil, fail("%v", err)
	}
	size := 1
	for _, d := range dims {
		size *= d
	}
	flat := make([]float32, 0, len(prompts)*size)
	for i, row := range rows {
		vals, err := floats(row)
		if err != nil {
			return nil, fail("%v", err)
		}
		for j, v := range vals {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fail("the embedding of prompt %q has a non-finite value (%g at index %d)", prompts[i], v, j)
			}
		}
		flat = append(flat, vals...)
	}
	return tensors.FromFlatDataAndDimensions(flat, append([]int{len(prompts)}, dims...)...), nil
}

// embeddingRows returns, for each prompt, its embedding's raw view and the common per-prompt dims.
func embeddingRows(data []byte, tableName string, prompts []string) ([]safetensors.TensorView, []int, error) {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, nil, fmt.Errorf("not a valid safetensors file: %v", err)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return nil, nil, fmt.Errorf("not a valid safetensors file: %v", err)
	}
	if list, ok := md.Metadata()["prompts"]; ok {
		return tableRows(st, list, tableName, prompts)
	}
	if tableName != "" {
		return nil, nil, fmt.Errorf("the spec names table %q, but the file has no \"prompts\" metadata listing its rows", tableName)
	}
	rows := make([]safetensors.TensorView, len(prompts))
	var dims []int
	for i, p := range prompts {
		tv, ok := st.Tensor(p)
		if !ok {
			return nil, nil, fmt.Errorf("no embedding for prompt %q (the file has %d tensors, one per prompt, e.g. %s)", p, st.Len(), firstNames(st.Names()))
		}
		d := intDims(tv.Shape())
		if dims == nil {
			dims = d
		} else if !slices.Equal(d, dims) {
			return nil, nil, fmt.Errorf("the embedding of prompt %q is shaped %v, that of %q %v: all must have one shape", p, d, prompts[0], dims)
		}
		rows[i] = tv
	}
	return rows, dims, nil
}

// tableRows picks the rows of a table [n, ...] whose prompts are the JSON list in the metadata.
func tableRows(st safetensors.SafeTensors, list, tableName string, prompts []string) ([]safetensors.TensorView, []int, error) {
	var names []string
	if err := json.Unmarshal([]byte(list), &names); err != nil {
		return nil, nil, fmt.Errorf("metadata \"prompts\" must be a JSON list of strings: %v", err)
	}
	if tableName == "" {
		if st.Len() != 1 {
			return nil, nil, fmt.Errorf("the file has %d tensors (%s); name the table with prompt_embeddings.tensor", st.Len(), firstNames(st.Names()))
		}
		tableName = st.Names()[0]
	}
	tv, ok := st.Tensor(tableName)
	if !ok {
		return nil, nil, fmt.Errorf("no tensor %q (the file has %s)", tableName, firstNames(st.Names()))
	}
	d := intDims(tv.Shape())
	if len(d) < 2 || d[0] != len(names) {
		return nil, nil, fmt.Errorf("table %q is shaped %v, want [%d, ...]: one row per prompt of the metadata's list", tableName, d, len(names))
	}
	rowBytes := len(tv.Data()) / d[0]
	rows := make([]safetensors.TensorView, len(prompts))
	for i, p := range prompts {
		k := slices.Index(names, p)
		if k < 0 {
			return nil, nil, fmt.Errorf("no embedding for prompt %q (the table's %d prompts are %s)", p, len(names), firstNames(names))
		}
		shape := make([]uint64, len(d)-1)
		for j, v := range d[1:] {
			shape[j] = uint64(v)
		}
		row, err := safetensors.NewTensorView(tv.DType(), shape, tv.Data()[k*rowBytes:(k+1)*rowBytes])
		if err != nil {
			return nil, nil, err
		}
		rows[i] = row
	}
	return rows, d[1:], nil
}

func intDims(s []uint64) []int {
	d := make([]int, len(s))
	for i, v := range s {
		d[i] = int(v)
	}
	return d
}

// firstNames lists up to three names, quoted, for messages.
func firstNames(names []string) string {
	names = slices.Clone(names)
	sort.Strings(names)
	var q []string
	for i, n := range names {
		if i == 3 {
			q = append(q, fmt.Sprintf("... (%d in all)", len(names)))
			break
		}
		if len(n) > 40 {
			n = n[:40] + "..."
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	if len(q) == 0 {
		return "none"
	}
	return strings.Join(q, ", ")
}

// floats widens a tensor view's values to float32.
func floats(tv safetensors.TensorView) ([]float32, error) {
	b := tv.Data()
	switch tv.DType() {
	case safetensors.F32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	case safetensors.F64:
		out := make([]float32, len(b)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, nil
	case safetensors.F16, safetensors.BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			bits := binary.LittleEndian.Uint16(b[2*i:])
			if tv.DType() == safetensors.BF16 {
				out[i] = math.Float32frombits(uint32(bits) << 16)
			} else {
				out[i] = float16.Frombits(bits).Float32()
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("embeddings are %s, want floats (F32, F64, F16 or BF16)", tv.DType())
}

// loadEmbeddings reads the spec's embeddings files, checks each table against the graph input that
// receives it, and stores the tables as frozen variables in m's context.
func (m *Model) loadEmbeddings() error {
	load := func(field, key string, e *EmbeddingsSpec, g *shim.Model, input string) error {
		if e == nil {
			return nil
		}
		t, err := readEmbeddings(m.SpecPath, field, e, m.Spec.Prompts)
		if err != nil {
			return err
		}
		v, ok := g.Input(input)
		if !ok {
			return nil // checkNames reports it
		}
		if per := t.Shape().Dimensions[1:]; !shapeFits(v.Dims, per) {
			return m.specErr(field, "%s: embeddings are %v per prompt, but input %q of %s takes %s", e.File, per, input, filepath.Base(g.Path), dimsString(v.Dims))
		}
		m.ctx.InAbsPath(context.ScopeSeparator+scopeEmbeddings).Checked(false).VariableWithValue(key, t).SetTrainable(false)
		return nil
	}
	g := m.Spec.Generator
	if err := load("generator.prompt_embeddings", "generator", g.PromptEmbeddings, m.gen, g.PromptInput); err != nil {
		return err
	}
	for _, name := range m.Spec.RewardNames() {
		r := m.Spec.Rewards[name]
		if err := load("rewards."+name+".prompt_embeddings", "reward_"+name, r.PromptEmbeddings, m.rewards[name], r.PromptInput); err != nil {
			return err
		}
	}
	return nil
}

// promptFeed is what a graph's prompt input receives for prompt ids [B]: the ids converted to the
// input's integer type, or, when the spec gives embeddings (key names the table), E[ids].
func (m *Model) promptFeed(ctx *context.Context, g *shim.Model, input, key string, e *EmbeddingsSpec, prompts *Node) *Node {
	v, _ := g.Input(input)
	if e == nil {
		return ConvertDType(prompts, v.DType)
	}
	table := ctx.GetVariableByScopeAndName(context.ScopeSeparator+scopeEmbeddings, key)
	if table == nil {
		panic(fmt.Errorf("prompt embeddings %q are not loaded in this context", key))
	}
	x := Gather(table.ValueGraph(prompts.Graph()), ExpandAxes(prompts, -1))
	if x.DType() != v.DType {
		x = ConvertDType(x, v.DType)
	}
	return x
}

// floatRole says what a float input named by field receives, for messages.
func floatRole(field string) string {
	if strings.HasSuffix(field, ".prompt_input") {
		return "the prompt embeddings"
	}
	return "the noise or image"
}

package shim

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gonnx "github.com/gomlx/onnx-gomlx/onnx"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// FileError is a problem with an ONNX file itself (missing, unreadable, not ONNX, truncated,
// external data missing).
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// UnsupportedError lists every operation of a graph that the importer cannot convert, all at once.
type UnsupportedError struct {
	Path string
	Ops  []string // one entry per unsupported op (or op configuration), with a count and an example node
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s: unsupported ONNX operations (%d): %s", e.Path, len(e.Ops), strings.Join(e.Ops, "; "))
}

// attr is one node attribute.
type attr struct {
	typ    int // AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS
	f      float32
	i      int64
	s      string
	t      *tensors.Tensor
	floats []float32
	ints   []int64
	strs   []string
}

// node is one ONNX node, in our own representation.
type node struct {
	name, op, domain string
	in, out          []string
	attrs            map[string]*attr
	attrErr          error          // an attribute that could not be decoded (reported at load)
	proto            unsafe.Pointer // onnx-gomlx's NodeProto, for delegated conversion (delegate.go)
}

func (n *node) String() string { return fmt.Sprintf("%s %q", n.op, n.name) }

func (n *node) intAttr(name string, def int) int {
	if a, ok := n.attrs[name]; ok {
		return int(a.i)
	}
	return def
}

func (n *node) floatAttr(name string, def float64) float64 {
	if a, ok := n.attrs[name]; ok {
		return float64(a.f)
	}
	return def
}

func (n *node) strAttr(name, def string) string {
	if a, ok := n.attrs[name]; ok {
		return a.s
	}
	return def
}

func (n *node) intsAttr(name string) []int {
	a, ok := n.attrs[name]
	if !ok {
		return nil
	}
	out := make([]int, len(a.ints))
	for i, v := range a.ints {
		out[i] = int(v)
	}
	return out
}

// Value describes one graph input or output: its element type and dimensions (-1 where dynamic).
type Value struct {
	Name  string
	DType dtypes.DType
	Dims  []int
}

// Model is an ONNX graph loaded for conversion to GoMLX. It is safe for concurrent use.
type Model struct {
	Path    string
	Opset   int
	Inputs  []Value // the graph's inputs (initializers excluded)
	Outputs []Value

	nodes    []*node // topological order
	producer map[string]*node
	inits    map[string]*tensors.Tensor
	initType map[string]int  // ONNX element type of each initializer as stored (see Export)
	known    map[string]bool // every tensor name defined in the graph

	loraFilter *regexp.Regexp // SetLoRALayers: the nodes that get adapters (nil: all)

	gm   *gonnx.Model // onnx-gomlx's model, for the ops delegated to it
	gmMu sync.Mutex
}

// Load reads and checks an ONNX file: it parses the graph (with onnx-gomlx), decodes every
// initializer (external data relative to the file's folder; FLOAT16/BFLOAT16 widened to float32),
// and fails with an *UnsupportedError naming all unsupported operations at once. File problems
// are a *FileError.
func Load(path string) (*Model, error) {
	data, err := safeio.ReadFile(path, safeio.Weights)
	if errors.Is(err, safeio.ErrRefused) {
		return nil, err
	}
	if err != nil {
		return nil, &FileError{Path: path, Err: errors.Unwrap(err)}
	}
	return parse(path, data)
}

func parse(path string, data []byte) (g *Model, err error) {
	notONNX := func(why string) error {
		return &FileError{Path: path, Err: fmt.Errorf("not a valid ONNX model (%s)", why)}
	}
	if len(data) == 0 {
		return nil, notONNX("empty file")
	}
	if !looksLikeModel(data) {
		return nil, notONNX("not an ONNX protobuf, or truncated")
	}
	stripped, inits, err := splitWeights(data, filepath.Dir(path))
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, &FileError{Path: path, Err: err}
	}
	var gm *gonnx.Model
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = notONNX(fmt.Sprint(r))
			}
		}()
		gm, err = gonnx.Parse(stripped)
	}()
	if err != nil {
		return nil, notONNX(oneLine(err.Error()))
	}
	if gm.Proto.Graph == nil || len(gm.Proto.Graph.Node) == 0 {
		return nil, notONNX("no graph")
	}
	g = &Model{Path: path, gm: gm, producer: map[string]*node{}, inits: map[string]*tensors.Tensor{},
		initType: map[string]int{}, known: map[string]bool{}}
	for _, op := range gm.Proto.OpsetImport {
		if op.Domain == "" || op.Domain == "ai.onnx" {
			g.Opset = int(op.Version)
		}
	}
	dir := filepath.Dir(path)
	for _, in := range inits {
		g.inits[in.name] = in.t
		g.initType[in.name] = in.code
		g.known[in.name] = true
	}
	for i, name := range gm.InputsNames {
		if _, isInit := g.inits[name]; isInit {
			continue
		}
		g.Inputs = append(g.Inputs, valueOf(name, gm.InputsShapes[i]))
		g.known[name] = true
	}
	for i, name := range gm.OutputsNames {
		g.Outputs = append(g.Outputs, valueOf(name, gm.OutputsShapes[i]))
	}
	nodes, err := g.readNodes(dir)
	if err != nil {
		return nil, notONNX(err.Error())
	}
	if g.nodes, err = topoSort(nodes, g.producer); err != nil {
		return nil, notONNX(err.Error())
	}
	if err := g.checkOps(); err != nil {
		return nil, err
	}
	return g, nil
}

// readNodes reads the graph's nodes (from onnx-gomlx's parse, gm): their attributes (tensor
// attributes decoded, external data relative to dir), the producer of every tensor (each produced
// once), and every input defined somewhere.
func (g *Model) readNodes(dir string) ([]*node, error) {
	var nodes []*node
	for _, np := range g.gm.Proto.Graph.Node {
		n := &node{name: np.Name, op: np.OpType, domain: np.Domain, in: np.Input, out: np.Output, attrs: map[string]*attr{}, proto: unsafe.Pointer(np)}
		for _, ap := range np.Attribute {
			a := &attr{typ: int(ap.Type), f: ap.F, i: ap.I, s: string(ap.S), floats: ap.Floats, ints: ap.Ints}
			for _, s := range ap.Strings {
				a.strs = append(a.strs, string(s))
			}
			if ap.T != nil {
				b, err := proto.Marshal(ap.T)
				if err == nil {
					a.t, _, err = decodeTensor(b, dir)
				}
				if err != nil {
					n.attrErr = fmt.Errorf("attribute %s: %w", ap.Name, err)
				}
			}
			if ap.G != nil || len(ap.Graphs) > 0 {
				a.typ = 5
			}
			n.attrs[ap.Name] = a
		}
		for _, o := range n.out {
			if o == "" {
				continue
			}
			if prev, dup := g.producer[o]; dup {
				return nil, fmt.Errorf("tensor %q produced by two nodes, %s and %s", o, prev, n)
			}
			g.producer[o] = n
			g.known[o] = true
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		for _, in := range n.in {
			if in != "" && !g.known[in] {
				return nil, fmt.Errorf("node %s reads tensor %q that nothing defines", n, in)
			}
		}
	}
	return nodes, nil
}

// looksLikeModel checks that data is a well-formed protobuf message with a graph field (ModelProto
// field 7), which catches text files, truncated files and other binary formats before parsing.
func looksLikeModel(data []byte) bool {
	hasGraph := false
	ok := walkFields(data, func(num int32, isBytes bool) {
		if num == 7 && isBytes {
			hasGraph = true
		}
	})
	return ok && hasGraph
}

// topoSort orders nodes so that each comes after the producers of its inputs.
func topoSort(nodes []*node, producer map[string]*node) ([]*node, error) {
	state := map[*node]int{} // 1 visiting, 2 done
	out := make([]*node, 0, len(nodes))
	var visit func(n *node) error
	visit = func(n *node) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("the graph has a cycle through %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, in := range n.in {
			if p := producer[in]; p != nil {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range nodes {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkOps collects every node the importer cannot convert and reports them in one error.
func (g *Model) checkOps() error {
	type entry struct {
		count   int
		example string
	}
	bad := map[string]*entry{}
	for _, n := range g.nodes {
		reason := ""
		switch {
		case n.domain != "" && n.domain != "ai.onnx":
			reason = n.domain + "." + n.op
		case n.attrErr != nil:
			reason = fmt.Sprintf("%s(%v)", n.op, n.attrErr)
		default:
			if o, ok := ours[n.op]; ok {
				if o.check != nil {
					if why := o.check(g, n); why != "" {
						reason = fmt.Sprintf("%s(%s)", n.op, why)
					}
				}
			} else if !delegated[n.op] {
				reason = n.op
			} else if c := delegatedCheck[n.op]; c != nil {
				if why := c(g, n); why != "" {
					reason = fmt.Sprintf("%s(%s)", n.op, why)
				}
			}
		}
		if reason == "" {
			continue
		}
		e := bad[reason]
		if e == nil {
			e = &entry{example: n.name}
			bad[reason] = e
		}
		e.count++
	}
	if len(bad) == 0 {
		return nil
	}
	var ops []string
	for r, e := range bad {
		ops = append(ops, fmt.Sprintf("%s (%d node(s), e.g. %q)", r, e.count, e.example))
	}
	sort.Strings(ops)
	return &UnsupportedError{Path: g.Path, Ops: ops}
}

// valueOf converts onnx-gomlx's view of an input or output; half-precision types read as float32.
func valueOf(name string, ds gonnx.DynamicShape) Value {
	dt := ds.DType
	if dt == dtypes.Float16 || dt == dtypes.BFloat16 {
		dt = dtypes.Float32
	}
	return Value{Name: name, DType: dt, Dims: append([]int(nil), ds.Dimensions...)}
}

// walkFields calls fn for each top-level field of a protobuf message; false if data is malformed.
func walkFields(data []byte, fn func(num int32, isBytes bool)) bool {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false
		}
		data = data[n:]
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return false
		}
		fn(int32(num), typ == protowire.BytesType)
		data = data[n:]
	}
	return true
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Has reports whether name is a tensor of the graph (an input, an initializer or a node output).
func (g *Model) Has(name string) bool { return g.known[name] }

// Input returns the graph input called name.
func (g *Model) Input(name string) (Value, bool) {
	for _, v := range g.Inputs {
		if v.Name == name {
			return v, true
		}
	}
	return Value{}, false
}

// Ops lists the distinct operation types of the graph, sorted.
func (g *Model) Ops() []string {
	set := map[string]bool{}
	for _, n := range g.nodes {
		set[n.op] = true
	}
	var out []string
	for op := range set {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

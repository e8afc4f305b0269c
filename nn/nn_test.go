package nn

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// net is a small network using every adaptable layer: conv, group norm, dense, output dense.
func net(ctx *context.Context, x *Node) *Node {
	ctx = ctx.In("net")
	h := Conv(ctx.In("conv"), x, 4, 3, 1) // [B,4,4,4]
	h = GroupNorm(ctx.In("gn"), h, 2)
	h = Tanh(h)
	h = Reshape(h, h.Shape().Dim(0), -1)
	h = Tanh(Dense(ctx.In("dense"), h, 8))
	return OutputDense(ctx.In("out"), h, 3)
}

func input() *tensors.Tensor {
	data := make([]float32, 2*4*4*2)
	for i := range data {
		data[i] = float32(math.Sin(float64(i)*0.7)) * 0.8
	}
	return tensors.FromFlatDataAndDimensions(data, 2, 4, 4, 2)
}

func run(t *testing.T, b backends.Backend, ctx *context.Context, fn func(ctx *context.Context, x *Node) *Node) []float32 {
	t.Helper()
	out, err := context.ExecOnce(b, ctx, fn, input())
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}

func seeded() *context.Context {
	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, int64(3))
	_ = ctx.SetRNGStateFromSeed(3)
	return ctx
}

func TestLoRAAtInitEqualsBase(t *testing.T) {
	b := testutil.Backend(t)
	ctx := seeded()
	base := run(t, b, ctx, net)
	lctx, err := WithLoRA(ctx, "ft", LoRA{Rank: 2, Alpha: 4})
	if err != nil {
		t.Fatal(err)
	}
	adapted := run(t, b, lctx, net)
	for i := range base {
		if base[i] != adapted[i] {
			t.Fatalf("LoRA output %v differs from base %v at init", adapted, base)
		}
	}
	nonzero := false
	for _, v := range base {
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Fatal("base output is all zero: the comparison is vacuous")
	}
}

func TestOutputOnlyIsZero(t *testing.T) {
	b := testutil.Backend(t)
	ctx := seeded()
	run(t, b, ctx, net)
	lctx, err := WithLoRA(ctx, "hyper", LoRA{Rank: 2, Alpha: 4, OutputOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range run(t, b, lctx, net) {
		if v != 0 {
			t.Fatalf("OutputOnly LoRA output is not exactly zero at init: %v", v)
		}
	}
}

func TestAdaptersLiveUnderPrefix(t *testing.T) {
	b := testutil.Backend(t)
	ctx := seeded()
	run(t, b, ctx, net)
	before := ctx.NumVariables()
	lctx, err := WithLoRA(ctx, "hyper", LoRA{Rank: 2, Alpha: 4, OutputOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, lctx, net)
	var adapters []string
	for v := range ctx.IterVariables() {
		name := v.ScopeAndName()
		isAdapter := v.Name() == "lora_a" || v.Name() == "lora_b"
		underPrefix := strings.HasPrefix(name, "/hyper/")
		if isAdapter != underPrefix {
			t.Errorf("variable %s: adapter=%v but under /hyper=%v", name, isAdapter, underPrefix)
		}
		if isAdapter {
			adapters = append(adapters, name)
		}
	}
	// conv, dense and output each get A and B; group norm gets none.
	if len(adapters) != 6 || ctx.NumVariables() != before+6 {
		t.Errorf("got adapters %v (variables %d -> %d), want 6 new adapter variables", adapters, before, ctx.NumVariables())
	}
	for _, want := range []string{"/hyper/net/conv/lora_a", "/hyper/net/dense/lora_b", "/hyper/net/out/lora_b"} {
		found := false
		for _, a := range adapters {
			found = found || a == want
		}
		if !found {
			t.Errorf("missing adapter %s in %v", want, adapters)
		}
	}
	// A ~ N(0, (1/rank)^2): check the dense A's spread loosely (64 entries).
	a := ctx.InspectVariable("/hyper/net/dense", "lora_a")
	vals := tensors.MustCopyFlatData[float32](a.MustValue())
	ss := 0.0
	for _, v := range vals {
		ss += float64(v) * float64(v)
	}
	std := math.Sqrt(ss / float64(len(vals)))
	if std < 0.3 || std > 0.7 {
		t.Errorf("lora_a std = %.3f, want about 1/rank = 0.5", std)
	}
}

func TestWithLoRABadConfig(t *testing.T) {
	ctx := context.New()
	for _, c := range []struct {
		prefix string
		cfg    LoRA
	}{{"p", LoRA{Rank: 0, Alpha: 1}}, {"p", LoRA{Rank: 2, Alpha: 0}}, {"", LoRA{Rank: 2, Alpha: 4}}, {"/a", LoRA{Rank: 2, Alpha: 4}},
		{"a//b", LoRA{Rank: 2, Alpha: 4}}, {"a/", LoRA{Rank: 2, Alpha: 4}}} {
		if _, err := WithLoRA(ctx, c.prefix, c.cfg); err == nil {
			t.Errorf("WithLoRA(%q, %+v) succeeded", c.prefix, c.cfg)
		}
	}
}

// TestTrainingAdaptersOnly takes gradient steps on the adapters of a full (not output-only)
// LoRA: the gradient reaches B at init and A once B != 0, the output changes, and the base
// weights stay exactly as they were.
func TestTrainingAdaptersOnly(t *testing.T) {
	b := testutil.Backend(t)
	ctx := seeded()
	base := run(t, b, ctx, net)
	snapshot := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.DType().IsFloat() {
			snapshot[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	lctx, err := WithLoRA(ctx, "ft", LoRA{Rank: 2, Alpha: 4})
	if err != nil {
		t.Fatal(err)
	}
	var gradNorms [][2]float64 // per step: |dL/dA|, |dL/dB| of the dense layer
	step, err := context.NewExec(b, lctx, func(ctx *context.Context, x *Node) []*Node {
		y := net(ctx, x)
		loss := ReduceAllSum(Square(SubScalar(y, 1)))
		g := x.Graph()
		var vars []*context.Variable
		for v := range ctx.IterVariables() {
			if strings.HasPrefix(v.Scope(), "/ft/") {
				vars = append(vars, v)
			}
		}
		nodes := make([]*Node, len(vars))
		for i, v := range vars {
			nodes[i] = v.ValueGraph(g)
		}
		grads := Gradient(loss, nodes...)
		var outs []*Node
		for i, v := range vars {
			v.SetValueGraph(Sub(nodes[i], MulScalar(grads[i], 0.05)))
			if v.Scope() == "/ft/net/dense" {
				outs = append(outs, Sqrt(ReduceAllSum(Square(grads[i]))))
			}
		}
		return outs // lora_a then lora_b (creation order)
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		outs, err := step.Exec(input())
		if err != nil {
			t.Fatal(err)
		}
		gradNorms = append(gradNorms, [2]float64{float64(outs[0].Value().(float32)), float64(outs[1].Value().(float32))})
	}
	if gradNorms[0][0] != 0 || gradNorms[0][1] == 0 {
		t.Errorf("step 0: |dL/dA| = %g (want 0, since B = 0), |dL/dB| = %g (want > 0)", gradNorms[0][0], gradNorms[0][1])
	}
	if gradNorms[1][0] == 0 {
		t.Errorf("step 1: no gradient reaches A once B != 0")
	}
	for v := range ctx.IterVariables() {
		before, ok := snapshot[v.ScopeAndName()]
		if !ok || v.Name() == context.RNGStateVariableName {
			continue
		}
		now := tensors.MustCopyFlatData[float32](v.MustValue())
		for i := range now {
			if now[i] != before[i] {
				t.Fatalf("base weight %s changed while training adapters", v.ScopeAndName())
			}
		}
	}
	after := run(t, b, lctx, net)
	changed := false
	for i := range after {
		changed = changed || after[i] != base[i]
	}
	if !changed {
		t.Error("training the adapters did not change the output")
	}
}

func TestZeroDense(t *testing.T) {
	b := testutil.Backend(t)
	ctx := seeded()
	out := run(t, b, ctx, func(ctx *context.Context, x *Node) *Node {
		return ZeroDense(ctx.In("z"), Reshape(x, 2, -1), 5)
	})
	for _, v := range out {
		if v != 0 {
			t.Fatalf("ZeroDense output %v, want zeros", out)
		}
	}
}

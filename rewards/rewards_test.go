package rewards

import (
	"errors"
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// sumOf is r(x) = Σ_j x_j; firstOf is r(x) = x_0.
func sumOf() hypernoise.Reward {
	return Func{RewardName: "sum", Fn: func(ctx *context.Context, x, prompts *Node) *Node { return ReduceSum(x, -1) }}
}

func squareOf() hypernoise.Reward {
	return Func{RewardName: "square", Fn: func(ctx *context.Context, x, prompts *Node) *Node { return ReduceSum(Square(x), -1) }}
}

func registry(t *testing.T) *Registry {
	r := NewRegistry()
	if err := r.Register("sum", "sum of coordinates", func() (hypernoise.Reward, error) { return sumOf(), nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("square", "squared norm", func() (hypernoise.Reward, error) { return squareOf(), nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("broken", "fails to load", func() (hypernoise.Reward, error) { return nil, errors.New("weights missing") }); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseSpec(t *testing.T) {
	got, err := ParseSpec(" align = 1 , realism=0.5,clip")
	if err != nil {
		t.Fatal(err)
	}
	want := []SpecTerm{{"align", 1}, {"realism", 0.5}, {"clip", 1}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("term %d = %v, want %v", i, got[i], want[i])
		}
	}
	if got, err := ParseSpec("a=-2e-1"); err != nil || got[0].Weight != -0.2 {
		t.Errorf("negative weight: %v %v", got, err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for spec, wantInErr := range map[string]string{
		"":             "empty reward spec",
		"  ":           "empty reward spec",
		"a=1,,b=2":     "empty term",
		"=1":           "no reward name",
		"a=x":          `weight "x" of reward "a" is not a number`,
		"a=0":          "finite non-zero",
		"a=NaN":        "finite non-zero",
		"a=Inf":        "finite non-zero",
		"a=1,a=2":      `"a" appears twice`,
		"align=1,b=1e": "not a number",
	} {
		_, err := ParseSpec(spec)
		if err == nil {
			t.Errorf("ParseSpec(%q) succeeded", spec)
			continue
		}
		if !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("ParseSpec(%q) error %q does not mention %q", spec, err, wantInErr)
		}
	}
}

func TestRegistryParseErrors(t *testing.T) {
	r := registry(t)
	_, err := r.Parse("sum=1,nope=2")
	if err == nil || !strings.Contains(err.Error(), `unknown reward "nope"`) || !strings.Contains(err.Error(), "available rewards: broken, square, sum") {
		t.Errorf("unknown name: error %v should name it and list the available rewards", err)
	}
	_, err = r.Parse("sum=abc")
	if err == nil || !strings.Contains(err.Error(), "available rewards") {
		t.Errorf("bad weight: error %v should list the available rewards", err)
	}
	_, err = r.Parse("broken")
	if err == nil || !strings.Contains(err.Error(), "weights missing") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("constructor failure: %v", err)
	}
	if err := r.Register("sum", "again", func() (hypernoise.Reward, error) { return sumOf(), nil }); err == nil {
		t.Error("registering a name twice succeeded")
	}
	for _, bad := range []string{"", "a,b", "a=b", "a b"} {
		if err := r.Register(bad, "", func() (hypernoise.Reward, error) { return sumOf(), nil }); err == nil {
			t.Errorf("registering %q succeeded", bad)
		}
	}
	if !strings.Contains(r.Help(), "squared norm") {
		t.Errorf("Help() = %q lacks a summary", r.Help())
	}
}

func TestSumScore(t *testing.T) {
	r := registry(t)
	s, err := r.Parse("sum=2,square=-0.5")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "sum=2,square=-0.5" {
		t.Errorf("Name() = %q", s.Name())
	}
	backend := testutil.Backend(t)
	x := [][]float32{{1, 2}, {-3, 0.5}}
	out, err := context.ExecOnce(backend, context.New(), func(ctx *context.Context, x *Node) *Node {
		prompts := Zeros(x.Graph(), tensors.FromValue([]int32{0, 0}).Shape())
		return s.Score(ctx, x, prompts)
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	for i, row := range x {
		sum := float64(row[0] + row[1])
		sq := float64(row[0]*row[0] + row[1]*row[1])
		want := 2*sum - 0.5*sq
		if math.Abs(float64(got[i])-want) > 1e-5 {
			t.Errorf("row %d: score %g, want %g", i, got[i], want)
		}
	}
	if _, err := NewSum(); err == nil {
		t.Error("empty sum accepted")
	}
	if _, err := NewSum(Term{sumOf(), 1}, Term{sumOf(), 2}); err == nil {
		t.Error("duplicate reward accepted")
	}
}

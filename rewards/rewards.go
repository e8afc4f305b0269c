// Package rewards combines rewards and parses reward specs.
//
// A reward r(x, c) scores a sample x for a prompt c; higher is better (see hypernoise.Reward).
// Methods optimize a weighted sum
//
//	r(x, c) = Σ_k w_k r_k(x, c)
//
// which is itself a hypernoise.Reward (Sum). On the command line the sum is written as a spec,
// "align=1,realism=0.5": comma-separated name=weight terms, a bare name meaning weight 1. Names are
// looked up in a Registry of reward constructors; an unknown name or a bad weight is an error that
// lists what exists. The image rewards themselves live with their models; this package is generic.
package rewards

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// Term is one reward of a weighted sum, with its weight w_k.
type Term struct {
	Reward hypernoise.Reward
	Weight float64
}

// Sum is the weighted reward r(x, c) = Σ_k w_k r_k(x, c). It implements hypernoise.Reward.
type Sum struct {
	terms []Term
}

// NewSum returns the weighted sum of terms. It needs at least one term, every weight finite and
// non-zero, and distinct reward names.
func NewSum(terms ...Term) (*Sum, error) {
	if len(terms) == 0 {
		return nil, fmt.Errorf("a reward sum needs at least one reward")
	}
	seen := map[string]bool{}
	for _, t := range terms {
		if t.Reward == nil {
			return nil, fmt.Errorf("reward sum: nil reward")
		}
		name := t.Reward.Name()
		if err := checkWeight(name, t.Weight); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("reward %q appears twice in the sum", name)
		}
		seen[name] = true
	}
	return &Sum{terms: append([]Term(nil), terms...)}, nil
}

// Bounds on the magnitude of a reward weight. Weights multiply float32 rewards inside the graph,
// so a weight must be a normal float32; beyond these bounds a weight is almost certainly a typo
// (the weight acts as an inverse temperature of the tilt exp(r/beta)).
const (
	MinWeight = 1e-6
	MaxWeight = 1e6
)

// CheckWeight reports whether w is usable as the weight of reward name: finite, non-zero and with
// MinWeight <= |w| <= MaxWeight (so it is exactly a normal float32 magnitude, neither overflowing
// nor vanishing in float32).
func CheckWeight(name string, w float64) error {
	if math.IsNaN(w) || math.IsInf(w, 0) || w == 0 {
		return fmt.Errorf("reward %q: weight must be a finite non-zero number, got %g", name, w)
	}
	if a := math.Abs(w); a < MinWeight || a > MaxWeight {
		return fmt.Errorf("reward %q: weight magnitude must be in [%g, %g], got %g", name, MinWeight, MaxWeight, w)
	}
	return nil
}

func checkWeight(name string, w float64) error { return CheckWeight(name, w) }

// Terms returns a copy of the sum's terms, in spec order.
func (s *Sum) Terms() []Term { return append([]Term(nil), s.terms...) }

// Name returns the sum's spec, e.g. "align=1,realism=0.5"; ParseSpec(s.Name()) gives back the terms.
func (s *Sum) Name() string {
	parts := make([]string, len(s.terms))
	for i, t := range s.terms {
		parts[i] = t.Reward.Name() + "=" + strconv.FormatFloat(t.Weight, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// Source lists the terms' sources, for those that have one (hypernoise.Sourced).
func (s *Sum) Source() string {
	var parts []string
	for _, t := range s.terms {
		if src, ok := t.Reward.(hypernoise.Sourced); ok && src.Source() != "" {
			parts = append(parts, t.Reward.Name()+": "+src.Source())
		}
	}
	return strings.Join(parts, "; ")
}

// Score builds Σ_k w_k r_k(x, c), shape [B].
func (s *Sum) Score(ctx *context.Context, x, prompts *graph.Node) *graph.Node {
	var total *graph.Node
	for _, r := range s.Scores(ctx, x, prompts) {
		if total == nil {
			total = r
		} else {
			total = graph.Add(total, r)
		}
	}
	return total
}

// Scores builds the weighted terms w_k r_k(x, c), each [B], in spec order (their sum is Score).
func (s *Sum) Scores(ctx *context.Context, x, prompts *graph.Node) []*graph.Node {
	out := make([]*graph.Node, len(s.terms))
	for i, t := range s.terms {
		r := t.Reward.Score(ctx, x, prompts)
		if r.Rank() != 1 || r.Shape().Dim(0) != x.Shape().Dim(0) {
			panic(fmt.Sprintf("reward %q returned shape %s, want [%d]", t.Reward.Name(), r.Shape(), x.Shape().Dim(0)))
		}
		if t.Weight != 1 {
			r = graph.MulScalar(r, t.Weight)
		}
		out[i] = r
	}
	return out
}

// SpecTerm is one parsed "name=weight" entry of a reward spec.
type SpecTerm struct {
	Name   string
	Weight float64
}

// ParseSpec parses the syntax of a reward spec "name=weight,name2=weight2" (a bare name has weight
// 1; spaces around names and weights are ignored). Weights must be finite and non-zero, names
// distinct; names are non-empty and hold no '=' (see CheckWeight for the weights' range). It does not
// check that the names exist; Registry.Parse does. Specs longer than MaxSpecLen are refused.
func ParseSpec(spec string) ([]SpecTerm, error) {
	if len(spec) > MaxSpecLen {
		return nil, fmt.Errorf("reward spec is %d bytes long (at most %d)", len(spec), MaxSpecLen)
	}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty reward spec; write it as name=weight[,name=weight...], e.g. align=1,realism=0.5")
	}
	var terms []SpecTerm
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("reward spec %q has an empty term", spec)
		}
		name, wtext, hasWeight := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if strings.Contains(wtext, "=") {
			return nil, fmt.Errorf("reward spec %q: term %q has more than one '='", spec, part)
		}
		if name == "" {
			return nil, fmt.Errorf("reward spec %q: term %q has no reward name", spec, part)
		}
		w := 1.0
		if hasWeight {
			var err error
			w, err = strconv.ParseFloat(strings.TrimSpace(wtext), 64)
			if err != nil {
				return nil, fmt.Errorf("reward spec %q: weight %q of reward %q is not a number", spec, strings.TrimSpace(wtext), name)
			}
		}
		if err := checkWeight(name, w); err != nil {
			return nil, fmt.Errorf("reward spec %q: %w", spec, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("reward spec %q: reward %q appears twice", spec, name)
		}
		seen[name] = true
		terms = append(terms, SpecTerm{Name: name, Weight: w})
	}
	return terms, nil
}

// MaxSpecLen bounds the length of a reward spec in bytes.
const MaxSpecLen = 4096

// Constructor builds a reward (loading whatever it needs); it is called once per use in a spec.
type Constructor func() (hypernoise.Reward, error)

type entry struct {
	summary string
	build   Constructor
}

// Registry maps reward names to constructors. The zero value is not usable; call NewRegistry.
type Registry struct {
	entries map[string]entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[string]entry{}} }

// Register adds a named reward. Names are non-empty, without ',', '=' or spaces, and unique.
func (r *Registry) Register(name, summary string, build Constructor) error {
	if name == "" || strings.ContainsAny(name, ",= \t\n") {
		return fmt.Errorf("invalid reward name %q: must be non-empty, without ',', '=' or spaces", name)
	}
	if build == nil {
		return fmt.Errorf("reward %q: nil constructor", name)
	}
	if _, dup := r.entries[name]; dup {
		return fmt.Errorf("reward %q is already registered", name)
	}
	r.entries[name] = entry{summary: summary, build: build}
	return nil
}

// Names lists the registered rewards, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Summary is the one-line description a reward was registered with ("" if unknown).
func (r *Registry) Summary(name string) string { return r.entries[name].summary }

// Help lists the registered rewards with their summaries, one per line.
func (r *Registry) Help() string {
	var b strings.Builder
	for _, n := range r.Names() {
		fmt.Fprintf(&b, "  %-10s %s\n", n, r.entries[n].summary)
	}
	return b.String()
}

// Check validates spec without building anything: its syntax and weights (see ParseSpec) and that
// every name is registered (the error lists the registered names).
func (r *Registry) Check(spec string) error {
	terms, err := ParseSpec(spec)
	if err != nil {
		return fmt.Errorf("%w (available rewards: %s)", err, strings.Join(r.Names(), ", "))
	}
	for _, t := range terms {
		if _, ok := r.entries[t.Name]; !ok {
			return fmt.Errorf("unknown reward %q in spec %q; available rewards: %s", t.Name, spec, strings.Join(r.Names(), ", "))
		}
	}
	return nil
}

// Parse parses spec (see ParseSpec), builds each named reward and returns their weighted sum.
// An unknown name is an error listing the registered names.
func (r *Registry) Parse(spec string) (*Sum, error) {
	terms, err := ParseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%w (available rewards: %s)", err, strings.Join(r.Names(), ", "))
	}
	var out []Term
	for _, t := range terms {
		e, ok := r.entries[t.Name]
		if !ok {
			return nil, fmt.Errorf("unknown reward %q in spec %q; available rewards: %s", t.Name, spec, strings.Join(r.Names(), ", "))
		}
		rw, err := e.build()
		if err != nil {
			return nil, fmt.Errorf("reward %q: %w", t.Name, err)
		}
		if rw.Name() != t.Name {
			return nil, fmt.Errorf("reward registered as %q calls itself %q", t.Name, rw.Name())
		}
		out = append(out, Term{Reward: rw, Weight: t.Weight})
	}
	return NewSum(out...)
}

// Func adapts a graph function to a hypernoise.Reward with the given name; Src, if set, names
// where it comes from (a file and output, see hypernoise.Sourced).
type Func struct {
	RewardName string
	Fn         func(ctx *context.Context, x, prompts *graph.Node) *graph.Node
	Src        string
}

// Name returns RewardName.
func (f Func) Name() string { return f.RewardName }

// Source returns Src (hypernoise.Sourced).
func (f Func) Source() string { return f.Src }

// Score returns Fn(ctx, x, prompts).
func (f Func) Score(ctx *context.Context, x, prompts *graph.Node) *graph.Node {
	return f.Fn(ctx, x, prompts)
}

package rewards

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestWeightsRepresentableInFloat32 is issue 12's case 3: weights that vanish (1e-320 is 0 in
// float32) or overflow (1e100, 1e308) in float32 were accepted.
func TestWeightsRepresentableInFloat32(t *testing.T) {
	for _, spec := range []string{"align=1e-320", "0=1e100", "align=1e308", "align=-1e300", "a=1e-7"} {
		if _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), "magnitude") {
			t.Errorf("ParseSpec(%q) err = %v, want a weight-range error", spec, err)
		}
	}
	for _, spec := range []string{"align=1e-6", "align=-1e6", "a=0.5,b=2"} {
		if _, err := ParseSpec(spec); err != nil {
			t.Errorf("ParseSpec(%q): %v", spec, err)
		}
	}
}

// FuzzParseSpec checks the reward spec parser on arbitrary text: it never panics, and an accepted
// spec has distinct non-empty names and weights that are normal float32 values within the bounds;
// writing the terms back as name=weight parses to the same terms.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"align=1", "align=1,realism=0.5", " align = 2 , brightness", "align=1e-320",
		"0=1e100", "a=NaN", "a=1,a=2", "a==1", ",", "a=0x1p-3", "a=-Inf", "é=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		terms, err := ParseSpec(spec)
		if err != nil {
			return
		}
		if len(terms) == 0 {
			t.Fatalf("%q: accepted with no terms", spec)
		}
		seen := map[string]bool{}
		parts := make([]string, len(terms))
		for i, term := range terms {
			if term.Name == "" || strings.ContainsAny(term.Name, ",=") || seen[term.Name] {
				t.Fatalf("%q: bad or repeated name %q", spec, term.Name)
			}
			seen[term.Name] = true
			a := math.Abs(term.Weight)
			if !(a >= MinWeight && a <= MaxWeight) {
				t.Fatalf("%q: weight %g out of range", spec, term.Weight)
			}
			if f32 := float32(term.Weight); f32 == 0 || math.IsInf(float64(f32), 0) {
				t.Fatalf("%q: weight %g not representable in float32", spec, term.Weight)
			}
			parts[i] = term.Name + "=" + strconv.FormatFloat(term.Weight, 'g', -1, 64)
		}
		again, err := ParseSpec(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("%q: written back as %q does not parse: %v", spec, strings.Join(parts, ","), err)
		}
		for i := range terms {
			if again[i] != terms[i] {
				t.Fatalf("%q: round trip changed term %d: %v -> %v", spec, i, terms[i], again[i])
			}
		}
	})
}
